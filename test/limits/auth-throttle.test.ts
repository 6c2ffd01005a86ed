import { afterEach, describe, expect, it } from 'vitest';
import { addressKey, AuthThrottle, authThrottleSchema } from '../../relay/limits/index.ts';

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
      maxFailuresPerLogin: 5,
      maxFailuresPerAddress: 20,
      windowSeconds: 300,
      lockoutSeconds: 900,
      maxEntries: 50_000,
    });
  });

  it('locks a login after N failures in the window, for the lockout period', () => {
    const c = clock();
    throttle = new AuthThrottle({}, c.now);
    for (let i = 0; i < 4; i++) expect(throttle.recordFailure(`10.0.0.${i}`, 'App@Example.com').locked).toBe(false);
    const fifth = throttle.recordFailure('10.0.0.9', 'app@example.com'); // case variants share a count
    expect(fifth).toEqual({ locked: true, retryAfterMs: 900_000 });
    // Locked from any address; other logins from those addresses are not.
    expect(throttle.check('192.0.2.1', 'APP@example.com').locked).toBe(true);
    expect(throttle.check('10.0.0.1', 'other@example.com').locked).toBe(false);
    c.advance(899_999);
    expect(throttle.check('192.0.2.1', 'app@example.com')).toEqual({ locked: true, retryAfterMs: 1 });
    c.advance(1);
    expect(throttle.check('192.0.2.1', 'app@example.com').locked).toBe(false);
  });

  it('forgets failures older than the window', () => {
    const c = clock();
    throttle = new AuthThrottle({ maxFailuresPerLogin: 3, windowSeconds: 60 }, c.now);
    throttle.recordFailure('10.0.0.1', 'u');
    throttle.recordFailure('10.0.0.1', 'u');
    c.advance(60_000);
    expect(throttle.recordFailure('10.0.0.1', 'u').locked).toBe(false);
    expect(throttle.recordFailure('10.0.0.1', 'u').locked).toBe(false);
    expect(throttle.recordFailure('10.0.0.1', 'u').locked).toBe(true);
  });

  it('locks an address spraying many logins, and success resets only the login', () => {
    const c = clock();
    throttle = new AuthThrottle({ maxFailuresPerAddress: 4, maxFailuresPerLogin: 3 }, c.now);
    throttle.recordFailure('203.0.113.5', 'a');
    throttle.recordFailure('203.0.113.5', 'a');
    throttle.recordSuccess('203.0.113.5', 'a'); // 'a' back to zero, the address keeps 2
    throttle.recordFailure('203.0.113.5', 'a');
    throttle.recordFailure('203.0.113.5', 'a');
    expect(throttle.check('203.0.113.5').locked).toBe(true);
    expect(throttle.check('203.0.113.6', 'a').locked).toBe(false); // 'a' has 2 since its success
    expect(throttle.check('::ffff:203.0.113.5').locked).toBe(true);
  });

  it('keys IPv6 clients by /64', () => {
    expect(addressKey('2001:db8:1:2:aaaa::1')).toBe('2001:db8:1:2::/64');
    expect(addressKey('2001:0db8:0001:0002:ffff:ffff:ffff:ffff')).toBe('2001:db8:1:2::/64');
    expect(addressKey('::1')).toBe('0:0:0:0::/64');
    expect(addressKey('::ffff:192.0.2.1')).toBe('192.0.2.1');
    expect(addressKey('192.0.2.1')).toBe('192.0.2.1');
  });

  it('holds at most maxEntries subjects', () => {
    const c = clock();
    throttle = new AuthThrottle({ maxEntries: 50 }, c.now);
    for (let i = 0; i < 500; i++) throttle.recordFailure(`10.0.${i >> 8}.${i & 255}`, `user${i}`);
    expect(throttle.size).toBe(50);
    c.advance(300_001);
    throttle.sweep();
    expect(throttle.size).toBe(0);
  });
});
