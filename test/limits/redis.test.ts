// The Redis backend against a real redis-server on loopback.
import client from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisLimiter } from '../../relay/limits/index.ts';
import { startRedis, type TestRedis } from '../support/redis.ts';
import { haveTools } from '../support/tools.ts';

const enabled = haveTools('redis', ['redis-server']);

describe.skipIf(!enabled)('RedisLimiter', () => {
  let redis: TestRedis;
  const limiters: RedisLimiter[] = [];
  let seq = 0;
  // Each test gets its own key space so tests do not share state.
  const mk = (config: Record<string, unknown> = {}, registry?: client.Registry) => {
    const l = new RedisLimiter({
      config: { url: redis.url, keyPrefix: `t${seq}:`, ...config },
      ...(registry ? { registry } : {}),
    });
    limiters.push(l);
    return l;
  };
  const ready = async (l: RedisLimiter) => {
    if (l.redis.status !== 'ready') await new Promise((r) => l.redis.once('ready', r));
  };

  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(async () => {
    for (const l of limiters) await l.close();
    await redis?.destroy();
  });

  it('allows the burst, then refuses with a sane retryAfter; keys carry prefix and TTL', async () => {
    seq++;
    const l = mk();
    await ready(l);
    const rule = { perMinute: 6, burst: 3 }; // one cell per 10 s
    const got = [];
    for (let i = 0; i < 3; i++) got.push(await l.take('cred:alice', rule));
    expect(got.map((d) => d.allowed)).toEqual([true, true, true]);
    expect(got.map((d) => d.remaining)).toEqual([2, 1, 0]);
    const refused = await l.take('cred:alice', rule);
    expect(refused.allowed).toBe(false);
    expect(refused.retryAfterMs).toBeGreaterThan(9_000);
    expect(refused.retryAfterMs).toBeLessThanOrEqual(10_000);
    const keys = await l.redis.keys(`t${seq}:*`);
    expect(keys).toEqual([`t${seq}:{cred:alice}:m`]);
    const ttl = await l.redis.pttl(keys[0]!);
    expect(ttl).toBeGreaterThan(20_000);
    expect(ttl).toBeLessThanOrEqual(31_000);
  });

  it('requires every period of a rule', async () => {
    seq++;
    const l = mk();
    await ready(l);
    const rule = { perSecond: 100, perHour: 2 };
    expect((await l.take('d', rule)).allowed).toBe(true);
    expect((await l.take('d', rule)).allowed).toBe(true);
    const refused = await l.take('d', rule);
    expect(refused.allowed).toBe(false);
    expect(refused.retryAfterMs).toBeGreaterThan(1_700_000); // about 30 min: one hour-cell
    expect(refused.retryAfterMs).toBeLessThanOrEqual(1_800_000);
    // The refusal consumed nothing in the per-second period either.
    expect((await l.take('d', { perSecond: 100 })).remaining).toBe(97);
  });

  it('recovers from an empty script cache (NOSCRIPT) with EVAL', async () => {
    seq++;
    const l = mk();
    await ready(l);
    expect((await l.take('n', { perSecond: 1 })).allowed).toBe(true);
    await l.redis.script('FLUSH');
    expect((await l.take('n', { perSecond: 1 })).allowed).toBe(false);
  });

  it('two relays sharing one Redis stay within the limit together', async () => {
    seq++;
    const a = mk();
    const b = mk();
    await Promise.all([ready(a), ready(b)]);
    expect(a.redis).not.toBe(b.redis);
    const rule = { perHour: 50 };
    const takes = [];
    for (let i = 0; i < 100; i++) takes.push((i % 2 ? a : b).take('domain:example.com', rule));
    const decisions = await Promise.all(takes);
    expect(decisions.filter((d) => d.allowed)).toHaveLength(50);
    expect(decisions.filter((d) => !d.allowed).every((d) => d.retryAfterMs > 0)).toBe(true);
  });

  it('a hung Redis costs at most the command timeout, then the fail mode applies', async () => {
    seq++;
    const reasons: string[] = [];
    const l = new RedisLimiter({
      config: { url: redis.url, keyPrefix: `t${seq}:`, commandTimeoutMs: 150, failMode: 'closed' },
      onFallback: (reason) => reasons.push(reason),
    });
    limiters.push(l);
    await ready(l);
    redis.pause();
    try {
      const d = await l.take('h', { perSecond: 1 });
      expect(d.allowed).toBe(false);
      expect(reasons).toEqual(['timeout']);
    } finally {
      redis.resume();
    }
  });

  it('with Redis stopped: fail-open allows, fail-closed refuses, both count, nobody hangs', async () => {
    seq++;
    const registry = new client.Registry();
    const open = mk({ failMode: 'open', commandTimeoutMs: 200 }, registry);
    const closed = mk({ failMode: 'closed', commandTimeoutMs: 200, failClosedRetryAfterMs: 7_000 }, registry);
    await Promise.all([ready(open), ready(closed)]);
    expect((await open.take('x', { perSecond: 1 })).allowed).toBe(true);
    await redis.stop();
    try {
      expect(await open.take('x', { perSecond: 1 })).toEqual({ allowed: true, retryAfterMs: 0 });
      expect(await open.take('x', { perSecond: 1 })).toEqual({ allowed: true, retryAfterMs: 0 });
      expect(await closed.take('x', { perSecond: 1 })).toEqual({ allowed: false, retryAfterMs: 7_000 });
      expect(open.fallbacks).toBe(2);
      expect(closed.fallbacks).toBe(1);
      const metric = await registry.getSingleMetric('mailfleet_ratelimit_redis_fallbacks_total')!.get();
      const byMode = (m: string) => metric.values.filter((v) => v.labels.mode === m).reduce((s, v) => s + v.value, 0);
      expect(byMode('open')).toBe(2);
      expect(byMode('closed')).toBe(1);
    } finally {
      await redis.restart();
    }
    // Heals when Redis is back (the client reconnects in the background).
    await ready(open);
    expect((await open.take('y', { perSecond: 1 })).allowed).toBe(true);
    expect((await open.take('y', { perSecond: 1 })).allowed).toBe(false);
  });
});
