// The scale-down/deletion drain as a pure plan (operator/render/drain.ts): who is asked to
// drain, when the StatefulSet shrinks, which volumes may go, what the status says.
import { describe, expect, it } from 'vitest';
import { DRAIN_FINALIZER, SKIP_DRAIN_ANNOTATION, planDrain, type DrainPod, type PodProgress } from '../../../operator/render/drain.ts';
import type { EmailRelay } from '../../../operator/render/objects.ts';
import { relayObject } from '../../operator/fixtures.ts';

const NOW = new Date('2026-12-01T12:00:00Z');
const relay = (replicas: number, meta: Partial<EmailRelay['metadata']> = {}): EmailRelay => {
  const r = relayObject('queue', { replicas, queue: { maxDrainTime: '30m' } });
  return { ...r, metadata: { ...r.metadata, finalizers: [DRAIN_FINALIZER], ...meta } };
};
const pods = (n: number, drain: Record<number, string> = {}): DrainPod[] =>
  Array.from({ length: n }, (_, i) => ({ ordinal: i, name: `queue-${i}`, exists: true, drainRequested: drain[i] }));
const progress = (p: Record<string, PodProgress>) => new Map(Object.entries(p));

describe('planDrain', () => {
  it('adds the finalizer to a persistent relay and does nothing else while nobody leaves', () => {
    const r = relayObject('queue', { replicas: 3 });
    expect(planDrain({ relay: r, liveReplicas: 3, pods: [], progress: new Map(), now: NOW }))
      .toEqual({ annotate: [], withdraw: [], deleteClaims: [], workloadReplicas: 3, finalizer: 'add', active: false });
  });

  it('3→1: asks pods 1 and 2 to drain and keeps the StatefulSet at 3 until both report an empty queue', () => {
    const first = planDrain({ relay: relay(1), liveReplicas: 3, pods: pods(3), progress: new Map(), now: NOW });
    expect(first).toMatchObject({ annotate: ['queue-1', 'queue-2'], workloadReplicas: 3, deleteClaims: [], finalizer: 'keep', active: true });
    expect(first.condition).toMatchObject({ phase: 'Progressing', reason: 'DrainingPods' });

    const asked = pods(3, { 1: '2026-12-01T11:59:00Z', 2: '2026-12-01T11:59:00Z' });
    const busy = planDrain({ relay: relay(1), liveReplicas: 3, pods: asked, progress: progress({ 'queue-1': { draining: true, queued: 0 }, 'queue-2': { draining: true, queued: 7 } }), now: NOW });
    expect(busy).toMatchObject({ annotate: [], workloadReplicas: 3, deleteClaims: [] });
    expect(busy.condition?.message).toBe('scale-down 3→1: 1/2 leaving pods drained; 7 messages still queued on queue-2 (7)');

    // an open SMTP session could still commit a message: not drained yet
    const session = planDrain({ relay: relay(1), liveReplicas: 3, pods: asked, progress: progress({ 'queue-1': { draining: true, queued: 0 }, 'queue-2': { draining: true, queued: 0, sessions: 1 } }), now: NOW });
    expect(session.workloadReplicas).toBe(3);

    const done = planDrain({ relay: relay(1), liveReplicas: 3, pods: asked, progress: progress({ 'queue-1': { draining: true, queued: 0 }, 'queue-2': { draining: true, queued: 0, sessions: 0 } }), now: NOW });
    expect(done).toMatchObject({ workloadReplicas: 1, deleteClaims: ['data-queue-1', 'data-queue-2'], active: false });
    expect(done.condition).toBeUndefined();
  });

  it('a pod that cannot be asked counts as holding mail; past maxDrainTime the relay is Stalled, never shrunk', () => {
    const asked = pods(2, { 1: '2026-12-01T11:00:00Z' });
    const plan = planDrain({ relay: relay(1), liveReplicas: 2, pods: asked, progress: progress({ 'queue-1': { error: 'connection refused' } }), now: NOW });
    expect(plan).toMatchObject({ workloadReplicas: 2, deleteClaims: [], condition: { phase: 'Degraded', reason: 'DrainStalled' } });
    expect(plan.condition?.message).toContain('no progress from queue-1');
    expect(plan.condition?.message).toContain('the pods and their volumes stay until their queues are empty');
  });

  it('skip-drain on a scale-down: the StatefulSet follows spec.replicas at once and no volume is deleted', () => {
    const asked = pods(3, { 1: '2026-12-01T11:00:00Z', 2: '2026-12-01T11:00:00Z' });
    const skip = relay(1, { annotations: { [SKIP_DRAIN_ANNOTATION]: 'true' } });
    expect(planDrain({ relay: skip, liveReplicas: 3, pods: asked, progress: progress({ 'queue-1': { draining: true, queued: 4 } }), now: NOW }))
      .toMatchObject({ workloadReplicas: 1, deleteClaims: [], annotate: [], active: false, finalizer: 'keep' });
    expect(planDrain({ relay: relay(1), liveReplicas: 3, pods: asked, progress: new Map(), now: NOW }).condition?.message)
      .toContain('annotate the EmailRelay mailfleet.io/skip-drain="true" to scale down now and keep the volumes');
  });

  it('scaled back up before the drain finished: the requests are withdrawn and nothing is deleted', () => {
    const asked = pods(3, { 1: '2026-12-01T11:59:00Z', 2: '2026-12-01T11:59:00Z' });
    expect(planDrain({ relay: relay(3), liveReplicas: 3, pods: asked, progress: new Map(), now: NOW }))
      .toMatchObject({ withdraw: ['queue-1', 'queue-2'], deleteClaims: [], workloadReplicas: 3, active: false });
    expect(planDrain({ relay: relay(2), liveReplicas: 3, pods: asked, progress: new Map(), now: NOW }))
      .toMatchObject({ withdraw: ['queue-1'], annotate: [], workloadReplicas: 3 });
  });

  it('deletion: every pod drains; the finalizer goes only when all are empty (then their volumes too); skip-drain lets it go at once, volumes kept', () => {
    const deleting = relay(2, { deletionTimestamp: '2026-12-01T11:59:30Z' });
    const waiting = planDrain({ relay: deleting, liveReplicas: 2, pods: pods(2), progress: new Map(), now: NOW });
    expect(waiting).toMatchObject({ annotate: ['queue-0', 'queue-1'], finalizer: 'keep', condition: { reason: 'DrainingPods' } });
    expect(waiting.condition?.message).toMatch(/^deletion: 0\/2 leaving pods drained/);
    const asked = pods(2, { 0: '2026-12-01T11:59:30Z', 1: '2026-12-01T11:59:30Z' });
    const empty = progress({ 'queue-0': { draining: true, queued: 0 }, 'queue-1': { draining: true, queued: 0 } });
    expect(planDrain({ relay: deleting, liveReplicas: 2, pods: asked, progress: empty, now: NOW }))
      .toMatchObject({ finalizer: 'remove', deleteClaims: ['data-queue-0', 'data-queue-1'] });
    const skip = relay(2, { deletionTimestamp: '2026-12-01T11:59:30Z', annotations: { [SKIP_DRAIN_ANNOTATION]: 'true' } });
    expect(planDrain({ relay: skip, liveReplicas: 2, pods: asked, progress: new Map(), now: NOW }))
      .toMatchObject({ finalizer: 'remove', deleteClaims: [], annotate: [] });
  });

  describe('a Deployment (emptyDir queue)', () => {
    const deployment = (meta: Partial<EmailRelay['metadata']> = {}, replicas = 2): EmailRelay => {
      const r = relayObject('web', { replicas, queue: { persistence: { enabled: false }, maxDrainTime: '30m' } });
      return { ...r, metadata: { ...r.metadata, finalizers: [DRAIN_FINALIZER], ...meta } };
    };
    // no ordinals: the pods a ReplicaSet named
    const webPods = (drain: Record<string, string> = {}, names = ['web-7d9f-abcde', 'web-7d9f-fghij']): DrainPod[] =>
      names.map((name) => ({ name, exists: true, drainRequested: drain[name] }));
    const deleting = { deletionTimestamp: '2026-12-01T11:59:30Z' };

    it('gets the finalizer, and scale-down or rollout stay the pods\' own SIGTERM hand-off: nobody is asked, the Deployment follows spec.replicas', () => {
      const bare = relayObject('web', { replicas: 3, queue: { persistence: { enabled: false } } });
      expect(planDrain({ relay: bare, liveReplicas: undefined, pods: [], progress: new Map(), now: NOW }))
        .toEqual({ annotate: [], withdraw: [], deleteClaims: [], workloadReplicas: 3, finalizer: 'add', active: false });
      expect(planDrain({ relay: deployment({}, 1), liveReplicas: undefined, pods: webPods(), progress: new Map(), now: NOW }))
        .toEqual({ annotate: [], withdraw: [], deleteClaims: [], workloadReplicas: 1, finalizer: 'keep', active: false });
    });

    it('deletion: every pod is asked to drain; the finalizer stays until each reports draining, empty and without sessions', () => {
      const first = planDrain({ relay: deployment(deleting), liveReplicas: undefined, pods: webPods(), progress: new Map(), now: NOW });
      expect(first).toMatchObject({ annotate: ['web-7d9f-abcde', 'web-7d9f-fghij'], finalizer: 'keep', deleteClaims: [], active: true, requeueMs: 5_000 });
      expect(first.condition).toEqual({ phase: 'Progressing', reason: 'DrainingPods', message: 'deletion: 0/2 leaving pods drained; no progress from web-7d9f-abcde, web-7d9f-fghij' });

      const asked = webPods({ 'web-7d9f-abcde': '2026-12-01T11:59:30Z', 'web-7d9f-fghij': '2026-12-01T11:59:30Z' });
      const busy = planDrain({ relay: deployment(deleting), liveReplicas: undefined, pods: asked, now: NOW,
        progress: progress({ 'web-7d9f-abcde': { draining: true, queued: 0, sessions: 0 }, 'web-7d9f-fghij': { draining: true, queued: 4, sessions: 0 } }) });
      expect(busy).toMatchObject({ annotate: [], finalizer: 'keep', active: true });
      expect(busy.condition?.message).toBe('deletion: 1/2 leaving pods drained; 4 messages still queued on web-7d9f-fghij (4)');
      // not yet draining (its kubelet has not written the annotation), or a session still open: not drained
      for (const p of [{ draining: false, queued: 0 }, { draining: true, queued: 0, sessions: 1 }]) {
        expect(planDrain({ relay: deployment(deleting), liveReplicas: undefined, pods: asked, now: NOW,
          progress: progress({ 'web-7d9f-abcde': { draining: true, queued: 0 }, 'web-7d9f-fghij': p }) }).finalizer).toBe('keep');
      }

      const empty = progress({ 'web-7d9f-abcde': { draining: true, queued: 0, sessions: 0 }, 'web-7d9f-fghij': { draining: true, queued: 0 } });
      const done = planDrain({ relay: deployment(deleting), liveReplicas: undefined, pods: asked, progress: empty, now: NOW });
      expect(done).toEqual({ annotate: [], withdraw: [], deleteClaims: [], workloadReplicas: 2, finalizer: 'remove', active: false });
    });

    it('deletion: a pod already going (deletionTimestamp) is not waited for; a new one the ReplicaSet made meanwhile is asked too; no pods: the finalizer goes', () => {
      const pods: DrainPod[] = [
        { name: 'web-7d9f-abcde', exists: false, drainRequested: undefined },
        { name: 'web-7d9f-fghij', exists: true, drainRequested: '2026-12-01T11:59:30Z' },
        { name: 'web-7d9f-klmno', exists: true, drainRequested: undefined },
      ];
      const plan = planDrain({ relay: deployment(deleting), liveReplicas: undefined, pods, progress: progress({ 'web-7d9f-fghij': { draining: true, queued: 0 } }), now: NOW });
      expect(plan).toMatchObject({ annotate: ['web-7d9f-klmno'], finalizer: 'keep' });
      expect(plan.condition?.message).toBe('deletion: 1/2 leaving pods drained; no progress from web-7d9f-klmno');
      expect(planDrain({ relay: deployment(deleting), liveReplicas: undefined, pods: [], progress: new Map(), now: NOW }).finalizer).toBe('remove');
    });

    it('deletion past maxDrainTime is DrainStalled, still held, and names skip-drain and what it costs (no volumes to keep)', () => {
      const pods = webPods({ 'web-7d9f-abcde': '2026-12-01T11:00:00Z', 'web-7d9f-fghij': 'not a time' });
      const plan = planDrain({ relay: deployment(deleting), liveReplicas: undefined, pods, now: NOW,
        progress: progress({ 'web-7d9f-abcde': { draining: true, queued: 2 }, 'web-7d9f-fghij': { error: 'connection refused' } }) });
      expect(plan).toMatchObject({ finalizer: 'keep', annotate: [], condition: { phase: 'Degraded', reason: 'DrainStalled' } });
      expect(plan.condition?.message).toBe('deletion: 0/2 leaving pods drained after 60 min (queue.maxDrainTime 30m): 2 messages still queued on web-7d9f-abcde (2); no progress from web-7d9f-fghij;'
        + ' the Deployment and its pods stay until their queues are empty (annotate the EmailRelay mailfleet.io/skip-drain="true" to delete now: the mail still queued is lost with the pods\' emptyDir volumes)');
    });

    it('skip-drain: the deletion goes at once, nobody is asked, and the notice says the queued mail is lost', () => {
      const skip = deployment({ ...deleting, annotations: { [SKIP_DRAIN_ANNOTATION]: 'true' } });
      const plan = planDrain({ relay: skip, liveReplicas: undefined, pods: webPods(), progress: progress({ 'web-7d9f-abcde': { draining: false, queued: 9 } }), now: NOW });
      expect(plan).toMatchObject({ finalizer: 'remove', annotate: [], active: false, notice: { reason: 'DrainSkipped' } });
      expect(plan.condition).toBeUndefined();
      expect(plan.notice?.message).toContain('lost with their emptyDir volumes');
      // a deletion that is not ours to hold (no finalizer) is left alone
      const bare = relayObject('web', { replicas: 2, queue: { persistence: { enabled: false } } });
      expect(planDrain({ relay: { ...bare, metadata: { ...bare.metadata, ...deleting } }, liveReplicas: undefined, pods: webPods(), progress: new Map(), now: NOW }))
        .toMatchObject({ finalizer: 'keep', annotate: [], active: false });
    });
  });
});
