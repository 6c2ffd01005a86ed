// Leader election on a coordination.k8s.io/v1 Lease, as client-go does it: take the lease
// when it is free or expired (optimistic concurrency on resourceVersion), renew every
// retryPeriod, and give up leadership (the caller exits) when a renewal cannot be done
// before renewDeadline. Releasing on shutdown lets a standby take over at once.
//
// Two things client-go also gets right and a naive loop does not:
//  - "expired" is judged by our own clock: how long since we last saw the lease record
//    change, never the holder's renewTime against our clock (clock skew between replicas
//    would let a standby take a lease its holder is still renewing);
//  - the renew deadline is a timer of its own, so a renewal request that hangs (API server
//    unreachable, a stalled connection) cannot keep us acting past the deadline: a standby
//    may take the lease after leaseDuration, and renewDeadline < leaseDuration guarantees we
//    stopped first.
import type { Logger } from 'pino';
import type { KubeObject, ObjectMeta } from '../render/objects.ts';
import { systemClock, type Clock, type Timer } from './clock.ts';
import { ApiError, type Kube } from './kube.ts';

export interface Lease extends KubeObject {
  apiVersion: 'coordination.k8s.io/v1';
  kind: 'Lease';
  metadata: ObjectMeta & { namespace: string };
  spec: { holderIdentity?: string | null; leaseDurationSeconds?: number; acquireTime?: string; renewTime?: string; leaseTransitions?: number };
}

/** The Lease API; update fails with a 409 ApiError when the Lease changed since it was read. */
export interface LeaseClient {
  get(namespace: string, name: string): Promise<Lease | undefined>;
  create(lease: Lease): Promise<void>;
  update(lease: Lease): Promise<void>;
}

export function kubeLeases(kube: Kube): LeaseClient {
  return {
    get: (namespace, name) => kube.getOrUndefined<Lease>('coordination.k8s.io/v1', 'Lease', name, namespace),
    create: async (lease) => { await kube.create(lease); },
    update: async (lease) => { await kube.update(lease); },
  };
}

export interface LeaderOptions {
  leases: LeaseClient;
  namespace: string;
  name: string;
  identity: string;
  leaseSeconds: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
  log: Logger;
  clock?: Clock;
}

const microTime = (ms: number) => new Date(ms).toISOString().replace('Z', '000Z');

export class LeaderElector {
  private readonly o: LeaderOptions;
  private stopped = false;
  private readonly clock: Clock;
  private timer: Timer | undefined;
  private deadline: Timer | undefined;
  /** The lease record as last seen, and when (our clock) it last changed. */
  private observed: { record: string; at: number } | undefined;
  isLeader = false;

  constructor(o: LeaderOptions) {
    this.o = o;
    this.clock = o.clock ?? systemClock;
  }

  private async tryAcquireOrRenew(): Promise<boolean> {
    const { leases, namespace, name, identity, leaseSeconds } = this.o;
    const existing = await leases.get(namespace, name);
    const now = this.clock.now();
    if (!existing) {
      await leases.create({
        apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name, namespace },
        spec: { holderIdentity: identity, leaseDurationSeconds: leaseSeconds, acquireTime: microTime(now), renewTime: microTime(now), leaseTransitions: 0 },
      });
      return true;
    }
    const s = existing.spec;
    const record = JSON.stringify([s.holderIdentity, s.renewTime, s.acquireTime, s.leaseDurationSeconds]);
    if (this.observed?.record !== record) this.observed = { record, at: now };
    const held = s.holderIdentity && s.holderIdentity !== identity && this.observed.at + (s.leaseDurationSeconds ?? leaseSeconds) * 1000 > now;
    if (held) return false;
    const mine = s.holderIdentity === identity;
    const lease: Lease = {
      ...existing,
      spec: {
        ...s,
        holderIdentity: identity,
        leaseDurationSeconds: leaseSeconds,
        renewTime: microTime(now),
        ...(mine ? {} : { acquireTime: microTime(now), leaseTransitions: (s.leaseTransitions ?? 0) + 1 }),
      },
    };
    await leases.update(lease); // 409 on a concurrent change: we lost the race
    return true;
  }

  /** Resolves once leading; calls onLost if leadership is lost later. */
  async run(onLost: (why: string) => void): Promise<void> {
    const { log, retryPeriodMs, renewDeadlineMs } = this.o;
    let acquiredAt = 0;
    for (;;) {
      if (this.stopped) return;
      try {
        acquiredAt = this.clock.now();
        if (await this.tryAcquireOrRenew()) break;
      } catch (e) {
        if (!(e instanceof ApiError && e.status === 409)) log.warn({ err: (e as Error).message }, 'leader election attempt failed');
      }
      await new Promise<void>((r) => { this.timer = this.clock.after(retryPeriodMs, r); });
    }
    this.isLeader = true;
    log.info({ lease: `${this.o.namespace}/${this.o.name}`, identity: this.o.identity }, 'became leader');
    const lose = (why: string) => {
      if (!this.isLeader) return;
      this.isLeader = false;
      this.stopped = true; // a renewal still in flight must not be followed by another one
      this.timer?.cancel();
      this.deadline?.cancel();
      onLost(why);
    };
    // Measured from when the last successful attempt started: that is the renewTime it wrote.
    const arm = (startedAt: number) => {
      this.deadline?.cancel();
      this.deadline = this.clock.after(Math.max(0, startedAt + renewDeadlineMs - this.clock.now()), () => lose('could not renew the lease before the deadline'));
    };
    arm(acquiredAt);
    const renew = async () => {
      if (this.stopped) return;
      const startedAt = this.clock.now();
      try {
        if (!(await this.tryAcquireOrRenew())) return lose('another holder took the lease');
        if (this.isLeader) arm(startedAt);
      } catch (e) {
        log.warn({ err: (e as Error).message }, 'lease renewal failed');
      }
      if (this.stopped) return;
      this.timer = this.clock.after(retryPeriodMs, () => void renew());
    };
    this.timer = this.clock.after(retryPeriodMs, () => void renew());
  }

  /** Stops renewing and, when leading, releases the lease so a standby takes over at once. */
  async release(): Promise<void> {
    this.stopped = true;
    this.timer?.cancel();
    this.deadline?.cancel();
    if (!this.isLeader) return;
    this.isLeader = false;
    const { leases, namespace, name, identity } = this.o;
    // A renewal already in flight may land between our read and our write (409): read again.
    for (let attempt = 1; ; attempt++) {
      try {
        const l = await leases.get(namespace, name);
        if (l?.spec.holderIdentity !== identity) return;
        await leases.update({ ...l, spec: { ...l.spec, holderIdentity: null, leaseDurationSeconds: 1, renewTime: microTime(this.clock.now()) } });
        return;
      } catch (e) {
        if (e instanceof ApiError && e.status === 409 && attempt < 3) continue;
        this.o.log.warn({ err: (e as Error).message }, 'could not release the lease');
        return;
      }
    }
  }
}
