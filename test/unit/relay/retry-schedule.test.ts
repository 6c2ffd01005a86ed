// The retry schedule: backoff steps, the last one repeating, and the expiry deadline.
import { describe, expect, it } from 'vitest';
import { backoffAfter, isExpired, nextAttemptAt } from '../../../relay/queue/schedule.ts';

const policy = { retrySchedule: [60_000, 300_000, 900_000], maxLifetime: 86_400_000 };

describe('retry schedule', () => {
  it('walks the schedule and repeats its last step', () => {
    expect([1, 2, 3, 4, 9].map((n) => backoffAfter(n, policy))).toEqual([60_000, 300_000, 900_000, 900_000, 900_000]);
  });
  it('never schedules past the expiry, so the last try happens at the deadline', () => {
    expect(nextAttemptAt(1, 0, 1000, policy)).toBe(61_000);
    expect(nextAttemptAt(5, 0, 86_000_000, policy)).toBe(86_400_000);
    expect(isExpired(0, 86_399_999, policy)).toBe(false);
    expect(isExpired(0, 86_400_000, policy)).toBe(true);
  });
});
