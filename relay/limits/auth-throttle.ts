// Brute-force protection for SMTP AUTH: too many failures for one login, or from one
// client address, within a window lock that login / address out for a while.
// Local memory only: a fleet behind a load balancer multiplies the allowance by its
// replica count, which still turns an online guessing attack from millions of tries into
// a handful per lockout period.
import { isIPv6 } from 'node:net';
import { authThrottleSchema, type AuthThrottleConfig } from './schema.ts';

interface Subject {
  /** Failure times (ms) inside the window, oldest first; never longer than the threshold. */
  failures: number[];
  lockedUntil: number;
}

export interface AuthThrottleState {
  locked: boolean;
  retryAfterMs: number;
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

export class AuthThrottle {
  readonly config: AuthThrottleConfig;
  // 'u:' + login or 'a:' + address key -> state. Map order is LRU order.
  private readonly subjects = new Map<string, Subject>();
  private readonly timer: NodeJS.Timeout;
  private readonly now: () => number;

  constructor(config: Partial<AuthThrottleConfig> = {}, now: () => number = Date.now) {
    this.config = authThrottleSchema.parse(config);
    this.now = now;
    this.timer = setInterval(() => this.sweep(), 60_000);
    this.timer.unref();
  }

  get size(): number {
    return this.subjects.size;
  }

  /** Call before verifying a password: a locked subject is refused without checking it. */
  check(ip: string, user?: string): AuthThrottleState {
    const now = this.now();
    let until = this.subjects.get(`a:${addressKey(ip)}`)?.lockedUntil ?? 0;
    if (user !== undefined) until = Math.max(until, this.subjects.get(`u:${loginKey(user)}`)?.lockedUntil ?? 0);
    return until > now ? { locked: true, retryAfterMs: until - now } : { locked: false, retryAfterMs: 0 };
  }

  /** Returns the state after this failure (locked if it crossed a threshold). */
  recordFailure(ip: string, user?: string): AuthThrottleState {
    const now = this.now();
    this.fail(`a:${addressKey(ip)}`, this.config.maxFailuresPerAddress, now);
    if (user !== undefined) this.fail(`u:${loginKey(user)}`, this.config.maxFailuresPerLogin, now);
    return this.check(ip, user);
  }

  /**
   * Clears the login's failures. The address's are kept on purpose: otherwise an attacker
   * holding one valid account could reset its address counter between guesses at others.
   */
  recordSuccess(_ip: string, user?: string): void {
    if (user === undefined) return;
    const key = `u:${loginKey(user)}`;
    const s = this.subjects.get(key);
    if (s && s.lockedUntil <= this.now()) this.subjects.delete(key);
  }

  private fail(key: string, threshold: number, now: number): void {
    const windowMs = this.config.windowSeconds * 1000;
    const s = this.subjects.get(key) ?? { failures: [], lockedUntil: 0 };
    this.subjects.delete(key);
    this.subjects.set(key, s);
    if (s.lockedUntil > now) return; // already locked: failures while locked do not extend it
    while (s.failures.length > 0 && s.failures[0]! <= now - windowMs) s.failures.shift();
    s.failures.push(now);
    if (s.failures.length >= threshold) {
      s.lockedUntil = now + this.config.lockoutSeconds * 1000;
      s.failures = [];
    }
    // Bounded: evict least recently touched subjects past the cap.
    for (const [k] of this.subjects) {
      if (this.subjects.size <= this.config.maxEntries) break;
      this.subjects.delete(k);
    }
  }

  /** Forget subjects with nothing left to remember. */
  sweep(now = this.now()): void {
    const windowMs = this.config.windowSeconds * 1000;
    for (const [k, s] of this.subjects) {
      const lastFailure = s.failures[s.failures.length - 1] ?? 0;
      if (s.lockedUntil <= now && lastFailure <= now - windowMs) this.subjects.delete(k);
    }
  }

  close(): void {
    clearInterval(this.timer);
    this.subjects.clear();
  }
}

/** Logins compare case-insensitively so case variants do not get separate allowances. */
function loginKey(user: string): string {
  return user.normalize('NFC').toLowerCase();
}
