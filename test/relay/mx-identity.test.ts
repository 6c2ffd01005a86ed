// The relay's identity in MX mode as a receiving MX host sees it: the operator renders an
// EmailRelay with spec.hostname, the relay runs that config (secret files written where the
// pod would mount them, listeners and the MX port moved to loopback), and a sink playing the
// recipient's MX records the EHLO name and the Received header.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import YAML from 'yaml';
import type { RelayConfigInput } from '../../relay/config/schema.ts';
import { renderRelay } from '../../operator/render/relay.ts';
import { SECRETS_DIR } from '../../operator/render/relay-paths.ts';
import { startDnsServer, type TestDnsServer } from '../support/dns-server.ts';
import { freePort } from '../support/ports.ts';
import { startRelay, tempDir, type TestRelay } from '../support/relay-harness.ts';
import { startSink, type Sink } from '../support/sink.ts';
import { SmtpTalk } from '../support/smtp-talk.ts';
import { domainObject, ed25519Pem, relayObject } from '../operator/fixtures.ts';

const HOSTNAME = 'mail.ehlo-identity.test';
const DOMAIN = 'sender.test';

let dns: TestDnsServer;
let sink: Sink;
let relay: TestRelay;
let dir: string;

/** Every path under the pod's secrets mount, moved to `to`. */
function moveSecrets(v: unknown, to: string): unknown {
  if (typeof v === 'string') return v.startsWith(`${SECRETS_DIR}/`) ? path.join(to, v.slice(SECRETS_DIR.length + 1)) : v;
  if (Array.isArray(v)) return v.map((x) => moveSecrets(x, to));
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, moveSecrets(x, to)]));
  return v;
}

beforeAll(async () => {
  sink = await startSink({ host: '127.0.0.2' });
  dns = await startDnsServer({
    'dest.test': { MX: [{ preference: 10, exchange: 'mx.dest.test' }] },
    'mx.dest.test': { A: ['127.0.0.2'] },
  });
  const now = new Date();
  const sd = domainObject('sender', { domain: DOMAIN, relayRef: { name: 'edge' }, credentials: { enabled: false } });
  const out = renderRelay({
    relay: relayObject('edge', {
      hostname: HOSTNAME,
      trustedNetworks: [{ cidrs: ['127.0.0.1/32'], domains: [DOMAIN] }],
      delivery: { mode: 'mx', dnsServers: [dns.address], egress: { addresses: ['192.0.2.25'] } },
    }),
    domains: [{ sd, internal: { dkim: { keys: [{ selector: 's1', algorithm: 'ed25519-sha256', generation: 1, publishedAt: now.toISOString(), activeAt: now.toISOString() }] }, pems: { s1: ed25519Pem() } } }],
    userSecrets: new Map(), image: 'unused', apis: { serviceMonitor: false, certManager: false }, now,
  });
  expect(out.errors).toEqual([]);
  const cm = out.objects.find((o) => o.kind === 'ConfigMap') as unknown as { data: Record<string, string> };
  const secret = out.objects.find((o) => o.kind === 'Secret') as unknown as { data: Record<string, string> };
  dir = tempDir('mailfleet-mx-identity-');
  const secrets = path.join(dir, 'secrets');
  fs.mkdirSync(secrets);
  for (const [k, v] of Object.entries(secret.data)) fs.writeFileSync(path.join(secrets, k), Buffer.from(v, 'base64'));
  const rendered = moveSecrets(YAML.parse(cm.data['relay.yaml']!), secrets) as RelayConfigInput & { delivery: { mx?: object } };
  // what the operator decided stays; only where things listen moves to loopback
  relay = await startRelay({
    ...rendered,
    listeners: [{ name: 'plain', host: '127.0.0.1', port: await freePort(), mode: 'plain' }],
    delivery: { ...rendered.delivery, mx: { ...rendered.delivery.mx, port: sink.port } },
  }, { dir });
});

afterAll(async () => {
  await relay?.stop();
  await sink?.close();
  await dns?.close();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

describe('MX-mode identity of a relay the operator rendered', () => {
  it('greets the receiving MX host with spec.hostname and names it in Received', async () => {
    const { talk } = await SmtpTalk.connect(relay.port('plain'));
    expect((await talk.cmd('EHLO app.internal')).lines[0]).toMatch(new RegExp(`^${HOSTNAME.replace(/\./g, '\\.')}\\b`));
    expect((await talk.cmd(`MAIL FROM:<noreply@${DOMAIN}>`)).code).toBe(250);
    expect((await talk.cmd('RCPT TO:<someone@dest.test>')).code).toBe(250);
    expect((await talk.cmd('DATA')).code).toBe(354);
    talk.write(`From: <noreply@${DOMAIN}>\r\nTo: <someone@dest.test>\r\nSubject: identity\r\n\r\nhello\r\n.\r\n`);
    expect((await talk.read()).code).toBe(250);
    await talk.cmd('QUIT');
    talk.close();

    const [msg] = await sink.waitFor(1, 30_000);
    expect(msg!.helo).toBe(HOSTNAME);
    const text = msg!.data!.toString('utf8');
    const headers = text.slice(0, text.indexOf('\r\n\r\n'));
    expect(headers).toMatch(new RegExp(`^Received: from app\\.internal [^\\r]*\\r\\n\\s+by ${HOSTNAME.replace(/\./g, '\\.')} `, 'm'));
    expect(headers).not.toMatch(/svc\.cluster\.local/);
  });
});
