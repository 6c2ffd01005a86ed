// metav1.Condition bookkeeping: lastTransitionTime moves only when status flips, so a
// reconcile that finds nothing new produces an identical status (and no write).
import type { Condition } from '../api/common.ts';

export interface ConditionInput {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
}

export function mergeConditions(previous: Condition[] | undefined, next: ConditionInput[], generation: number, now: Date): Condition[] {
  const before = new Map((previous ?? []).map((c) => [c.type, c]));
  return next.map((c) => {
    const old = before.get(c.type);
    const lastTransitionTime = old && old.status === c.status ? old.lastTransitionTime : now.toISOString().replace(/\.\d{3}Z$/, 'Z');
    return { type: c.type, status: c.status, observedGeneration: generation, lastTransitionTime, reason: c.reason, message: c.message };
  });
}

export const condition = (type: string, ok: boolean, reason: string, message: string): ConditionInput =>
  ({ type, status: ok ? 'True' : 'False', reason, message });

export function findCondition(conds: Condition[] | undefined, type: string): Condition | undefined {
  return conds?.find((c) => c.type === type);
}
