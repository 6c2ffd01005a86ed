// Leader election against an in-memory Lease, on a clock the test moves: taking a free or
// expired Lease, never a renewed one whatever its renewTime says (clock skew), giving up
// before the renew deadline when renewals hang, and handing over on release.
import { describe, expect, it } from 'vitest';
import { LeaderElector } from '../../../operator/runtime/leader.ts';
import { FakeClock, FakeLeases, silentLog } from './fakes.ts';
import type { Lease } from '../../../operator/runtime/leader.ts';

const LEASE_S = 15;
const RENEW_DEADLINE_MS = 10_000;
const RETRY_MS = 2_000;

function elector(identity: string, leases: FakeLeases, clock: FakeClock) {
  const lost: string[] = [];
  const e = new LeaderElector({
    leases, clock, identity, log: silentLog, namespace: 'ns', name: 'l',
    leaseSeconds: LEASE_S, renewDeadlineMs: RENEW_DEADLINE_MS, retryPeriodMs: RETRY_MS,
  });
  let leading = false;
  const running = e.run((why) => lost.push(why)).then(() => { leading = true; });
  return { e, lost, running, leading: () => leading };
}

const renewTime = (l: FakeLeases) => Date.parse((l.lease?.spec.renewTime ?? '').replace('000Z', 'Z'));

describe('LeaderElector', () => {
  it('creates an absent Lease, leads, and renews it every retry period', async () => {
    const clock = new FakeClock();
    const leases = new FakeLeases();
    const a = elector('a', leases, clock);
    await clock.advance(0);
    expect(a.leading()).toBe(true);
    expect(leases.lease?.spec).toMatchObject({ holderIdentity: 'a', leaseDurationSeconds: LEASE_S, leaseTransitions: 0 });
    const first = renewTime(leases);
    await clock.advance(RETRY_MS * 5);
    expect(renewTime(leases)).toBe(first + RETRY_MS * 5);
    expect(a.lost).toEqual([]);
    await a.e.release();
  });

  it('never takes a Lease its holder keeps renewing, though the holder stamps renewTime an hour behind our clock', async () => {
    const clock = new FakeClock();
    const leases = new FakeLeases();
    leases.renewAs('other', clock.t - 3_600_000);
    const b = elector('b', leases, clock);
    for (let i = 0; i < 30; i++) {
      await clock.advance(RETRY_MS);
      leases.renewAs('other', clock.t - 3_600_000);
    }
    expect(b.leading()).toBe(false);
    expect(leases.lease?.spec.holderIdentity).toBe('other');
    await b.e.release();
  });

  it('takes a Lease nobody renewed for a full lease duration by its own clock, counting a transition', async () => {
    const clock = new FakeClock();
    const leases = new FakeLeases();
    // renewTime in the future by our clock: skew must not delay the takeover either
    leases.renewAs('gone', clock.t + 3_600_000);
    const b = elector('b', leases, clock);
    await clock.advance(LEASE_S * 1000 - RETRY_MS);
    expect(b.leading()).toBe(false);
    await clock.advance(RETRY_MS * 2);
    expect(b.leading()).toBe(true);
    expect(leases.lease?.spec).toMatchObject({ holderIdentity: 'b', leaseTransitions: 1 });
    await b.e.release();
  });

  it('gives up at the renew deadline when renewals hang, before a standby may take the Lease', async () => {
    const clock = new FakeClock();
    const leases = new FakeLeases();
    const a = elector('a', leases, clock);
    await clock.advance(0);
    expect(a.leading()).toBe(true);
    await clock.advance(RETRY_MS);
    const lastRenewal = clock.t;
    leases.hang = true;
    await clock.advance(RENEW_DEADLINE_MS - 1);
    expect(a.lost).toEqual([]);
    await clock.advance(1);
    expect(a.lost).toEqual(['could not renew the lease before the deadline']);
    // A standby could take the Lease only a full lease duration after the last renewal.
    expect(clock.t - lastRenewal).toBeLessThan(LEASE_S * 1000);
    expect(clock.pending).toBe(0);
  });

  it('gives up at once when it finds another holder in the Lease', async () => {
    const clock = new FakeClock();
    const leases = new FakeLeases();
    const a = elector('a', leases, clock);
    await clock.advance(0);
    leases.renewAs('usurper', clock.t);
    await clock.advance(RETRY_MS);
    expect(a.lost).toEqual(['another holder took the lease']);
  });

  it('releases the Lease on shutdown so a standby takes it at its next attempt', async () => {
    const clock = new FakeClock();
    const leases = new FakeLeases();
    const a = elector('a', leases, clock);
    await clock.advance(0);
    const b = elector('b', leases, clock);
    await clock.advance(RETRY_MS * 3);
    expect(b.leading()).toBe(false);
    await a.e.release();
    expect(leases.lease?.spec).toMatchObject({ holderIdentity: null, leaseDurationSeconds: 1 });
    // "expired" is still judged by b's own clock: one second after it saw the release
    await clock.advance(RETRY_MS);
    expect(b.leading()).toBe(true);
    expect(a.lost).toEqual([]);
    await b.e.release();
  });

  it('releases the Lease even when a renewal in flight lands between its read and its write', async () => {
    // what a busy API server does to a SIGTERM that arrives mid-renewal: the renewal's write
    // bumps the resourceVersion after release() read the Lease
    class RacingLeases extends FakeLeases {
      race = false;
      override async get(): Promise<Lease | undefined> {
        const seen = await super.get();
        if (this.race && this.lease) {
          this.race = false;
          this.lease = { ...this.lease, metadata: { ...this.lease.metadata, resourceVersion: `${this.lease.metadata.resourceVersion}-renewed` } };
        }
        return seen;
      }
    }
    const clock = new FakeClock();
    const leases = new RacingLeases();
    const a = elector('a', leases, clock);
    await clock.advance(0);
    expect(a.leading()).toBe(true);
    leases.race = true;
    await a.e.release();
    expect(leases.lease?.spec.holderIdentity).toBeNull();
  });
});
