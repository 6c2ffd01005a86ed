// The DKIM rotation gate against real DNS: two authoritative servers on loopback (the
// operator's --dns-servers), the operator's own lookup (seenSelectors) and its pure plan,
// stepped through time with records added, published on one server only, and removed. The
// property under test: signing never switches to a selector whose record is not in DNS.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { planDkim, signingKeys, waitingKeys, type DkimState } from '../../operator/render/dkim.ts';
import { dnsRecords } from '../../operator/render/dns-records.ts';
import type { DomainInternal } from '../../operator/render/domain-internal.ts';
import { generateDkimKey } from '../../operator/controllers/domain-secrets.ts';
import { seenSelectors, verifyDkimRecords } from '../../operator/controllers/dns-verification.ts';
import { startDnsServer, type TestDnsServer, type Zone } from '../support/dns-server.ts';
import { domainObject } from './fixtures.ts';

const DOMAIN = 'gate.test';
const h = 3_600_000;
const t0 = Date.parse('2026-01-01T00:00:00Z');
const spec = domainObject('d', { domain: DOMAIN, relayRef: { name: 'r' }, dkim: { rotationDelay: '2h', publishWithin: '6h' } }).spec.dkim;

let a: TestDnsServer;
let b: TestDnsServer;
beforeAll(async () => {
  a = await startDnsServer();
  b = await startDnsServer();
});
afterAll(async () => {
  await a?.close();
  await b?.close();
});

/** A zone holding the DKIM records of the given selectors, exactly as status.dnsRecords gives them. */
function zoneWith(internal: DomainInternal, selectors: string[]): Zone {
  const zone: Zone = {};
  for (const r of dnsRecords(DOMAIN, internal.dkim, internal.pems)) {
    if (r.selector !== undefined && selectors.includes(r.selector)) zone[r.name] = { TXT: [r.values.join('')] };
  }
  return zone;
}

describe('DKIM rotation gated on DNS (loopback DNS servers)', () => {
  it('switches only after every resolver has shown the new record for rotationDelay; a late or lost record holds the old key', async () => {
    const servers = [a.address, b.address];
    const internal: DomainInternal = { dkim: { keys: [] }, pems: {} };
    // one reconcile: look up the waiting keys, plan, generate what the plan asks for
    const step = async (now: number, rotate?: string) => {
      const waiting = waitingKeys(internal.dkim).filter((k) => internal.pems[k.selector]);
      const dnsSeen = waiting.length ? await seenSelectors(DOMAIN, waiting, internal, servers) : undefined;
      const plan = planDkim({ spec, state: internal.dkim, now, ...(rotate ? { rotateAnnotation: rotate } : {}), ...(dnsSeen ? { dnsSeen } : {}) });
      for (const g of plan.generate) internal.pems[g.selector] = await generateDkimKey(g.algorithm);
      internal.dkim = plan.state as DkimState;
      return { plan, signing: signingKeys(internal.dkim, now).map((k) => k.selector) };
    };

    expect((await step(t0)).signing).toEqual(['mailfleet']);
    a.setZone(zoneWith(internal, ['mailfleet']));
    b.setZone(zoneWith(internal, ['mailfleet']));
    expect(await verifyDkimRecords(DOMAIN, internal, servers)).toMatchObject({ ok: true });

    const rot = await step(t0 + h, 'r1');
    expect(rot.plan.generate.map((g) => g.selector)).toEqual(['mailfleet-2']);
    // far past rotationDelay, the record still unpublished: the old key signs, and after
    // publishWithin the rotation is reported blocked
    expect((await step(t0 + 4 * h, 'r1')).signing).toEqual(['mailfleet']);
    const late = await step(t0 + 8 * h, 'r1');
    expect(late.signing).toEqual(['mailfleet']);
    expect(late.plan.blocked).toEqual(['mailfleet-2']);

    // published on one of the two resolvers only: not seen
    a.setZone(zoneWith(internal, ['mailfleet', 'mailfleet-2']));
    expect(await seenSelectors(DOMAIN, waitingKeys(internal.dkim), internal, servers)).toEqual({ 'mailfleet-2': false });
    expect((await step(t0 + 9 * h, 'r1')).signing).toEqual(['mailfleet']);

    // a wrong value (a paste that cut the key) does not count either
    const wrong = zoneWith(internal, ['mailfleet', 'mailfleet-2']);
    const name = 'mailfleet-2._domainkey.gate.test.';
    wrong[name] = { TXT: [(wrong[name]?.TXT?.[0] ?? '').slice(0, 255)] };
    b.setZone(wrong);
    expect((await step(t0 + 10 * h, 'r1')).signing).toEqual(['mailfleet']);

    // on both: the wait starts; gone again before rotationDelay: it starts over
    b.setZone(zoneWith(internal, ['mailfleet', 'mailfleet-2']));
    const seen = await step(t0 + 11 * h, 'r1');
    expect(seen.signing).toEqual(['mailfleet']);
    expect(seen.plan.blocked).toEqual([]);
    b.setZone(zoneWith(internal, ['mailfleet']));
    const lost = await step(t0 + 12 * h, 'r1');
    expect(lost.plan.events.map((e) => e.reason)).toContain('DKIMRecordLost');
    expect((await step(t0 + 13.5 * h, 'r1')).signing).toEqual(['mailfleet']);

    b.setZone(zoneWith(internal, ['mailfleet', 'mailfleet-2']));
    expect((await step(t0 + 14 * h, 'r1')).signing).toEqual(['mailfleet']);
    expect((await step(t0 + 15 * h, 'r1')).signing).toEqual(['mailfleet']);
    const switched = await step(t0 + 16 * h, 'r1');
    expect(switched.signing).toEqual(['mailfleet-2']);
    expect(switched.plan.events.map((e) => e.reason)).toEqual(['DKIMRotated']);
    // the old selector stays published (listed in the records) while it retires
    expect(dnsRecords(DOMAIN, internal.dkim, internal.pems).filter((r) => r.purpose === 'dkim').map((r) => r.selector)).toEqual(['mailfleet', 'mailfleet-2']);
  });
});
