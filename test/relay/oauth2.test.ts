// The legacy-sender story through the whole relay: an old client logs in to the relay with a
// plain password, the relay relays through an OAuth2-only smarthost. A wrong client secret
// keeps the mail queued (deferred, never bounced) and shows the identity provider's error on
// /status and in the metric; fixing the secret file reloads it without a restart and the
// queued mail leaves.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import nodemailer from 'nodemailer';
import { hashPassword } from '../../relay/auth/password.ts';
import { testCert } from '../support/certs.ts';
import { eventually } from '../support/eventually.ts';
import { smarthostCheck, startIdentityProvider, type IdentityProvider } from '../support/identity-provider.ts';
import { startRelay, tempDir, type TestRelay } from '../support/relay-harness.ts';
import { startSink, type Sink } from '../support/sink.ts';

let relay: TestRelay | undefined;
let smarthost: Sink | undefined;
let idp: IdentityProvider | undefined;
afterAll(async () => { await relay?.stop(); await smarthost?.close(); await idp?.close(); });

const get = async (port: number, p: string) => (await fetch(`http://127.0.0.1:${port}${p}`)).text();

describe('relay through an OAuth2 smarthost', () => {
  it('defers on a refused client secret, reports it, and delivers after the Secret file is fixed', async () => {
    const good = 'cs~right-secret';
    idp = await startIdentityProvider({ clients: { 'app-1': { secret: good } } });
    smarthost = await startSink({ host: '127.0.0.8', xoauth2: smarthostCheck(idp) });
    const dir = tempDir();
    const secretFile = path.join(dir, 'client-secret');
    fs.writeFileSync(secretFile, 'cs~wrong-secret\n');
    const cert = testCert();
    relay = await startRelay({
      hostname: 'relay.test',
      listeners: [{ name: 'submission', host: '127.0.0.1', port: 0, mode: 'starttls' }],
      tls: { certFile: cert.certPath, keyFile: cert.keyPath },
      credentials: [{ username: 'scanner', passwordHash: await hashPassword('simple-pw'), domains: ['example.test'] }],
      domains: [{ domain: 'example.test' }],
      recipientChecks: { dns: false },
      queue: { retrySchedule: ['1s'] },
      delivery: {
        mode: 'smarthost',
        smarthosts: [{
          name: 'm365', host: '127.0.0.8', port: smarthost.port, tlsRejectUnauthorized: false,
          auth: { user: 'relay@example.test', oauth2: { microsoft: { tenantId: 'contoso.onmicrosoft.com', clientId: 'app-1', clientSecretFile: secretFile, tokenUrl: idp.url }, tokenCaFile: idp.caFile } },
        }],
      },
    }, { dir });
    await nodemailer.createTransport({ host: '127.0.0.1', port: relay.port('submission'), requireTLS: true, tls: { rejectUnauthorized: false }, auth: { user: 'scanner', pass: 'simple-pw' } })
      .sendMail({ from: 'scanner@example.test', to: 'someone@far.test', subject: 'scan', text: 'pdf' });

    const status = await eventually('the provider\'s refusal on /status', async () => {
      const s = JSON.parse(await get(relay!.httpPort, '/status')) as { oauth2: Array<{ healthy: boolean; error?: string }> };
      return s.oauth2[0]?.healthy === false && s.oauth2[0];
    }, 30_000);
    expect(status.error).toContain('invalid_client: AADSTS7000215: Invalid client secret provided.');
    expect(await get(relay.httpPort, '/metrics')).toMatch(/mailfleet_oauth2_credential_healthy\{smarthost="m365"\} 0/);
    expect(relay.relay.queue.size).toBe(1); // deferred, not bounced
    expect(smarthost.messages).toHaveLength(0);

    fs.writeFileSync(secretFile, `${good}\n`); // the Secret volume is updated
    const [msg] = await smarthost.waitFor(1, 30_000);
    expect(msg).toMatchObject({ authUser: 'relay@example.test', to: ['someone@far.test'], secure: true });
    expect(await get(relay.httpPort, '/metrics')).toMatch(/mailfleet_oauth2_credential_healthy\{smarthost="m365"\} 1/);
    const log = fs.readFileSync(relay.logFile, 'utf8');
    expect(log).not.toContain(good);
    expect(log).not.toContain('wrong-secret');
    expect(log).not.toContain('simple-pw');
  });
});
