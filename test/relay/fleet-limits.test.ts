// Two relay processes sharing one real Redis together stay within a domain's limit; and a
// per-domain smarthost override routes that domain's mail through its own provider.
import path from 'node:path';
import nodemailer from 'nodemailer';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRedis, type TestRedis } from '../support/redis.ts';
import { haveTools } from '../support/tools.ts';
import { startWorld, type World } from './fixture.ts';
import { startSink, type Sink } from '../support/sink.ts';
import { startDnsServer, type TestDnsServer } from '../support/dns-server.ts';
import { spawnRelay, tempDir, writeConfig, type ChildRelay } from '../support/relay-harness.ts';
import { freePort } from '../support/ports.ts';

let redis: TestRedis | undefined;
let dns: TestDnsServer | undefined;
let sink: Sink | undefined;
const relays: ChildRelay[] = [];
const worlds: World[] = [];
let provider: Sink | undefined;
const haveRedis = haveTools('redis', ['redis-server']);
beforeAll(async () => { if (haveRedis) redis = await startRedis(); });
afterAll(async () => {
  for (const r of relays) { r.child.kill('SIGTERM'); await r.exited; }
  for (const w of worlds) await w.close();
  await Promise.all([provider?.close(), sink?.close(), dns?.close()]);
  await redis?.destroy();
});

describe('fleet-wide limits', () => {
  it.runIf(haveRedis)('two relay processes on one Redis together accept no more than the domain limit', async () => {
    sink = await startSink({ host: '127.0.0.2', keepData: false });
    dns = await startDnsServer({ 'dest.test': { MX: [{ preference: 10, exchange: 'mx.dest.test' }] }, 'mx.dest.test': { A: ['127.0.0.2'] } });
    const ports: number[] = [];
    for (let i = 0; i < 2; i++) {
      const dir = tempDir();
      const port = await freePort();
      ports.push(port);
      relays.push(await spawnRelay(writeConfig(dir, {
        hostname: `relay${i}.test`, dataDir: path.join(dir, 'data'), http: { host: '127.0.0.1', port: 0 },
        listeners: [{ name: 'plain', host: '127.0.0.1', port, mode: 'plain' }],
        trustedNetworks: [{ cidrs: ['127.0.0.1/32'], domains: ['example.test'] }],
        domains: [{ domain: 'example.test', rateLimit: { perHour: 6 } }],
        redis: { url: redis!.url, failMode: 'closed' },
        delivery: { mode: 'mx', mx: { port: sink.port, dnsServers: [dns.address] } },
      })));
    }
    const clients = ports.map((port) => nodemailer.createTransport({ host: '127.0.0.1', port, ignoreTLS: true }));
    const outcomes = await Promise.all(Array.from({ length: 14 }, (_, i) =>
      clients[i % 2]!.sendMail({ from: 'app@example.test', to: 'bob@dest.test', subject: `fleet ${i}`, text: 'x' })
        .then(() => `ok${i % 2}`, (e: Error) => (/451 4\.7\.1/.test(e.message) ? 'limited' : e.message))));
    expect(outcomes.filter((o) => o.startsWith('ok'))).toHaveLength(6);
    expect(outcomes.filter((o) => o === 'limited')).toHaveLength(8);
    // Every accepted message is delivered: a limit refuses, it never drops.
    await sink.waitFor(6, 20_000);
  });
});

describe('per-domain smarthost', () => {
  it('sends a domain with its own provider through that provider, others via MX', async () => {
    provider = await startSink({ host: '127.0.0.5', tls: 'none' });
    const w = await startWorld({
      domains: [{ domain: 'legacy.test' }, { domain: 'example.test', smarthost: { host: '127.0.0.5', port: provider.port, tls: 'none', requireTls: false } }],
    });
    worlds.push(w);
    await w.send({ from: 'app@example.test', subject: 'via provider' });
    await w.send({ from: 'cron@legacy.test', port: 'plain', subject: 'via mx' });
    await provider.waitFor(1);
    await w.sink.waitFor(1);
    expect(provider.messages[0]!.data!.toString()).toContain('Subject: via provider');
    expect(w.sink.messages[0]!.data!.toString()).toContain('Subject: via mx');
  });
});
