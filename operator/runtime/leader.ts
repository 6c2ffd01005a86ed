// Leader election on a coordination.k8s.io/v1 Lease, as client-go does it: take the lease
// when it is free or expired (optimistic concurrency on resourceVersion), renew every
// retryPeriod, and give up leadership (the caller exits) when a renewal cannot be done
// before renewDeadline. Releasing on shutdown lets a standby take over at once.
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
    const renewed = s.renewTime ? Date.parse(s.renewTime) : 0;
    const held = s.holderIdentity && s.holderIdentity !== identity && renewed + (s.leaseDurationSeconds ?? leaseSeconds) * 1000 > now.getTime();
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
    for (;;) {
      if (this.stopped) return;
      try {
        if (await this.tryAcquireOrRenew()) break;
      } catch (e) {
        if (!(e instanceof ApiError && e.status === 409)) log.warn({ err: (e as Error).message }, 'leader election attempt failed');
      }
      await new Promise((r) => { this.timer = setTimeout(r, retryPeriodMs); });
    }
    this.isLeader = true;
    log.info({ lease: `${this.o.namespace}/${this.o.name}`, identity: this.o.identity }, 'became leader');
    let lastRenew = Date.now();
    const renew = async () => {
      if (this.stopped) return;
      try {
        if (await this.tryAcquireOrRenew()) lastRenew = Date.now();
        else { this.isLeader = false; onLost('another holder took the lease'); return; }
      } catch (e) {
        log.warn({ err: (e as Error).message }, 'lease renewal failed');
      }
      if (Date.now() - lastRenew > renewDeadlineMs) { this.isLeader = false; onLost('could not renew the lease before the deadline'); return; }
      this.timer = setTimeout(renew, retryPeriodMs);
    };
    this.timer = setTimeout(renew, retryPeriodMs);
  }

  /** Stops renewing and, when leading, releases the lease so a standby takes over at once. */
  async release(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
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
