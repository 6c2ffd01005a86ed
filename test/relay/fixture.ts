// The common world of relay tests: a loopback DNS server, a destination sink on
// 127.0.0.2 reached via MX, and a relay with a login, TLS and a trusted plain listener.
import nodemailer from 'nodemailer';
import { startDnsServer, type TestDnsServer } from '../support/dns-server.ts';
import { startSink, type Sink, type SinkOptions } from '../support/sink.ts';
import { testCert } from '../support/certs.ts';
import { startRelay, type TestRelay } from '../support/relay-harness.ts';
import { hashPassword } from '../../relay/auth/password.ts';
import type { RelayConfigInput } from '../../relay/config/schema.ts';

export const PASSWORD = 'correct horse battery staple';

export interface World {
  dns: TestDnsServer;
  sink: Sink;
  relay: TestRelay;
  send(opts: { from?: string; to?: string | string[]; subject?: string; text?: string; port?: string }): Promise<{ response: string; messageId: string }>;
  close(): Promise<void>;
}

export async function startWorld(overrides: Partial<RelayConfigInput> = {}, sinkOpts: SinkOptions = {}): Promise<World> {
  const sink = await startSink({ host: '127.0.0.2', ...sinkOpts });
  const dns = await startDnsServer({
    'dest.test': { MX: [{ preference: 10, exchange: 'mx.dest.test' }] },
    'mx.dest.test': { A: ['127.0.0.2'] },
    'example.test': { MX: [{ preference: 10, exchange: 'mx.dest.test' }] },
  });
  const cert = testCert();
  const relay = await startRelay({
    hostname: 'relay.test',
    listeners: [
      { name: 'submission', host: '127.0.0.1', port: 0, mode: 'starttls' },
      { name: 'smtps', host: '127.0.0.1', port: 0, mode: 'implicit' },
      { name: 'plain', host: '127.0.0.1', port: 0, mode: 'plain' },
    ],
    tls: { certFile: cert.certPath, keyFile: cert.keyPath },
    credentials: [{ username: 'alice', passwordHash: await hashPassword(PASSWORD), domains: ['example.test'] }],
    trustedNetworks: [{ cidrs: ['127.0.0.1/32'], domains: ['legacy.test'] }],
    domains: [{ domain: 'example.test' }, { domain: 'legacy.test' }],
    limits: { maxMessageSize: 200_000, maxRecipients: 5 },
    queue: { retrySchedule: ['1s'], maxLifetime: '1h' },
    ...overrides,
    // delivery settings merge: the MX route to the sink stays
    delivery: { mode: 'mx', mx: { port: sink.port, dnsServers: [dns.address] }, ...overrides.delivery },
  });
  const transport = (port: string) => nodemailer.createTransport({
    host: '127.0.0.1', port: relay.port(port), secure: port === 'smtps', requireTLS: port === 'submission',
    tls: { rejectUnauthorized: false }, ...(port === 'plain' ? {} : { auth: { user: 'alice', pass: PASSWORD } }),
  });
  return {
    dns, sink, relay,
    send: ({ from = 'app@example.test', to = 'bob@dest.test', subject = 'hello', text = 'hello world', port = 'submission' }) =>
      transport(port).sendMail({ from, to, subject, text, envelope: { from, to } }),
    close: async () => {
      await relay.stop();
      await sink.close();
      await dns.close();
    },
  };
}
