// Two relay processes' worth of limiters sharing one real Redis: together they stay
// within a domain's limit, and a per-domain smarthost override routes that domain's mail.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRedis, type TestRedis } from '../support/redis.ts';
import { haveTools } from '../support/tools.ts';
import { startWorld, type World } from './fixture.ts';
import { startSink, type Sink } from '../support/sink.ts';

let redis: TestRedis | undefined;
const worlds: World[] = [];
let provider: Sink | undefined;
const haveRedis = haveTools('redis', ['redis-server']);
beforeAll(async () => { if (haveRedis) redis = await startRedis(); });
afterAll(async () => {
  for (const w of worlds) await w.close();
  await provider?.close();
  await redis?.destroy();
});

describe('fleet-wide limits', () => {
  it.runIf(haveRedis)('two relays on one Redis together accept no more than the domain limit', async () => {
    const cfg = { redis: { url: redis!.url, failMode: 'closed' as const }, domains: [{ domain: 'legacy.test' }, { domain: 'example.test', rateLimit: { perHour: 6 } }] };
    worlds.push(await startWorld(cfg), await startWorld(cfg));
    const outcomes = await Promise.all(Array.from({ length: 14 }, (_, i) =>
      worlds[i % 2]!.send({ subject: `fleet ${i}` }).then(() => 'ok', (e: Error) => (/451 4\.7\.1/.test(e.message) ? 'limited' : e.message))));
    expect(outcomes.filter((o) => o === 'ok')).toHaveLength(6);
    expect(outcomes.filter((o) => o === 'limited')).toHaveLength(8);
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
