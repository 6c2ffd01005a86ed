// Retry timing, pure: when the next attempt happens and when a message has expired.
export interface RetryPolicy {
  retrySchedule: number[]; // ms between attempts; the last one repeats
  maxLifetime: number; // ms from receipt
}

/** The wait after the n-th failed attempt (n starts at 1). */
export function backoffAfter(attempt: number, policy: RetryPolicy): number {
  const s = policy.retrySchedule;
  return s[Math.min(Math.max(attempt, 1), s.length) - 1] ?? 60_000;
}

export function isExpired(receivedAt: number, now: number, policy: RetryPolicy): boolean {
  return now - receivedAt >= policy.maxLifetime;
}

/**
 * The next attempt after a deferral: the schedule's wait, but never past the expiry
 * time, so a message gets one last try when its lifetime runs out and then bounces.
 */
export function nextAttemptAt(attempt: number, receivedAt: number, now: number, policy: RetryPolicy): number {
  return Math.min(now + backoffAfter(attempt, policy), receivedAt + policy.maxLifetime);
}
