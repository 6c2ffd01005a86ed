// Config schemas for the limiters. Owned here, composed into the relay config by relay/config.
import { z } from 'zod';

const count = z.number().int().positive();

/**
 * A rate: at least one period. `burst` is how many cells may pass at once for the
 * SHORTEST period given; longer periods act as quotas whose burst is their own count
 * (so `{perSecond: 10, perDay: 10000}` smooths to 10/s and caps the day at ~10000).
 * Without `burst`, every period's burst is its count.
 */
export const rateLimitSchema = z
  .object({
    perSecond: count.optional(),
    perMinute: count.optional(),
    perHour: count.optional(),
    perDay: count.optional(),
    burst: count.optional(),
  })
  .strict()
  .refine(
    (r) => r.perSecond !== undefined || r.perMinute !== undefined || r.perHour !== undefined || r.perDay !== undefined,
    { message: 'a rate limit needs at least one of perSecond, perMinute, perHour, perDay', path: ['perSecond'] },
  );

export type RateLimit = z.infer<typeof rateLimitSchema>;

/** Fleet-wide counters in Redis. The password, if any, is a mounted file. */
export const redisLimiterSchema = z
  .object({
    url: z.string().regex(/^rediss?:\/\//, 'url must start with redis:// or rediss://'),
    passwordFile: z.string().min(1).optional(),
    keyPrefix: z.string().default('mailfleet:rl:'),
    /** Upper bound on one decision's wait for Redis; past it the fail mode applies. */
    commandTimeoutMs: z.number().int().positive().max(10_000).default(250),
    connectTimeoutMs: z.number().int().positive().default(2_000),
    /** open: allow when Redis is unreachable (mail flows, limits lapse); closed: refuse with 451. */
    failMode: z.enum(['open', 'closed']).default('open'),
    /** retryAfterMs reported when failing closed. */
    failClosedRetryAfterMs: z.number().int().positive().default(5_000),
  })
  .strict();

export type RedisLimiterConfig = z.infer<typeof redisLimiterSchema>;

export const localLimiterSchema = z
  .object({
    /** Keys (key × period) held at most; the oldest are evicted past this. */
    maxKeys: z.number().int().positive().default(100_000),
    /** How often idle keys (whose state equals a fresh key's) are swept. */
    sweepIntervalMs: z.number().int().positive().default(60_000),
  })
  .strict();

export type LocalLimiterConfig = z.infer<typeof localLimiterSchema>;

export const authThrottleSchema = z
  .object({
    maxFailuresPerLogin: count.default(5),
    maxFailuresPerAddress: count.default(20),
    windowSeconds: count.default(300),
    lockoutSeconds: count.default(900),
    /** Subjects (logins + addresses) tracked at most; the least recently touched are evicted. */
    maxEntries: count.default(50_000),
  })
  .strict();

export type AuthThrottleConfig = z.infer<typeof authThrottleSchema>;
