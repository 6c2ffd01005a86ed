// Rate limiting for the relay: GCRA limiters (local or Redis) and the failed-AUTH throttle.
export { rateLimitSchema, redisLimiterSchema, localLimiterSchema, authThrottleSchema } from './schema.ts';
export type { RateLimit, RedisLimiterConfig, LocalLimiterConfig, AuthThrottleConfig } from './schema.ts';
export type { RateLimiter, Decision } from './limiter.ts';
export { rulePeriods, gcraDecide } from './gcra.ts';
export type { Period } from './gcra.ts';
export { LocalLimiter } from './local.ts';
export { RedisLimiter, createLimiterRedis } from './redis.ts';
export type { RedisLimiterOptions, FallbackReason } from './redis.ts';
export { AuthThrottle, addressKey } from './auth-throttle.ts';
export type { AuthThrottleState } from './auth-throttle.ts';
