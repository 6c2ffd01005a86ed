// In-memory GCRA for a single relay (no Redis configured). Bounded: a key whose TAT is
// in the past holds the same state as an absent key, so idle keys are swept for free;
// past maxKeys the least recently used are evicted (which can only make the limiter
// more permissive for those keys, never block anyone wrongly).
import { gcraDecide, rulePeriods, type Decision } from './gcra.ts';
import type { RateLimiter } from './limiter.ts';
import { localLimiterSchema, type LocalLimiterConfig, type RateLimit } from './schema.ts';

export class LocalLimiter implements RateLimiter {
  // key + '\0' + period name -> TAT (ms). Map order doubles as LRU order (re-set on touch).
  private readonly tats = new Map<string, number>();
  private readonly maxKeys: number;
  private readonly timer: NodeJS.Timeout;
  private readonly now: () => number;

  constructor(config: Partial<LocalLimiterConfig> = {}, now: () => number = () => performance.timeOrigin + performance.now()) {
    const c = localLimiterSchema.parse(config);
    this.maxKeys = c.maxKeys;
    this.now = now;
    this.timer = setInterval(() => this.sweep(), c.sweepIntervalMs);
    this.timer.unref();
  }

  /** Keys currently held (for metrics and tests). */
  get size(): number {
    return this.tats.size;
  }

  async take(key: string, rule: RateLimit, cost = 1): Promise<Decision> {
    return this.takeSync(key, rule, cost);
  }

  takeSync(key: string, rule: RateLimit, cost = 1): Decision {
    const ps = rulePeriods(rule);
    const now = this.now();
    const ids = ps.map((p) => `${key}\0${p.name}`);
    const { decision, newTats } = gcraDecide(ids.map((id) => this.tats.get(id)), ps, now, cost);
    if (newTats) {
      for (let i = 0; i < ids.length; i++) {
        const id = ids[i]!;
        this.tats.delete(id);
        this.tats.set(id, newTats[i]!);
      }
      this.evictOverflow();
    }
    return decision;
  }

  /** Drop every key whose state has decayed to "fresh". O(keys), run on a timer. */
  sweep(now = this.now()): void {
    for (const [id, tat] of this.tats) if (tat <= now) this.tats.delete(id);
  }

  private evictOverflow(): void {
    if (this.tats.size <= this.maxKeys) return;
    // Least recently used first. Bounded: stops as soon as the map is back under the cap.
    for (const [id] of this.tats) {
      if (this.tats.size <= this.maxKeys) break;
      this.tats.delete(id);
    }
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    this.tats.clear();
  }
}
