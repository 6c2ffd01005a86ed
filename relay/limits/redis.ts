// Fleet-wide GCRA in Redis. One EVALSHA per decision (EVAL only after a NOSCRIPT, e.g.
// after a Redis restart). Keys: <prefix>{<key>}:<period>; the hash tag keeps a rule's
// periods in one slot so the script stays valid on Redis Cluster.
// Redis trouble never hangs the caller: the client has no offline queue, one retry at
// most and a command timeout, and every error maps to the configured fail mode.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Redis } from 'ioredis';
import client from 'prom-client';
import type { Logger } from '../log.ts';
import { silentLogger } from '../log.ts';
import { rulePeriods, type Decision } from './gcra.ts';
import type { RateLimiter } from './limiter.ts';
import { gcraLua } from './redis-script.ts';
import { redisLimiterSchema, type RateLimit, type RedisLimiterConfig } from './schema.ts';

const gcraSha = createHash('sha1').update(gcraLua).digest('hex');

export type FallbackReason = 'timeout' | 'unavailable' | 'error';

export interface RedisLimiterOptions {
  config: Partial<RedisLimiterConfig> & Pick<RedisLimiterConfig, 'url'>;
  /** Share a client (e.g. with other relay components); otherwise one is created and owned. */
  redis?: Redis;
  logger?: Logger;
  /** Registers mailfleet_ratelimit_redis_fallbacks_total{mode,reason} here. */
  registry?: client.Registry;
  /** Called on every fallback, in addition to the metric. */
  onFallback?: (reason: FallbackReason, err: Error) => void;
}

/** An ioredis client with the bounded options the limiter relies on. */
export function createLimiterRedis(config: RedisLimiterConfig): Redis {
  const password = config.passwordFile ? readFileSync(config.passwordFile, 'utf8').trim() : undefined;
  return new Redis(config.url, {
    ...(password ? { password } : {}),
    commandTimeout: config.commandTimeoutMs,
    connectTimeout: config.connectTimeoutMs,
    maxRetriesPerRequest: 1,
    enableOfflineQueue: false,
    // Keep reconnecting in the background, capped, so the limiter heals when Redis returns.
    retryStrategy: (times) => Math.min(100 * 2 ** Math.min(times, 6), 5_000),
    lazyConnect: false,
  });
}

function fallbackCounter(registry: client.Registry): client.Counter<'mode' | 'reason'> {
  const name = 'mailfleet_ratelimit_redis_fallbacks_total';
  const existing = registry.getSingleMetric(name);
  if (existing) return existing as client.Counter<'mode' | 'reason'>;
  return new client.Counter({
    name,
    help: 'Rate-limit decisions taken without Redis (unreachable, timed out), by fail mode and reason',
    labelNames: ['mode', 'reason'],
    registers: [registry],
  });
}

export class RedisLimiter implements RateLimiter {
  readonly config: RedisLimiterConfig;
  readonly redis: Redis;
  private readonly owned: boolean;
  private readonly log: Logger;
  private readonly counter?: client.Counter<'mode' | 'reason'>;
  private readonly onFallback?: (reason: FallbackReason, err: Error) => void;
  private lastWarnAt = 0;
  /** Fallbacks since start (also in the metric); handy for health reporting. */
  fallbacks = 0;

  constructor(opts: RedisLimiterOptions) {
    this.config = redisLimiterSchema.parse(opts.config);
    this.owned = !opts.redis;
    this.redis = opts.redis ?? createLimiterRedis(this.config);
    // An 'error' listener keeps ioredis from printing unhandled-error noise; decisions report failures.
    if (this.owned) this.redis.on('error', () => {});
    this.log = (opts.logger ?? silentLogger).child({ component: 'ratelimit-redis' });
    if (opts.registry) this.counter = fallbackCounter(opts.registry);
    if (opts.onFallback) this.onFallback = opts.onFallback;
  }

  async take(key: string, rule: RateLimit, cost = 1): Promise<Decision> {
    const ps = rulePeriods(rule);
    if (ps.some((p) => cost > p.burst)) return { allowed: false, retryAfterMs: Number.POSITIVE_INFINITY };
    const keys = ps.map((p) => `${this.config.keyPrefix}{${key}}:${p.name}`);
    const args: (string | number)[] = [cost];
    for (const p of ps) args.push(p.intervalMs, p.burst);
    try {
      const reply = await this.run(keys, args);
      const [allowed, retry, remaining] = reply as [number, number, number];
      return allowed === 1
        ? { allowed: true, retryAfterMs: 0, remaining }
        : { allowed: false, retryAfterMs: retry };
    } catch (e) {
      return this.fallback(e as Error);
    }
  }

  private async run(keys: string[], args: (string | number)[]): Promise<unknown> {
    try {
      return await this.redis.evalsha(gcraSha, keys.length, ...keys, ...args);
    } catch (e) {
      if (!String((e as Error).message).startsWith('NOSCRIPT')) throw e;
      // Script cache empty (Redis restarted or flushed): EVAL loads it for the next EVALSHA.
      return await this.redis.eval(gcraLua, keys.length, ...keys, ...args);
    }
  }

  private fallback(err: Error): Decision {
    const msg = err.message ?? '';
    const reason: FallbackReason = /timed? ?out/i.test(msg)
      ? 'timeout'
      : /writeable|closed|ECONNREFUSED|ECONNRESET|max retries|offline/i.test(msg)
        ? 'unavailable'
        : 'error';
    const mode = this.config.failMode;
    this.fallbacks++;
    this.counter?.inc({ mode, reason });
    this.onFallback?.(reason, err);
    // One warning per 10 s at most: an outage must not turn into a log flood.
    const now = Date.now();
    if (now - this.lastWarnAt > 10_000) {
      this.lastWarnAt = now;
      this.log.warn({ err: msg, reason, failMode: mode }, 'rate limit: Redis unavailable, failing %s', mode);
    }
    return mode === 'open'
      ? { allowed: true, retryAfterMs: 0 }
      : { allowed: false, retryAfterMs: this.config.failClosedRetryAfterMs };
  }

  async close(): Promise<void> {
    if (!this.owned) return;
    if (this.redis.status !== 'ready') {
      this.redis.disconnect();
      return;
    }
    try {
      await this.redis.quit();
    } catch {
      this.redis.disconnect();
    }
  }
}
