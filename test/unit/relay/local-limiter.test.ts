import { afterEach, describe, expect, it } from 'vitest';
import { gcraDecide, LocalLimiter, rateLimitSchema, rulePeriods } from '../../../relay/limits/index.ts';

// A hand-driven clock: the local backend's arithmetic is checked exactly, without sleeping.
function clock(start = 1_000_000) {
  let t = start;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

describe('rateLimitSchema', () => {
  it('requires at least one period and names the field', () => {
    const r = rateLimitSchema.safeParse({ burst: 5 });
    expect(r.success).toBe(false);
    expect(r.error?.issues[0]?.path).toEqual(['perSecond']);
    expect(r.error?.issues[0]?.message).toMatch(/perSecond, perMinute, perHour, perDay/);
  });
  it('rejects unknown fields and non-positive counts', () => {
    expect(rateLimitSchema.safeParse({ perSecnd: 5 }).success).toBe(false);
    expect(rateLimitSchema.safeParse({ perMinute: 0 }).success).toBe(false);
    expect(rateLimitSchema.parse({ perMinute: 60, burst: 10 })).toEqual({ perMinute: 60, burst: 10 });
  });
  it('applies burst to the shortest period only', () => {
    expect(rulePeriods({ perSecond: 10, perDay: 1000, burst: 3 })).toEqual([
      { name: 's', intervalMs: 100, burst: 3 },
      { name: 'd', intervalMs: 86_400, burst: 1000 },
    ]);
  });
});

describe('LocalLimiter', () => {
  let limiter: LocalLimiter | undefined;
  afterEach(async () => {
    await limiter?.close();
    limiter = undefined;
  });

  it('allows the burst, then refuses with the time to the next cell', async () => {
    const c = clock();
    limiter = new LocalLimiter({}, c.now);
    const rule = { perMinute: 60, burst: 5 }; // one cell per second, 5 at once
    const results = [];
    for (let i = 0; i < 5; i++) results.push(await limiter.take('k', rule));
    expect(results.map((r) => r.allowed)).toEqual([true, true, true, true, true]);
    expect(results.map((r) => r.remaining)).toEqual([4, 3, 2, 1, 0]);
    const refused = await limiter.take('k', rule);
    expect(refused).toEqual({ allowed: false, retryAfterMs: 1000 });
    c.advance(999);
    expect((await limiter.take('k', rule)).allowed).toBe(false);
    c.advance(1);
    expect((await limiter.take('k', rule)).allowed).toBe(true);
    // Other keys are independent.
    expect((await limiter.take('other', rule)).allowed).toBe(true);
  });

  it('requires every period: the daily quota binds after the per-second rate refills', async () => {
    const c = clock();
    limiter = new LocalLimiter({}, c.now);
    const rule = { perSecond: 2, perDay: 3 };
    expect((await limiter.take('k', rule)).allowed).toBe(true);
    expect((await limiter.take('k', rule)).allowed).toBe(true);
    const secondBound = await limiter.take('k', rule);
    expect(secondBound.allowed).toBe(false);
    expect(secondBound.retryAfterMs).toBe(500);
    c.advance(500);
    expect((await limiter.take('k', rule)).allowed).toBe(true); // third of the day
    c.advance(5_000); // per-second bucket full again, the day's is empty
    const dayBound = await limiter.take('k', rule);
    expect(dayBound.allowed).toBe(false);
    // One day-cell is 8 h; 5.5 s of it have passed since the first take.
    expect(dayBound.retryAfterMs).toBe(8 * 3_600_000 - 5_500);
  });

  it('a refusal consumes nothing, cost counts cells, cost above burst never passes', async () => {
    const c = clock();
    limiter = new LocalLimiter({}, c.now);
    const rule = { perSecond: 10 };
    expect((await limiter.take('k', rule, 8)).remaining).toBe(2);
    expect((await limiter.take('k', rule, 3)).allowed).toBe(false);
    expect((await limiter.take('k', rule, 2)).allowed).toBe(true);
    expect(await limiter.take('k', rule, 11)).toEqual({ allowed: false, retryAfterMs: Number.POSITIVE_INFINITY });
  });

  it('stays within maxKeys and sweeps idle keys', async () => {
    const c = clock();
    limiter = new LocalLimiter({ maxKeys: 100 }, c.now);
    const rule = { perMinute: 1 };
    for (let i = 0; i < 1_000; i++) await limiter.take(`k${i}`, rule);
    expect(limiter.size).toBe(100);
    // The most recent keys survived; the oldest were evicted.
    expect((await limiter.take('k999', rule)).allowed).toBe(false);
    expect((await limiter.take('k0', rule)).allowed).toBe(true);
    c.advance(60_001);
    limiter.sweep();
    expect(limiter.size).toBe(0);
  });

  it('gcraDecide leaves state untouched on refusal', () => {
    const ps = rulePeriods({ perSecond: 1 });
    const first = gcraDecide([undefined], ps, 0, 1);
    expect(first.newTats).toEqual([1000]);
    const second = gcraDecide(first.newTats!, ps, 0, 1);
    expect(second.newTats).toBeUndefined();
    expect(second.decision.retryAfterMs).toBe(1000);
  });
});
