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

/**
 * Where an object stands, as one of three phases, and the five summary conditions every
 * reader expects from it: Ready/Progressing/Degraded (kubectl, Argo CD) and kstatus'
 * Reconciling/Stalled (Flux, kpt, cli-utils), which mirror Progressing/Degraded so the two
 * vocabularies can never disagree.
 */
export type Phase = 'Ready' | 'Progressing' | 'Degraded';

export function summaryConditions(phase: Phase, reason: string, message: string): ConditionInput[] {
  const progressing = phase === 'Progressing';
  const degraded = phase === 'Degraded';
  const prog = progressing ? [reason, message] as const : phase === 'Ready' ? ['Complete', 'nothing left to do'] as const : [reason, 'stopped: see Degraded'] as const;
  const deg = degraded ? [reason, message] as const : ['AsExpected', 'no permanent error'] as const;
  return [
    condition('Ready', phase === 'Ready', reason, message),
    condition('Progressing', progressing, prog[0], prog[1]),
    condition('Reconciling', progressing, prog[0], prog[1]),
    condition('Degraded', degraded, deg[0], deg[1]),
    condition('Stalled', degraded, deg[0], deg[1]),
  ];
}
