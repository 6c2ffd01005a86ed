// Smarthost routing over real sockets: ordered failover, AUTH with a password file, TLS
// verified against a CA file, and the difference between "unreachable" and "answered".
import { createServer, type Server } from 'node:net';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { silentLogger } from '../../relay/log.ts';
import { Deliverer } from '../../relay/delivery/deliverer.ts';
import { deliverySchema } from '../../relay/delivery/schema.ts';
import { testCert } from '../support/certs.ts';
import { startSink, type Sink } from '../support/sink.ts';
import { config, makeJob, tempDir } from './helpers.ts';
import { loopbackSinks } from '../support/outbound.ts';

const tmp = tempDir();
let closedPort: number;          // a port with nothing listening
let backup: Sink;                // 127.0.0.3, STARTTLS + AUTH
let implicit: Sink;              // 127.0.0.2, implicit TLS
let rejecting: Sink;             // 127.0.0.4, 554 to every RCPT
let busy: Sink;                  // 127.0.0.5, 421 greeting
let passwordFile: string;
const creds = { user: 'relay-user', pass: 's3cret-p4ss' };

beforeAll(async () => {
  const probe: Server = createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.2', r));
  closedPort = (probe.address() as { port: number }).port;
  await new Promise<void>((r) => probe.close(() => r()));
  backup = await startSink({ host: '127.0.0.3', auth: creds });
  implicit = await startSink({ host: '127.0.0.2', tls: 'implicit' });
  rejecting = await startSink({ host: '127.0.0.4', rcptReply: () => ({ code: 554, message: '5.7.1 relaying denied' }) });
  busy = await startSink({ host: '127.0.0.5', greetingReply: () => ({ code: 421, message: '4.3.2 too busy' }) });
  passwordFile = join(tmp.dir, 'smarthost-password');
  writeFileSync(passwordFile, `${creds.pass}\n`);
});

afterAll(async () => {
  await Promise.all([backup, implicit, rejecting, busy].map((s) => s?.close()));
  tmp.cleanup();
});

const fast = { connectTimeoutMs: 3000, greetingTimeoutMs: 3000, socketTimeoutMs: 10_000 };

describe('smarthost delivery', () => {
  it('fails over to the backup when the primary port is closed, authenticating with the password file', async () => {
    const lines: string[] = [];
    const log = pino({ level: 'debug' }, { write: (l: string) => { lines.push(l); } });
    const d = new Deliverer({ outbound: loopbackSinks,
      log,
      config: config({
        mode: 'smarthost', ...fast,
        smarthosts: [
          { name: 'primary', host: '127.0.0.2', port: closedPort, tls: 'none', requireTls: false },
          { name: 'backup', host: '127.0.0.3', port: backup.port, tlsRejectUnauthorized: false, auth: { user: creds.user, passwordFile } },
        ],
      }),
    });
    try {
      const outcomes = await d.deliver(makeJob(tmp.dir, ['one@far.test', 'two@other.test']));
      expect(outcomes.map((o) => [o.status, o.route, o.remote])).toEqual([
        ['delivered', 'smarthost', `127.0.0.3[127.0.0.3]:${backup.port}`],
        ['delivered', 'smarthost', `127.0.0.3[127.0.0.3]:${backup.port}`],
      ]);
      const got = backup.messages.find((m) => m.to.includes('one@far.test'));
      expect(got).toMatchObject({ authUser: creds.user, secure: true, to: ['one@far.test', 'two@other.test'] });
      // the primary's probe was refused, so it is marked down and the one attempt goes to
      // the backup; never the password
      const parsed = lines.map((l) => JSON.parse(l));
      expect(parsed.filter((l) => l.msg === 'delivery attempt').map((a) => a.outcome)).toEqual(['delivered']);
      const down = parsed.find((l) => l.msg === 'delivery target marked down');
      expect(down.reason).toContain('connection refused');
      expect(d.targetState(`127.0.0.2[127.0.0.2]:${closedPort}`)).toBe('down');
      expect(lines.join('\n')).not.toContain(creds.pass);
    } finally {
      await d.close();
    }
  });

  it('fails over on a 421 greeting, but takes a 5xx from a reachable host as its answer', async () => {
    const d = new Deliverer({ outbound: loopbackSinks,
      log: silentLogger,
      config: config({
        mode: 'smarthost', ...fast,
        smarthosts: [
          { host: '127.0.0.5', port: busy.port, tls: 'none', requireTls: false },
          { host: '127.0.0.4', port: rejecting.port, tlsRejectUnauthorized: false },
          { host: '127.0.0.3', port: backup.port, tlsRejectUnauthorized: false, auth: { user: creds.user, passwordFile } },
        ],
      }),
    });
    try {
      const before = backup.messages.length;
      const [o] = await d.deliver(makeJob(tmp.dir, ['x@far.test']));
      expect(o).toMatchObject({ status: 'failed', code: 554, enhanced: '5.7.1', remote: `127.0.0.4[127.0.0.4]:${rejecting.port}` });
      expect(backup.messages.length).toBe(before);
      expect(busy.connections()).toBeGreaterThan(0);
    } finally {
      await d.close();
    }
  });

  it('verifies implicit TLS against a configured CA file and defers when verification fails', async () => {
    const good = new Deliverer({ outbound: loopbackSinks,
      log: silentLogger,
      config: config({ mode: 'smarthost', ...fast, smarthosts: [{ host: '127.0.0.2', port: implicit.port, tls: 'implicit', caFile: testCert().certPath }] }),
    });
    const bad = new Deliverer({ outbound: loopbackSinks,
      log: silentLogger,
      config: config({ mode: 'smarthost', ...fast, smarthosts: [{ host: '127.0.0.2', port: implicit.port, tls: 'implicit' }] }),
    });
    try {
      const [ok] = await good.deliver(makeJob(tmp.dir, ['tls@far.test']));
      expect(ok!.status).toBe('delivered');
      expect(implicit.messages.find((m) => m.to.includes('tls@far.test'))?.secure).toBe(true);
      const [no] = await bad.deliver(makeJob(tmp.dir, ['untrusted@far.test']));
      expect(no!.status).toBe('deferred');
      expect(no!.response).toMatch(/certificate/i);
      expect(implicit.messages.some((m) => m.to.includes('untrusted@far.test'))).toBe(false);
    } finally {
      await good.close();
      await bad.close();
    }
  });

  it('defers (never bounces) when AUTH is refused', async () => {
    const wrong = join(tmp.dir, 'wrong-password');
    writeFileSync(wrong, 'nope');
    const d = new Deliverer({ outbound: loopbackSinks,
      log: silentLogger,
      config: config({ mode: 'smarthost', ...fast, smarthosts: [{ host: '127.0.0.3', port: backup.port, tlsRejectUnauthorized: false, auth: { user: creds.user, passwordFile: wrong } }] }),
    });
    try {
      const [o] = await d.deliver(makeJob(tmp.dir, ['auth@far.test']));
      expect(o).toMatchObject({ status: 'deferred', enhanced: '4.7.0' });
      expect(o!.response).toMatch(/authentication failed/);
      expect(o!.response).not.toContain('nope');
    } finally {
      await d.close();
    }
  });

  it('refuses a config whose password file cannot be read, and keeps the old one on update', async () => {
    const missing = join(tmp.dir, 'missing-password');
    const bad = config({ mode: 'smarthost', smarthosts: [{ name: 'prov', host: '127.0.0.3', auth: { user: 'u', passwordFile: missing } }] });
    expect(() => new Deliverer({ outbound: loopbackSinks, log: silentLogger, config: bad })).toThrow(/smarthosts\[0\] \(prov\): cannot read passwordFile/);
    const d = new Deliverer({ outbound: loopbackSinks,
      log: silentLogger,
      config: config({ mode: 'smarthost', ...fast, smarthosts: [{ host: '127.0.0.3', port: backup.port, tlsRejectUnauthorized: false, auth: { user: creds.user, passwordFile } }] }),
    });
    try {
      expect(() => d.updateConfig(bad)).toThrow(/cannot read passwordFile/);
      const [o] = await d.deliver(makeJob(tmp.dir, ['still@far.test']));
      expect(o!.status).toBe('delivered');
    } finally {
      await d.close();
    }
  });

  it('hot reload switches to a new smarthost list', async () => {
    const d = new Deliverer({ outbound: loopbackSinks,
      log: silentLogger,
      config: config({ mode: 'smarthost', ...fast, smarthosts: [{ host: '127.0.0.4', port: rejecting.port, tlsRejectUnauthorized: false }] }),
    });
    try {
      const [first] = await d.deliver(makeJob(tmp.dir, ['r1@far.test']));
      expect(first!.status).toBe('failed');
      d.updateConfig(config({ mode: 'smarthost', ...fast, smarthosts: [{ host: '127.0.0.3', port: backup.port, tlsRejectUnauthorized: false, auth: { user: creds.user, passwordFile } }] }));
      const [second] = await d.deliver(makeJob(tmp.dir, ['r2@far.test']));
      expect(second!.status).toBe('delivered');
      expect(backup.messages.flatMap((m) => m.to)).toContain('r2@far.test');
    } finally {
      await d.close();
    }
  });
});

describe('delivery schema', () => {
  it('fills defaults', () => {
    const c = deliverySchema.parse({});
    expect(c).toMatchObject({
      mode: 'mx', mx: { port: 25, requireTls: false, dnsTimeoutMs: 5000, maxAddresses: 10 }, smarthosts: [],
      connectTimeoutMs: 10_000, greetingTimeoutMs: 30_000, socketTimeoutMs: 120_000, hostDownBackoffMs: 30_000, hostDownMaxBackoffMs: 300_000,
      maxConnectionsPerDestination: 10, maxMessagesPerConnection: 1000, destinations: {},
    });
    const s = deliverySchema.parse({ mode: 'smarthost', smarthosts: [{ host: 'smtp.example.test' }] });
    expect(s.smarthosts[0]).toMatchObject({ port: 587, tls: 'starttls', requireTls: true, tlsRejectUnauthorized: true });
  });

  it('names the path when smarthost mode has no smarthosts or a plaintext host requires TLS', () => {
    const empty = deliverySchema.safeParse({ mode: 'smarthost' });
    expect(empty.success).toBe(false);
    expect(empty.error?.issues[0]).toMatchObject({ path: ['smarthosts'] });
    expect(empty.error?.issues[0]?.message).toMatch(/delivery\.smarthosts must list at least one/);
    const plain = deliverySchema.safeParse({ mode: 'smarthost', smarthosts: [{ host: 'h', tls: 'none' }] });
    expect(plain.error?.issues[0]).toMatchObject({ path: ['smarthosts', 0, 'requireTls'] });
    expect(deliverySchema.safeParse({ mx: { dnsServers: ['not a server'] } }).success).toBe(false);
    expect(deliverySchema.safeParse({ mx: { dnsServers: ['127.0.0.1:5353', '[::1]:53'] } }).success).toBe(true);
  });
});
