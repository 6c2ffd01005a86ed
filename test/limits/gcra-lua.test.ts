// The Redis backend's Lua script and the TypeScript gcraDecide() must decide alike, or a
// fleet would enforce a different limit than one relay does. Both are run here on the same
// inputs: the script with its clock (Redis TIME) replaced by a given time, the TypeScript
// with the state the script left in Redis, over seeded pseudo-random request sequences.
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gcraDecide, rulePeriods } from '../../relay/limits/gcra.ts';
import { gcraLua } from '../../relay/limits/redis-script.ts';
import type { RateLimit } from '../../relay/limits/schema.ts';
import { startRedis, type TestRedis } from '../support/redis.ts';
import { haveTools } from '../support/tools.ts';
import { seededRandom } from '../support/random.ts';

const CLOCK = "local t = redis.call('TIME')\nlocal now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000";
// Same script, time from the last argument.
const scriptAt = gcraLua.replace(CLOCK, 'local now = tonumber(ARGV[#ARGV])');

describe.skipIf(!haveTools('redis', ['redis-server']))('GCRA: the Lua script against gcraDecide()', () => {
  let server: TestRedis;
  let redis: Redis;
  beforeAll(async () => {
    server = await startRedis();
    redis = new Redis(server.url, { maxRetriesPerRequest: 1 });
  });
  afterAll(async () => {
    await redis?.quit();
    await server?.destroy();
  });

  it('replaces only the clock of the real script', () => {
    expect(gcraLua).toContain(CLOCK);
    expect(scriptAt).not.toContain("redis.call('TIME')");
  });

  const rules: RateLimit[] = [
    { perSecond: 10 },
    { perMinute: 6, burst: 3 },
    { perMinute: 7 }, // an interval that is not a whole number of ms
    { perSecond: 5, perHour: 100 },
    { perSecond: 20, burst: 4, perMinute: 300, perDay: 5000 },
  ];

  it.each(rules.map((r, i) => [JSON.stringify(r), r, i] as const))('%s: same decisions and same state over 400 requests', async (_name, rule, i) => {
    const ps = rulePeriods(rule);
    const keys = ps.map((p) => `gcra-test-${i}:${p.name}`);
    await redis.del(...keys);
    const rnd = seededRandom(1000 + i);
    const maxCost = Math.min(3, ...ps.map((p) => p.burst)); // larger costs never reach the script
    let now = 1_700_000_000_000;
    let allowed = 0;
    let refused = 0;
    for (let step = 0; step < 400; step++) {
      // bursts of requests, pauses, and now and then a long gap that lets the state drain
      // (on average a little more demand than the shortest period lets through)
      now += rnd() < 0.1 ? Math.floor(rnd() * 120_000) : Math.floor(rnd() * 2 * ps[0]!.intervalMs);
      const cost = 1 + Math.floor(rnd() * maxCost);
      const stored = await redis.mget(...keys);
      const tats = stored.map((v) => (v === null ? undefined : Number(v)));
      const ts = gcraDecide(tats, ps, now, cost);
      const args: number[] = [cost];
      for (const p of ps) args.push(p.intervalMs, p.burst);
      const [ok, retry, remaining] = await redis.eval(scriptAt, keys.length, ...keys, ...args, now) as [number, number, number];
      const where = `step ${step}, now ${now}, cost ${cost}, tats ${JSON.stringify(tats)}`;
      expect(ok === 1, where).toBe(ts.decision.allowed);
      if (ok === 1) {
        allowed++;
        expect(remaining, where).toBe(ts.decision.remaining);
        const after = (await redis.mget(...keys)).map(Number);
        after.forEach((tat, k) => expect(Math.abs(tat - ts.newTats![k]!), where).toBeLessThan(0.001));
      } else {
        refused++;
        expect(retry, where).toBe(ts.decision.retryAfterMs);
      }
    }
    // the sequence exercised both outcomes, or the comparison proved little
    expect(allowed).toBeGreaterThan(20);
    expect(refused).toBeGreaterThan(20);
  });
});
