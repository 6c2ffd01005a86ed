// Config schemas for the limiters. Owned here, composed into the relay config by relay/config.
import { z } from 'zod';

const count = z.number().int().min(1);

/**
 * A rate: at least one period. `burst` is how many cells may pass at once for the
 * SHORTEST period given; longer periods act as quotas whose burst is their own count
 * (so `{perSecond: 10, perDay: 10000}` smooths to 10/s and caps the day at ~10000).
 * Without `burst`, every period's burst is its count.
 */
export const rateLimitSchema = z
  .strictObject({
    perSecond: count.optional().describe('Messages per second'),
    perMinute: count.optional().describe('Messages per minute'),
    perHour: count.optional().describe('Messages per hour'),
    perDay: count.optional().describe('Messages per day'),
    burst: count.optional().describe('Messages that may pass at once for the shortest period given (default: its count)'),
  })
  .refine(
    (r) => r.perSecond !== undefined || r.perMinute !== undefined || r.perHour !== undefined || r.perDay !== undefined,
    { message: 'a rate limit needs at least one of perSecond, perMinute, perHour, perDay', path: ['perSecond'] },
  );

export type RateLimit = z.infer<typeof rateLimitSchema>;

/** Fleet-wide counters in Redis. The password, if any, is a mounted file. */
export const redisLimiterSchema = z
  .strictObject({
    url: z.string().regex(/^rediss?:\/\//, 'url must start with redis:// or rediss://')
      .describe('redis:// or rediss:// URL, without the password'),
    passwordFile: z.string().min(1).optional().describe('File holding the Redis password (a mounted Secret)'),
    keyPrefix: z.string().default('mailfleet:rl:').describe('Prefix of every counter key'),
    commandTimeoutMs: z.number().int().positive().max(10_000).default(250)
      .describe("Upper bound on one decision's wait for Redis, in milliseconds; past it failMode applies"),
    connectTimeoutMs: z.number().int().positive().default(2_000).describe('Time to connect to Redis, in milliseconds'),
    failMode: z.enum(['open', 'closed']).default('open')
      .describe('open: allow when Redis is unreachable (mail flows, limits lapse); closed: refuse with 451'),
    failClosedRetryAfterMs: z.number().int().positive().default(5_000)
      .describe('Retry-after reported to a refused client when failing closed, in milliseconds'),
  });

export type RedisLimiterConfig = z.infer<typeof redisLimiterSchema>;
export type RedisLimiterConfigInput = z.input<typeof redisLimiterSchema>;

export const localLimiterSchema = z
  .strictObject({
    maxKeys: z.number().int().positive().default(100_000)
      .describe('Keys (key × period) held at most; the oldest are evicted past this'),
    sweepIntervalMs: z.number().int().positive().default(60_000)
      .describe("How often idle keys (whose state equals a fresh key's) are swept, in milliseconds"),
  });

export type LocalLimiterConfig = z.infer<typeof localLimiterSchema>;

export const authThrottleSchema = z
  .strictObject({
    maxFailuresPerLoginAndAddress: count.default(5)
      .describe('Failed AUTH attempts for one login from one client address within windowSeconds before that pair is locked (the login stays open from other addresses)'),
    maxFailuresPerAddress: count.default(20)
      .describe('Failed AUTH attempts from one client address (IPv6: its /64), for any logins, within windowSeconds before the address is locked'),
    loginDelayAfter: count.default(10)
      .describe('Failed AUTH attempts for one login from all addresses within windowSeconds after which every further attempt for it waits (progressive delay, doubling)'),
    maxLoginDelayMs: z.number().int().min(0).max(60_000).default(8_000)
      .describe('Longest progressive delay before a password check for a login under attack, in milliseconds'),
    windowSeconds: count.default(300).describe('Window over which failures are counted'),
    lockoutSeconds: count.default(900).describe('How long a locked address or login-and-address pair is refused'),
    maxEntries: count.default(50_000)
      .describe('Subjects (addresses, logins, pairs) tracked at most in memory; the least recently touched are evicted'),
    maxConcurrentPasswordChecks: z.number().int().min(1).max(64).default(4)
      .describe('Password hashes (scrypt, 16 MB each) computed at once; more AUTH attempts wait'),
    maxWaitingPasswordChecks: z.number().int().min(0).max(10_000).default(100)
      .describe('AUTH attempts that may wait for a password check; beyond this AUTH is refused with 454 4.7.0'),
  });

export type AuthThrottleConfig = z.infer<typeof authThrottleSchema>;
