// The security tier's world: the relay as a real process (the CLI, as in production), a
// capturing sink as the next hop reached through MX on a loopback DNS server, one login
// per tenant over TLS. What the sink receives is what the tests assert.
import path from 'node:path';
import { startDnsServer, type TestDnsServer } from '../support/dns-server.ts';
import { startSink, type Sink } from '../support/sink.ts';
import { testCert } from '../support/certs.ts';
import { spawnRelay, tempDir, writeConfig, type ChildRelay } from '../support/relay-harness.ts';
import { freePort } from '../support/ports.ts';
import { SmtpTalk, authPlain, type Reply } from '../support/smtp-talk.ts';
import { makeKeyDir, type KeyDir } from '../dkim/keys-fixture.ts';
import { hashPassword } from '../../relay/auth/password.ts';
import type { RelayConfigInput } from '../../relay/config/schema.ts';

export const PASSWORD = 'tenant b password';
/** Where the legitimate tenant connects from: not in trustedNetworks, so no limit exempts it. */
export const LEGIT_ADDRESS = '127.0.0.6';

export interface SecurityWorld {
  dns: TestDnsServer;
  sink: Sink;
  relay: ChildRelay;
  ports: { submission: number; smtps: number; plain: number; proxied: number; http: number };
  dir: string;
  /** An authenticated session on the submission port (STARTTLS + AUTH PLAIN as `user`), from LEGIT_ADDRESS. */
  session(user?: string, pass?: string): Promise<SmtpTalk>;
  /** MAIL, RCPT, DATA with `raw` (dot-stuffed here) on a fresh authenticated session; the DATA reply. */
  submit(raw: string, opts?: { from?: string; to?: string; user?: string }): Promise<Reply>;
  close(): Promise<void>;
}

/** `tweak` edits the config before the relay starts (limits, domains, ...). */
export async function startSecurityWorld(tweak: (config: RelayConfigInput) => void = () => {}): Promise<SecurityWorld> {
  const sink = await startSink({ host: '127.0.0.2' });
  const dns = await startDnsServer({
    'd.test': { MX: [{ preference: 10, exchange: 'mx.d.test' }] },
    'mx.d.test': { A: ['127.0.0.2'] },
  });
  const cert = testCert();
  const keys: KeyDir = makeKeyDir();
  const dir = tempDir('mailfleet-security-');
  const ports = { submission: await freePort(), smtps: await freePort(), plain: await freePort(), proxied: await freePort(), http: await freePort() };
  const hash = await hashPassword(PASSWORD);
  const config: RelayConfigInput = {
    hostname: 'relay.test',
    dataDir: path.join(dir, 'data'),
    http: { host: '127.0.0.1', port: ports.http },
    listeners: [
      { name: 'submission', host: '127.0.0.1', port: ports.submission, mode: 'starttls' },
      { name: 'smtps', host: '127.0.0.1', port: ports.smtps, mode: 'implicit' },
      { name: 'plain', host: '127.0.0.1', port: ports.plain, mode: 'plain' },
      // Behind a "balancer" on 127.0.0.1, which is itself in trustedNetworks.
      { name: 'proxied', host: '127.0.0.1', port: ports.proxied, mode: 'plain', proxyProtocol: true, proxyFrom: ['127.0.0.1/32'] },
    ],
    tls: { certFile: cert.certPath, keyFile: cert.keyPath },
    credentials: [
      { username: 'b.test', passwordHash: hash, domains: ['b.test'] },
      { username: 'signed.test', passwordHash: hash, domains: ['signed.test'] },
    ],
    trustedNetworks: [{ cidrs: ['127.0.0.1/32'], domains: ['legacy.test'] }],
    domains: [
      { domain: 'b.test' },
      { domain: 'legacy.test' },
      { domain: 'signed.test', dkim: { keys: [{ selector: 'sel', algorithm: 'ed25519-sha256', privateKeyFile: keys.ed25519('signed.pem') }] } },
    ],
    limits: { maxMessageSize: 4 * 1024 * 1024 },
    queue: { retrySchedule: ['1s'], maxLifetime: '1h' },
    delivery: { mode: 'mx', mx: { port: sink.port, dnsServers: [dns.address] } },
  };
  tweak(config);
  const relay = await spawnRelay(writeConfig(dir, config));
  const session = async (user = 'b.test', pass = PASSWORD) => {
    const { talk, greeting } = await SmtpTalk.connect(ports.submission, '127.0.0.1', { localAddress: LEGIT_ADDRESS });
    if (greeting.code !== 220) throw new Error(`greeting: ${greeting.text}`);
    await talk.cmd('EHLO client.test');
    await talk.starttls();
    await talk.cmd('EHLO client.test');
    const auth = await talk.cmd(`AUTH PLAIN ${authPlain(user, pass)}`);
    if (auth.code !== 235) throw new Error(`AUTH: ${auth.text}`);
    return talk;
  };
  return {
    dns, sink, relay, ports, dir, session,
    async submit(raw, opts = {}) {
      const talk = await session(opts.user ?? 'b.test');
      try {
        const mail = await talk.cmd(`MAIL FROM:<${opts.from ?? 'x@b.test'}>`);
        if (mail.code !== 250) return mail;
        const rcpt = await talk.cmd(`RCPT TO:<${opts.to ?? 'v@d.test'}>`);
        if (rcpt.code !== 250) return rcpt;
        const data = await talk.cmd('DATA');
        if (data.code !== 354) return data;
        talk.write(`${raw.replace(/(^|\n)\./g, '$1..')}\r\n.\r\n`);
        return await talk.read(30_000);
      } finally {
        talk.close();
      }
    },
    async close() {
      relay.child.kill('SIGTERM');
      await Promise.race([relay.exited, new Promise((r) => setTimeout(r, 10_000))]);
      if (relay.child.exitCode === null) relay.child.kill('SIGKILL');
      await sink.close();
      await dns.close();
      keys.cleanup();
    },
  };
}

/** A legitimate message from a tenant, and proof it arrived: the next hop got it intact. */
export async function legitimateDelivery(w: SecurityWorld, tag: string): Promise<string> {
  const before = w.sink.messages.length;
  const reply = await w.submit(`From: x@b.test\r\nTo: v@d.test\r\nSubject: ${tag}\r\n\r\nlegitimate ${tag}\r\n`);
  if (reply.code !== 250) throw new Error(`legitimate message refused: ${reply.text}`);
  const got = await w.sink.waitFor(before + 1, 20_000);
  const text = got.at(-1)!.data!.toString('latin1');
  if (!text.includes(`Subject: ${tag}`)) throw new Error(`the sink got another message than ${tag}`);
  return text;
}

/** Submits `raw` (must be accepted) and returns what the next hop received for it. */
export async function deliveredAs(w: SecurityWorld, raw: string, opts: { from?: string; user?: string } = {}): Promise<string> {
  const before = w.sink.messages.length;
  const reply = await w.submit(raw, opts);
  if (reply.code !== 250) throw new Error(`message refused: ${reply.text}`);
  const got = await w.sink.waitFor(before + 1, 20_000);
  return got.at(-1)!.data!.toString('latin1');
}

/** Everything the sink received so far, as text. */
export function sinkText(w: SecurityWorld): string {
  return w.sink.messages.map((m) => m.data!.toString('latin1')).join('\n=====\n');
}
