// The per-target circuit breaker over real sockets: a host that accepts TCP and never
// greets costs one greeting timeout (not one per message or per pool slot), the mail goes
// to the next host at once, and a host that comes back is probed and used again.
import { createServer, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../relay/log.ts';
import { Deliverer } from '../../relay/delivery/deliverer.ts';
import { startSink, type Sink } from '../support/sink.ts';
import { startDnsServer, type TestDnsServer } from '../support/dns-server.ts';
import { eventually } from '../support/eventually.ts';
import { config, makeJob, tempDir } from './helpers.ts';
import { loopbackSinks } from '../support/outbound.ts';

/** Accepts connections and never says a word: a hung smarthost or MX. */
async function hungHost(host: string, port = 0): Promise<{ server: Server; port: number; connections: () => number; close: () => Promise<void> }> {
  const sockets = new Set<Socket>();
  let count = 0;
  const server = createServer((s) => { count++; sockets.add(s); s.on('error', () => {}); s.on('close', () => sockets.delete(s)); });
  await new Promise<void>((r) => server.listen(port, host, r));
  return {
    server, port: (server.address() as { port: number }).port, connections: () => count,
    close: () => new Promise<void>((r) => { for (const s of sockets) s.destroy(); server.close(() => r()); }),
  };
}

const tmp = tempDir();
let hung: Awaited<ReturnType<typeof hungHost>>;
let healthy: Sink;
let dns: TestDnsServer;

beforeAll(async () => {
  hung = await hungHost('127.0.0.6');
  healthy = await startSink({ host: '127.0.0.7', tls: 'none', keepData: false });
});

afterAll(async () => {
  await hung?.close();
  await healthy?.close();
  await dns?.close();
  tmp.cleanup();
});

const JOBS = 40;

describe('per-target health', () => {
  it('smarthost mode: a primary that never greets is probed once and every message goes to the secondary', async () => {
    const d = new Deliverer({
      log: silentLogger, outbound: loopbackSinks,
      config: config({
        mode: 'smarthost', connectTimeoutMs: 2000, greetingTimeoutMs: 1500, hostDownBackoffMs: 600_000,
        smarthosts: [
          { name: 'primary', host: '127.0.0.6', port: hung.port, tls: 'none', requireTls: false },
          { name: 'secondary', host: '127.0.0.7', port: healthy.port, tls: 'none', requireTls: false },
        ],
      }),
    });
    try {
      const before = healthy.messages.length;
      const hungBefore = hung.connections();
      const results = await Promise.all(Array.from({ length: JOBS }, (_, i) => d.deliver(makeJob(tmp.dir, [`r${i}@far.test`]))));
      expect(results.flat().map((o) => o.status)).toEqual(Array(JOBS).fill('delivered'));
      expect(new Set(results.flat().map((o) => o.remote))).toEqual(new Set([`127.0.0.7[127.0.0.7]:${healthy.port}`]));
      expect(healthy.messages.length - before).toBe(JOBS);
      // the probe is the only connection the hung primary saw: no message waited for it
      await eventually('the probe to time out', () => d.targetState(`127.0.0.6[127.0.0.6]:${hung.port}`) === 'down', 10_000, { everyMs: 50 });
      expect(hung.connections() - hungBefore).toBe(1);
      // while it is down, later mail skips it without a connection
      const [later] = await d.deliver(makeJob(tmp.dir, ['later@far.test']));
      expect(later!.status).toBe('delivered');
      expect(hung.connections() - hungBefore).toBe(1);
    } finally {
      await d.close();
    }
  });

  it('MX mode: a hung preferred MX costs at most its connection cap, not one timeout per message', async () => {
    dns = await startDnsServer({
      'hung.test': { MX: [{ preference: 10, exchange: 'mx1.hung.test' }, { preference: 20, exchange: 'mx2.hung.test' }] },
      'mx1.hung.test': { A: ['127.0.0.6'] },
      'mx2.hung.test': { A: ['127.0.0.7'] },
    });
    // MX delivery uses one port for every host: a hung host and a sink on the same port
    const port = healthy.port;
    const hungMx = await hungHost('127.0.0.6', port).catch(() => undefined);
    if (!hungMx) throw new Error(`port ${port} is taken on 127.0.0.6`);
    const cap = 3;
    const d = new Deliverer({
      log: silentLogger, outbound: loopbackSinks,
      config: config({
        mode: 'mx', connectTimeoutMs: 2000, greetingTimeoutMs: 1500, hostDownBackoffMs: 600_000, maxConnectionsPerDestination: cap,
        mx: { port, dnsServers: [dns.address] },
      }),
    });
    try {
      const before = healthy.messages.length;
      const results = await Promise.all(Array.from({ length: JOBS }, (_, i) => d.deliver(makeJob(tmp.dir, [`r${i}@hung.test`]))));
      expect(results.flat().map((o) => o.status)).toEqual(Array(JOBS).fill('delivered'));
      expect(healthy.messages.length - before).toBe(JOBS);
      expect(d.targetState(`mx1.hung.test[127.0.0.6]:${port}`)).toBe('down');
      // one per pool slot at most (a requeue may add one each): far below one per message
      expect(hungMx.connections()).toBeLessThanOrEqual(cap * 2);
    } finally {
      await d.close();
      await hungMx.close();
    }
  });

  it('probes a host that was down after its backoff and uses it again once it greets', async () => {
    let refuse = true;
    const flaky = await startSink({ host: '127.0.0.8', tls: 'none', keepData: false, greetingReply: () => (refuse ? { code: 421, message: '4.3.2 not now' } : undefined) });
    const d = new Deliverer({
      log: silentLogger, outbound: loopbackSinks,
      config: config({
        mode: 'smarthost', connectTimeoutMs: 2000, greetingTimeoutMs: 2000, hostDownBackoffMs: 100, hostDownMaxBackoffMs: 200,
        smarthosts: [
          { name: 'flaky', host: '127.0.0.8', port: flaky.port, tls: 'none', requireTls: false },
          { name: 'secondary', host: '127.0.0.7', port: healthy.port, tls: 'none', requireTls: false },
        ],
      }),
    });
    try {
      const [first] = await d.deliver(makeJob(tmp.dir, ['a@far.test']));
      expect(first!.remote).toBe(`127.0.0.7[127.0.0.7]:${healthy.port}`);
      refuse = false;
      // after the backoff a probe finds it greeting again, and mail goes back to it
      await eventually('mail to go back to the recovered primary', async () => {
        const [o] = await d.deliver(makeJob(tmp.dir, ['b@far.test']));
        return o!.remote === `127.0.0.8[127.0.0.8]:${flaky.port}`;
      }, 10_000, { everyMs: 100 });
      expect(flaky.messages.length).toBeGreaterThan(0);
    } finally {
      await d.close();
      await flaky.close();
    }
  });

  it('defers at once, without a connection, while every target is down', async () => {
    const d = new Deliverer({
      log: silentLogger, outbound: loopbackSinks,
      config: config({
        mode: 'smarthost', connectTimeoutMs: 2000, greetingTimeoutMs: 1000, hostDownBackoffMs: 600_000,
        smarthosts: [{ name: 'only', host: '127.0.0.6', port: hung.port, tls: 'none', requireTls: false }],
      }),
    });
    try {
      const before = hung.connections();
      const [o] = await d.deliver(makeJob(tmp.dir, ['x@far.test']));
      expect(o).toMatchObject({ status: 'deferred' });
      expect(o!.response).toMatch(/timed out|greeting/i);
      const [again] = await d.deliver(makeJob(tmp.dir, ['y@far.test']));
      expect(again).toMatchObject({ status: 'deferred' });
      expect(again!.response).toContain('marked down');
      expect(hung.connections() - before).toBe(1);
    } finally {
      await d.close();
    }
  });
});
