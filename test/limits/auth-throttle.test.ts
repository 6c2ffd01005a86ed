// AuthThrottle as a unit (memory) and against a real redis-server (the fleet's shared
// counters): the attacker locks only its own address or its own (login, address) pair;
// a login under attack from many addresses is slowed, never locked.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { addressKey, AuthThrottle, authThrottleSchema } from '../../relay/limits/index.ts';
import { startRedis, type TestRedis } from '../support/redis.ts';
import { haveTools } from '../support/tools.ts';

function clock(start = 1_000_000) {
  let t = start;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

describe('AuthThrottle', () => {
  let throttle: AuthThrottle | undefined;
  afterEach(() => {
    throttle?.close();
    throttle = undefined;
  });

  it('has the documented defaults', () => {
    expect(authThrottleSchema.parse({})).toEqual({
      maxFailuresPerLoginAndAddress: 5,
      maxFailuresPerAddress: 20,
      loginDelayAfter: 10,
      maxLoginDelayMs: 8_000,
      windowSeconds: 300,
      lockoutSeconds: 900,
      maxEntries: 50_000,
      maxConcurrentPasswordChecks: 4,
      maxWaitingPasswordChecks: 100,
    });
  });

  it('locks the login only for the address that failed, for the lockout period', async () => {
    const c = clock();
    throttle = new AuthThrottle({}, { now: c.now });
    for (let i = 0; i < 4; i++) expect(await throttle.recordFailure('10.0.0.1', 'App@Example.com')).toEqual({});
    expect(await throttle.recordFailure('10.0.0.1', 'app@example.com')).toEqual({ lockedNow: 'pair' }); // case variants share a count
    expect(await throttle.check('10.0.0.1', 'APP@example.com')).toMatchObject({ locked: true, scope: 'pair', retryAfterMs: 900_000 });
    // The owner from another address is not locked; another login from the attacker's address neither.
    expect((await throttle.check('192.0.2.1', 'app@example.com')).locked).toBe(false);
    expect((await throttle.check('10.0.0.1', 'other@example.com')).locked).toBe(false);
    c.advance(900_000);
    expect((await throttle.check('10.0.0.1', 'app@example.com')).locked).toBe(false);
  });

  it('locks an address spraying many logins; success clears only the pair', async () => {
    const c = clock();
    throttle = new AuthThrottle({ maxFailuresPerAddress: 4, maxFailuresPerLoginAndAddress: 3 }, { now: c.now });
    await throttle.recordFailure('203.0.113.5', 'a');
    await throttle.recordFailure('203.0.113.5', 'a');
    await throttle.recordSuccess('203.0.113.5', 'a'); // the pair back to zero, the address keeps 2
    await throttle.recordFailure('203.0.113.5', 'b');
    expect(await throttle.recordFailure('203.0.113.5', 'c')).toEqual({ lockedNow: 'address' });
    expect(await throttle.check('203.0.113.5', 'zzz')).toMatchObject({ locked: true, scope: 'address' });
    expect((await throttle.check('::ffff:203.0.113.5', 'a')).locked).toBe(true);
    expect((await throttle.check('203.0.113.6', 'a')).locked).toBe(false);
  });

  it('slows a login failing from many addresses with a doubling, capped delay, and never locks it', async () => {
    const c = clock();
    throttle = new AuthThrottle({ loginDelayAfter: 3, maxLoginDelayMs: 2_000 }, { now: c.now });
    const delays: number[] = [];
    for (let i = 0; i < 8; i++) {
      delays.push((await throttle.check(`10.1.0.${i}`, 'victim')).delayMs);
      await throttle.recordFailure(`10.1.0.${i}`, 'victim');
    }
    expect(delays).toEqual([0, 0, 0, 250, 500, 1000, 2000, 2000]);
    expect(await throttle.check('198.51.100.1', 'victim')).toMatchObject({ locked: false, delayMs: 2000 });
    c.advance(300_000);
    expect((await throttle.check('198.51.100.1', 'victim')).delayMs).toBe(0);
  });

  it('forgets failures after the window', async () => {
    const c = clock();
    throttle = new AuthThrottle({ maxFailuresPerLoginAndAddress: 3, windowSeconds: 60 }, { now: c.now });
    await throttle.recordFailure('10.0.0.1', 'u');
    await throttle.recordFailure('10.0.0.1', 'u');
    c.advance(60_000);
    expect(await throttle.recordFailure('10.0.0.1', 'u')).toEqual({});
    expect(await throttle.recordFailure('10.0.0.1', 'u')).toEqual({});
    expect(await throttle.recordFailure('10.0.0.1', 'u')).toEqual({ lockedNow: 'pair' });
  });

  it('keys IPv6 clients by /64', () => {
    expect(addressKey('2001:db8:1:2:aaaa::1')).toBe('2001:db8:1:2::/64');
    expect(addressKey('2001:0db8:0001:0002:ffff:ffff:ffff:ffff')).toBe('2001:db8:1:2::/64');
    expect(addressKey('::1')).toBe('0:0:0:0::/64');
    expect(addressKey('::ffff:192.0.2.1')).toBe('192.0.2.1');
    expect(addressKey('192.0.2.1')).toBe('192.0.2.1');
  });

  it('holds at most maxEntries subjects in memory', async () => {
    const c = clock();
    throttle = new AuthThrottle({ maxEntries: 50 }, { now: c.now });
    for (let i = 0; i < 500; i++) await throttle.recordFailure(`10.0.${i >> 8}.${i & 255}`, `user${i}`);
    expect(throttle.size).toBe(50);
    c.advance(300_001);
    throttle.sweep();
    expect(throttle.size).toBe(0);
  });
});

describe.skipIf(!haveTools('redis', ['redis-server']))('AuthThrottle shared through Redis', () => {
  let redis: TestRedis;
  let client: Redis;
  const throttles: AuthThrottle[] = [];
  beforeAll(async () => {
    redis = await startRedis();
    client = new Redis(redis.url, { maxRetriesPerRequest: 1, enableOfflineQueue: false });
    client.on('error', () => {}); // the outage below is on purpose
    await new Promise((r) => client.once('ready', r));
  });
  afterAll(async () => {
    for (const t of throttles) t.close();
    client?.disconnect();
    await redis?.destroy();
  });

  it('two relays count one attack together, and fall back to memory when Redis is gone', async () => {
    const fallbacks: string[] = [];
    const mk = () => {
      const t = new AuthThrottle({ maxFailuresPerLoginAndAddress: 4 }, { redis: () => ({ client, keyPrefix: 'test:' }), onFallback: (e) => fallbacks.push(e.message) });
      throttles.push(t);
      return t;
    };
    const [a, b] = [mk(), mk()];
    await a.recordFailure('10.9.0.1', 'tenant');
    await b.recordFailure('10.9.0.1', 'tenant');
    await a.recordFailure('10.9.0.1', 'tenant');
    expect(await b.recordFailure('10.9.0.1', 'tenant')).toEqual({ lockedNow: 'pair' });
    expect(await a.check('10.9.0.1', 'tenant')).toMatchObject({ locked: true, scope: 'pair' });
    expect((await a.check('10.9.0.2', 'tenant')).locked).toBe(false);
    expect(a.size + b.size).toBe(0); // nothing was kept in memory
    expect(fallbacks).toEqual([]);
    await redis.stop();
    expect((await a.check('10.9.0.1', 'tenant')).locked).toBe(false); // memory knows nothing
    expect(fallbacks.length).toBeGreaterThan(0);
    await redis.restart();
  });
});
