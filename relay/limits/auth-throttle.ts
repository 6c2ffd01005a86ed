// Brute-force protection for SMTP AUTH that an attacker cannot turn against the victim.
//
// Failures are counted per (login, client address) and per client address; crossing a
// threshold locks that pair or that address, never the login for everyone (locking the
// login let anyone who could guess a login name, and generated logins are the domain
// name, keep a tenant from sending). A login failing from many addresses is slowed
// instead: past loginDelayAfter failures in the window each attempt for it waits a
// doubling delay, capped, before its password is checked, so its owner from a clean
// address still gets in.
//
// With Redis configured (the rate limiter's client) the counters are the fleet's: every
// relay behind a balancer sees the same counts. Redis trouble falls back to this relay's
// own memory for that call, so AUTH never waits on a dead Redis.
import { isIPv6 } from 'node:net';
import type { Redis } from 'ioredis';
import { authThrottleSchema, type AuthThrottleConfig } from './schema.ts';

export interface AuthThrottleState {
  locked: boolean;
  retryAfterMs: number;
  /** What is locked: the client address, or this login from this address. */
  scope?: 'address' | 'pair';
  /** Wait this long before checking the password (login under attack). */
  delayMs: number;
}

export interface AuthFailureResult {
  /** Set when this failure crossed a threshold and locked something. */
  lockedNow?: 'address' | 'pair';
}

/**
 * IPv6 clients usually own a whole /64, so one is keyed by that prefix; an IPv4-mapped
 * IPv6 address is keyed as the IPv4 address it is.
 */
export function addressKey(ip: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  if (mapped) return mapped[1]!;
  if (!isIPv6(ip)) return ip;
  const [head = '', tail = ''] = ip.toLowerCase().split('::');
  const h = head ? head.split(':') : [];
  const t = ip.includes('::') ? (tail ? tail.split(':') : []) : [];
  const groups = ip.includes('::') ? [...h, ...Array(8 - h.length - t.length).fill('0'), ...t] : h;
  return `${groups.slice(0, 4).map((g) => g.replace(/^0+(?=.)/, '')).join(':')}::/64`;
}

/** Logins compare case-insensitively so case variants do not get separate allowances. */
function loginKey(user: string): string {
  return user.normalize('NFC').toLowerCase();
}

/** A counter with a fixed window, and a lock. */
interface Subject { count: number; windowEnd: number; lockedUntil: number }
interface SubjectView { count: number; lockMs: number }

/** Where subjects live: this process, or Redis for the fleet. */
interface Backend {
  read(key: string): Promise<SubjectView>;
  /** Counts one failure; locks for lockoutMs when the count reaches threshold (0: never). */
  fail(key: string, threshold: number): Promise<SubjectView & { lockedNow: boolean }>;
  clear(key: string): Promise<void>;
}

class MemoryBackend implements Backend {
  // Map order is LRU order.
  readonly subjects = new Map<string, Subject>();
  private readonly cfg: AuthThrottleConfig;
  private readonly now: () => number;
  constructor(cfg: AuthThrottleConfig, now: () => number) { this.cfg = cfg; this.now = now; }

  async read(key: string): Promise<SubjectView> {
    return this.view(this.subjects.get(key), this.now());
  }

  async fail(key: string, threshold: number): Promise<SubjectView & { lockedNow: boolean }> {
    const now = this.now();
    let s = this.subjects.get(key);
    this.subjects.delete(key);
    if (!s || (s.windowEnd <= now && s.lockedUntil <= now)) s = { count: 0, windowEnd: now + this.cfg.windowSeconds * 1000, lockedUntil: 0 };
    this.subjects.set(key, s);
    this.evict();
    // Failures while locked do not extend the lock: the attacker cannot keep it forever.
    if (s.lockedUntil > now) return { ...this.view(s, now), lockedNow: false };
    s.count++;
    if (threshold > 0 && s.count >= threshold) {
      s.lockedUntil = now + this.cfg.lockoutSeconds * 1000;
      s.count = 0;
      return { ...this.view(s, now), lockedNow: true };
    }
    return { ...this.view(s, now), lockedNow: false };
  }

  async clear(key: string): Promise<void> {
    const s = this.subjects.get(key);
    if (s && s.lockedUntil <= this.now()) this.subjects.delete(key);
  }

  private view(s: Subject | undefined, now: number): SubjectView {
    if (!s) return { count: 0, lockMs: 0 };
    return { count: s.windowEnd > now ? s.count : 0, lockMs: Math.max(0, s.lockedUntil - now) };
  }

  private evict(): void {
    // Bounded: evict least recently touched subjects past the cap.
    for (const [k] of this.subjects) {
      if (this.subjects.size <= this.cfg.maxEntries) break;
      this.subjects.delete(k);
    }
  }

  sweep(): void {
    const now = this.now();
    for (const [k, s] of this.subjects) if (s.lockedUntil <= now && s.windowEnd <= now) this.subjects.delete(k);
  }
}

// One hash per subject: c = failures in the window (the key's TTL is the window), l = lock
// end in Redis server time (ms), so every relay agrees whatever its own clock says.
const FAIL_LUA = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lock = tonumber(redis.call('HGET', KEYS[1], 'l') or '0')
if lock > now then return {0, lock - now, 0} end
local c = redis.call('HINCRBY', KEYS[1], 'c', 1)
if c == 1 then redis.call('HDEL', KEYS[1], 'l') redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
local threshold = tonumber(ARGV[2])
if threshold > 0 and c >= threshold then
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[1], 'l', now + tonumber(ARGV[3]))
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return {0, tonumber(ARGV[3]), 1}
end
return {c, 0, 0}
`;
const READ_LUA = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local v = redis.call('HMGET', KEYS[1], 'c', 'l')
local lock = tonumber(v[2] or '0')
return {tonumber(v[1] or '0'), lock > now and (lock - now) or 0}
`;

class RedisBackend implements Backend {
  private readonly redis: Redis;
  private readonly prefix: string;
  private readonly cfg: AuthThrottleConfig;
  constructor(redis: Redis, prefix: string, cfg: AuthThrottleConfig) { this.redis = redis; this.prefix = prefix; this.cfg = cfg; }

  async read(key: string): Promise<SubjectView> {
    const [count, lockMs] = await this.redis.eval(READ_LUA, 1, this.prefix + key) as [number, number];
    return { count, lockMs };
  }

  async fail(key: string, threshold: number): Promise<SubjectView & { lockedNow: boolean }> {
    const [count, lockMs, lockedNow] = await this.redis.eval(FAIL_LUA, 1, this.prefix + key, this.cfg.windowSeconds * 1000, threshold, this.cfg.lockoutSeconds * 1000) as [number, number, number];
    return { count, lockMs, lockedNow: lockedNow === 1 };
  }

  async clear(key: string): Promise<void> {
    // Only a counter, never a running lock: HGET l first would race, so the script checks.
    await this.redis.eval(`if redis.call('HEXISTS', KEYS[1], 'l') == 0 then redis.call('DEL', KEYS[1]) end return 0`, 1, this.prefix + key);
  }
}

export interface AuthThrottleOptions {
  now?: () => number;
  /** The fleet's Redis (the rate limiter's client) and key prefix, when configured. */
  redis?: () => { client: Redis; keyPrefix: string } | undefined;
  /** Redis failed for one call and memory answered instead. */
  onFallback?: (err: Error) => void;
}

export class AuthThrottle {
  readonly config: AuthThrottleConfig;
  private readonly memory: MemoryBackend;
  private readonly opts: AuthThrottleOptions;
  private readonly timer: NodeJS.Timeout;

  constructor(config: Partial<AuthThrottleConfig> = {}, opts: AuthThrottleOptions = {}) {
    this.config = authThrottleSchema.parse(config);
    this.opts = opts;
    this.memory = new MemoryBackend(this.config, opts.now ?? Date.now);
    this.timer = setInterval(() => this.memory.sweep(), 60_000);
    this.timer.unref();
  }

  /** Subjects held in memory (Redis-held ones are not counted). */
  get size(): number {
    return this.memory.subjects.size;
  }

  /** Call before verifying a password: a locked address or pair is refused without checking it. */
  async check(ip: string, user: string): Promise<AuthThrottleState> {
    const [addr, pair, login] = await Promise.all([
      this.call((b) => b.read(`a:${addressKey(ip)}`)),
      this.call((b) => b.read(pairKey(ip, user))),
      this.call((b) => b.read(`u:${loginKey(user)}`)),
    ]);
    if (addr.lockMs > 0 || pair.lockMs > 0) {
      const scope = addr.lockMs >= pair.lockMs ? 'address' : 'pair';
      return { locked: true, retryAfterMs: Math.max(addr.lockMs, pair.lockMs), scope, delayMs: 0 };
    }
    return { locked: false, retryAfterMs: 0, delayMs: this.delayFor(login.count) };
  }

  /** Counts a failure for the address, the pair and the login. */
  async recordFailure(ip: string, user: string): Promise<AuthFailureResult> {
    const [addr, pair] = await Promise.all([
      this.call((b) => b.fail(`a:${addressKey(ip)}`, this.config.maxFailuresPerAddress)),
      this.call((b) => b.fail(pairKey(ip, user), this.config.maxFailuresPerLoginAndAddress)),
      this.call((b) => b.fail(`u:${loginKey(user)}`, 0)),
    ]);
    if (addr.lockedNow) return { lockedNow: 'address' };
    if (pair.lockedNow) return { lockedNow: 'pair' };
    return {};
  }

  /**
   * Clears the pair's failures. The address's are kept on purpose (an attacker holding
   * one valid account could otherwise reset its address counter between guesses at
   * others), and so are the login's (they slow the attack, not the owner's next login).
   */
  async recordSuccess(ip: string, user: string): Promise<void> {
    await this.call((b) => b.clear(pairKey(ip, user)).then(() => ({ count: 0, lockMs: 0 })));
  }

  /** 0 below loginDelayAfter failures, then 250 ms doubling per failure, capped. */
  delayFor(loginFailures: number): number {
    const over = loginFailures - this.config.loginDelayAfter;
    if (over < 0) return 0;
    return Math.min(this.config.maxLoginDelayMs, 250 * 2 ** Math.min(over, 16));
  }

  sweep(): void {
    this.memory.sweep();
  }

  close(): void {
    clearInterval(this.timer);
    this.memory.subjects.clear();
  }

  private async call<T extends SubjectView>(op: (b: Backend) => Promise<T>): Promise<T> {
    const r = this.opts.redis?.();
    if (!r) return op(this.memory);
    try {
      return await op(new RedisBackend(r.client, `${r.keyPrefix}auth:`, this.config));
    } catch (err) {
      this.opts.onFallback?.(err as Error);
      return op(this.memory);
    }
  }
}

function pairKey(ip: string, user: string): string {
  return `p:${addressKey(ip)}|${loginKey(user)}`;
}
