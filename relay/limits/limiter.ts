// The one interface the intake and delivery loop use; local and Redis backends implement it.
import type { Decision } from './gcra.ts';
import type { RateLimit } from './schema.ts';

export type { Decision };

export interface RateLimiter {
  /**
   * Take `cost` cells from `key` under `rule` (all of its periods must allow).
   * Never rejects: backend failures are mapped to a decision by the backend's fail mode.
   */
  take(key: string, rule: RateLimit, cost?: number): Promise<Decision>;
  /** Stop timers and (if owned) connections. */
  close(): Promise<void>;
}
