// GCRA (generic cell rate algorithm) as pure functions, shared by the local backend
// and mirrored by the Redis Lua script (redis-script.ts) so both decide alike.
// State per (key, period) is one number: the theoretical arrival time (TAT), in ms.
import type { RateLimit } from './schema.ts';

export interface Decision {
  allowed: boolean;
  /** 0 when allowed; otherwise how long until the same request would pass. Infinity if it never can (cost > burst). */
  retryAfterMs: number;
  /** Unit-cost requests that would still pass right now (the minimum over periods). */
  remaining?: number;
}

export interface Period {
  /** Stable name, part of the storage key: 's', 'm', 'h', 'd'. */
  name: string;
  /** Emission interval: ms per cell. */
  intervalMs: number;
  /** Cells that may pass at once. */
  burst: number;
}

const periods = [
  ['perSecond', 's', 1_000],
  ['perMinute', 'm', 60_000],
  ['perHour', 'h', 3_600_000],
  ['perDay', 'd', 86_400_000],
] as const;

/** Expand a rule into its periods, shortest first (see rateLimitSchema for burst semantics). */
export function rulePeriods(rule: RateLimit): Period[] {
  const out: Period[] = [];
  for (const [field, name, ms] of periods) {
    const n = rule[field];
    if (n === undefined) continue;
    const burst = out.length === 0 && rule.burst !== undefined ? rule.burst : n;
    out.push({ name, intervalMs: ms / n, burst });
  }
  if (out.length === 0) throw new Error('rate limit rule has no period (validate it with rateLimitSchema)');
  return out;
}

/**
 * One decision over several periods: allowed only if every period allows, and then
 * every period's TAT advances; a refusal changes nothing.
 */
export function gcraDecide(
  tats: readonly (number | undefined)[],
  ps: readonly Period[],
  nowMs: number,
  cost: number,
): { decision: Decision; newTats?: number[] } {
  let retry = 0;
  let remaining = Number.POSITIVE_INFINITY;
  const newTats: number[] = [];
  for (let i = 0; i < ps.length; i++) {
    const p = ps[i]!;
    if (cost > p.burst) return { decision: { allowed: false, retryAfterMs: Number.POSITIVE_INFINITY } };
    const tat = Math.max(tats[i] ?? nowMs, nowMs);
    const newTat = tat + cost * p.intervalMs;
    const allowAt = newTat - p.burst * p.intervalMs;
    if (nowMs < allowAt) retry = Math.max(retry, allowAt - nowMs);
    else remaining = Math.min(remaining, Math.floor((nowMs - allowAt) / p.intervalMs + 1e-9));
    newTats.push(newTat);
  }
  if (retry > 0) return { decision: { allowed: false, retryAfterMs: Math.ceil(retry) } };
  return { decision: { allowed: true, retryAfterMs: 0, remaining }, newTats };
}
