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
import { ApiError, type Kube } from './kube.ts';

export interface LeaderOptions {
  kube: Kube;
  namespace: string;
  name: string;
  identity: string;
  leaseSeconds: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
  log: Logger;
}

interface Lease {
  apiVersion: 'coordination.k8s.io/v1';
  kind: 'Lease';
  metadata: { name: string; namespace: string; resourceVersion?: string };
  spec: { holderIdentity?: string | null; leaseDurationSeconds?: number; acquireTime?: string; renewTime?: string; leaseTransitions?: number };
}

const microTime = (d = new Date()) => d.toISOString().replace('Z', '000Z');

export class LeaderElector {
  private readonly o: LeaderOptions;
  private stopped = false;
  private timer: NodeJS.Timeout | undefined;
  private deadline: NodeJS.Timeout | undefined;
  /** The lease record as last seen, and when (our clock) it last changed. */
  private observed: { record: string; at: number } | undefined;
  isLeader = false;

  constructor(o: LeaderOptions) {
    this.o = o;
  }

  private async tryAcquireOrRenew(): Promise<boolean> {
    const { kube, namespace, name, identity, leaseSeconds } = this.o;
    const now = new Date();
    const existing = await kube.getOrUndefined<Lease>('coordination.k8s.io/v1', 'Lease', name, namespace);
    if (!existing) {
      await kube.create({
        apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name, namespace },
        spec: { holderIdentity: identity, leaseDurationSeconds: leaseSeconds, acquireTime: microTime(now), renewTime: microTime(now), leaseTransitions: 0 },
      } as never);
      return true;
    }
    const s = existing.spec;
    const record = JSON.stringify([s.holderIdentity, s.renewTime, s.acquireTime, s.leaseDurationSeconds]);
    if (this.observed?.record !== record) this.observed = { record, at: now.getTime() };
    const held = s.holderIdentity && s.holderIdentity !== identity && this.observed.at + (s.leaseDurationSeconds ?? leaseSeconds) * 1000 > now.getTime();
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
    await kube.update(lease as never); // 409 on a concurrent change: we lost the race
    return true;
  }

  /** Resolves once leading; calls onLost if leadership is lost later. */
  async run(onLost: (why: string) => void): Promise<void> {
    const { log, retryPeriodMs, renewDeadlineMs } = this.o;
    let acquiredAt = 0;
    for (;;) {
      if (this.stopped) return;
      try {
        acquiredAt = Date.now();
        if (await this.tryAcquireOrRenew()) break;
      } catch (e) {
        if (!(e instanceof ApiError && e.status === 409)) log.warn({ err: (e as Error).message }, 'leader election attempt failed');
      }
      await new Promise((r) => { this.timer = setTimeout(r, retryPeriodMs); });
    }
    this.isLeader = true;
    log.info({ lease: `${this.o.namespace}/${this.o.name}`, identity: this.o.identity }, 'became leader');
    const lose = (why: string) => {
      if (!this.isLeader) return;
      this.isLeader = false;
      this.stopped = true; // a renewal still in flight must not be followed by another one
      clearTimeout(this.timer);
      clearTimeout(this.deadline);
      onLost(why);
    };
    // Measured from when the last successful attempt started: that is the renewTime it wrote.
    const arm = (startedAt: number) => {
      clearTimeout(this.deadline);
      this.deadline = setTimeout(() => lose('could not renew the lease before the deadline'), Math.max(0, startedAt + renewDeadlineMs - Date.now()));
    };
    arm(acquiredAt);
    const renew = async () => {
      if (this.stopped) return;
      const startedAt = Date.now();
      try {
        if (!(await this.tryAcquireOrRenew())) return lose('another holder took the lease');
        if (this.isLeader) arm(startedAt);
      } catch (e) {
        log.warn({ err: (e as Error).message }, 'lease renewal failed');
      }
      if (this.stopped) return;
      this.timer = setTimeout(renew, retryPeriodMs);
    };
    this.timer = setTimeout(renew, retryPeriodMs);
  }

  /** Stops renewing and, when leading, releases the lease so a standby takes over at once. */
  async release(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    clearTimeout(this.deadline);
    if (!this.isLeader) return;
    this.isLeader = false;
    const { kube, namespace, name, identity } = this.o;
    try {
      const l = await kube.get<Lease>('coordination.k8s.io/v1', 'Lease', name, namespace);
      if (l.spec.holderIdentity !== identity) return;
      await kube.update({ ...l, spec: { ...l.spec, holderIdentity: null, leaseDurationSeconds: 1, renewTime: microTime() } } as never);
    } catch (e) {
      this.o.log.warn({ err: (e as Error).message }, 'could not release the lease');
    }
  }
}
