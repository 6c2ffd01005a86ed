// Scale-down and deletion with queued mail, as a pure plan (docs/operator.md, "Scale-down,
// deletion and queued mail"): from the EmailRelay, its StatefulSet's replicas as they are,
// the pods that would leave and what each of them reports on /status, decide which pods
// are asked to drain (annotation), how many replicas the StatefulSet keeps, which volumes
// may go, what the status says and whether the deletion finalizer stays. A Deployment
// (emptyDir queue) drains on deletion only: its scale-down and rollout are the pods' own
// SIGTERM hand-off. The controller does the reading and writing (operator/controllers/drain.ts).
import { parseDuration } from '../../relay/util/duration.ts';
import { DRAIN_ANNOTATION } from '../../relay/handoff/annotations.ts';
import { relayNames, type EmailRelay } from './objects.ts';

export { DRAIN_ANNOTATION };
export const SKIP_DRAIN_ANNOTATION = 'mailfleet.io/skip-drain';
export const DRAIN_FINALIZER = 'mailfleet.io/drain-queue';
/** How soon a drain in progress is looked at again. */
export const DRAIN_RECHECK_MS = 5_000;

/** A relay pod's own words on /status; `error` when it could not be asked. */
export type PodProgress = { draining: boolean; queued: number; sessions?: number } | { error: string };

export interface DrainPod {
  /** The StatefulSet ordinal; a Deployment's pods have none. */
  ordinal?: number;
  name: string;
  exists: boolean;
  /** The value of its drain annotation (the time it was asked), if it has one. */
  drainRequested?: string | undefined;
}

export interface DrainInput {
  relay: EmailRelay;
  /** The StatefulSet's spec.replicas as it is now; undefined when there is none yet. */
  liveReplicas: number | undefined;
  /**
   * StatefulSet: pods by ordinal, for every ordinal below max(liveReplicas, spec.replicas) the
   * controller looked at. Deployment: while it is deleted, every pod with the relay's labels.
   */
  pods: DrainPod[];
  /** What the pods asked to drain report, by pod name. */
  progress: Map<string, PodProgress>;
  now: Date;
}

export interface DrainCondition {
  phase: 'Progressing' | 'Degraded';
  reason: 'DrainingPods' | 'DrainStalled';
  message: string;
}

export interface DrainPlan {
  /** Replicas to render into the StatefulSet (spec.replicas unless leaving pods still hold mail). */
  workloadReplicas: number;
  /** Pods to ask to drain (annotate with the time). */
  annotate: string[];
  /** Pods whose drain request is withdrawn (scaled back up before they left). */
  withdraw: string[];
  /** PVCs whose queues were seen empty: deleted once the StatefulSet no longer wants their pods. */
  deleteClaims: string[];
  finalizer: 'add' | 'remove' | 'keep';
  condition?: DrainCondition;
  /** Said once as an Event when the deletion lets go (a Deployment skipping its drain: the queues are lost). */
  notice?: { reason: 'DrainSkipped'; message: string };
  requeueMs?: number;
  /** A drain is under way or stalled: the controller reads the pods again next time. */
  active: boolean;
}

export const claimName = (relay: string, ordinal: number) => `data-${relayNames(relay).workload}-${ordinal}`;
export const podName = (relay: string, ordinal: number) => `${relayNames(relay).workload}-${ordinal}`;

/** Empty and quiet: draining, nothing queued, no SMTP session that could still commit a message. */
export function drained(p: PodProgress | undefined): boolean {
  return !!p && !('error' in p) && p.draining && p.queued === 0 && (p.sessions ?? 0) === 0;
}

export function planDrain(input: DrainInput): DrainPlan {
  const { relay, now } = input;
  const spec = relay.spec;
  const name = relay.metadata.name;
  const deleting = !!relay.metadata.deletionTimestamp;
  const hasFinalizer = relay.metadata.finalizers?.includes(DRAIN_FINALIZER) ?? false;
  const none = { annotate: [], withdraw: [], deleteClaims: [], active: false };
  if (!spec.queue.persistence.enabled) return planDeploymentDrain(input, hasFinalizer);
  if (deleting && !hasFinalizer) return { ...none, workloadReplicas: input.liveReplicas ?? 0, finalizer: 'keep' };
  const skip = relay.metadata.annotations?.[SKIP_DRAIN_ANNOTATION] === 'true';
  if (deleting && skip) {
    // Let it go at once; the volumes stay (whenDeleted: Retain) for `mailfleet queue import`.
    return { ...none, workloadReplicas: input.liveReplicas ?? 0, finalizer: 'remove' };
  }
  if (skip) {
    // A person's way out of a drain that cannot finish (a pod that never comes back): the
    // StatefulSet follows spec.replicas at once and every volume stays for `mailfleet queue import`.
    return { ...none, workloadReplicas: spec.replicas, finalizer: hasFinalizer ? 'keep' : 'add' };
  }
  const finalizer = deleting || hasFinalizer ? 'keep' : 'add';
  const target = deleting ? 0 : spec.replicas;
  const current = input.liveReplicas ?? target;
  const byOrdinal = new Map(input.pods.map((p) => [p.ordinal, p]));

  const withdraw = input.pods.filter((p) => p.ordinal !== undefined && p.ordinal < target && p.exists && p.drainRequested).map((p) => p.name);
  if (target >= current) {
    // Scaling up, or back up before a drain finished: nobody leaves.
    return { ...none, withdraw, workloadReplicas: target, finalizer: deleting ? 'remove' : finalizer };
  }

  const leaving = Array.from({ length: current - target }, (_, i) => target + i);
  const annotate: string[] = [];
  const requested: number[] = [];
  for (const ord of leaving) {
    const pod = byOrdinal.get(ord);
    if (pod?.exists && !pod.drainRequested) annotate.push(pod.name);
    requested.push(requestedAt(pod, now));
  }
  const pending = leaving.filter((ord) => !drained(input.progress.get(podName(name, ord))));
  if (pending.length === 0) {
    const deleteClaims = leaving.map((ord) => claimName(name, ord));
    return { annotate, withdraw, deleteClaims, workloadReplicas: target, finalizer: deleting ? 'remove' : finalizer, active: false };
  }

  const what = deleting ? 'deletion' : `scale-down ${current}→${target}`;
  const stay = 'the pods and their volumes stay until their queues are empty';
  const skipTo = `annotate the EmailRelay mailfleet.io/skip-drain="true" to ${deleting ? 'delete' : 'scale down'} now and keep the volumes for mailfleet queue import`;
  return {
    annotate, withdraw, deleteClaims: [], workloadReplicas: current, finalizer, requeueMs: DRAIN_RECHECK_MS, active: true,
    condition: waitingCondition(input, leaving.map((ord) => podName(name, ord)), requested, { what, stay, skipTo }),
  };
}

/**
 * A Deployment: no volumes, so nothing to wait for on scale-down or rollout (a stopping pod
 * hands its queue to the ready ones on SIGTERM). Its deletion stops every pod at once, with
 * no peer left to take a queue: the finalizer holds the Deployment, and so its pods, until
 * every pod (asked to drain: intake stops, it delivers what it has) reports an empty queue.
 */
function planDeploymentDrain(input: DrainInput, hasFinalizer: boolean): DrainPlan {
  const { relay, now } = input;
  const none = { annotate: [], withdraw: [], deleteClaims: [], active: false, workloadReplicas: relay.spec.replicas };
  const deleting = !!relay.metadata.deletionTimestamp;
  if (!deleting) return { ...none, finalizer: hasFinalizer ? 'keep' : 'add' };
  if (!hasFinalizer) return { ...none, finalizer: 'keep' };
  if (relay.metadata.annotations?.[SKIP_DRAIN_ANNOTATION] === 'true') {
    return {
      ...none, finalizer: 'remove',
      notice: { reason: 'DrainSkipped', message: 'deletion with mailfleet.io/skip-drain="true": the pods go at once without draining; mail still queued on them is lost with their emptyDir volumes' },
    };
  }
  const leaving = input.pods.filter((p) => p.exists);
  const annotate = leaving.filter((p) => !p.drainRequested).map((p) => p.name);
  if (leaving.every((p) => drained(input.progress.get(p.name)))) return { ...none, annotate, finalizer: 'remove' };
  const requested = leaving.map((p) => requestedAt(p, now));
  return {
    ...none, annotate, finalizer: 'keep', requeueMs: DRAIN_RECHECK_MS, active: true,
    condition: waitingCondition(input, leaving.map((p) => p.name), requested, {
      what: 'deletion',
      stay: 'the Deployment and its pods stay until their queues are empty',
      skipTo: 'annotate the EmailRelay mailfleet.io/skip-drain="true" to delete now: the mail still queued is lost with the pods\' emptyDir volumes',
    }),
  };
}

/** When a pod was asked to drain (now when not yet, or the annotation does not parse). */
function requestedAt(pod: DrainPod | undefined, now: Date): number {
  const at = pod?.drainRequested ? Date.parse(pod.drainRequested) : now.getTime();
  return Number.isFinite(at) ? at : now.getTime();
}

/** DrainingPods, or DrainStalled past queue.maxDrainTime: how many of the leaving pods are empty, and what the others hold. */
function waitingCondition(input: DrainInput, leaving: string[], requested: number[], words: { what: string; stay: string; skipTo: string }): DrainCondition {
  const { relay, now } = input;
  const pending = leaving.filter((pod) => !drained(input.progress.get(pod)));
  let queued = 0;
  const unknown: string[] = [];
  const holding: string[] = [];
  for (const pod of pending) {
    const p = input.progress.get(pod);
    if (!p || 'error' in p) unknown.push(pod);
    else { queued += p.queued; holding.push(`${pod} (${p.queued})`); }
  }
  const since = Math.min(...requested);
  const waited = now.getTime() - since;
  const parts = [
    holding.length ? `${queued} messages still queued on ${holding.join(', ')}` : '',
    unknown.length ? `no progress from ${unknown.join(', ')}` : '',
  ].filter(Boolean).join('; ');
  const counts = `${leaving.length - pending.length}/${leaving.length} leaving pods drained`;
  const maxDrainTime = relay.spec.queue.maxDrainTime;
  return waited > parseDuration(maxDrainTime)
    ? {
      phase: 'Degraded', reason: 'DrainStalled',
      message: `${words.what}: ${counts} after ${Math.round(waited / 60_000)} min (queue.maxDrainTime ${maxDrainTime}): ${parts}; ${words.stay} (${words.skipTo})`,
    }
    : { phase: 'Progressing', reason: 'DrainingPods', message: `${words.what}: ${counts}; ${parts}` };
}
