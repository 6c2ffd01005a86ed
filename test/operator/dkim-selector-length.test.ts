// A rotation appends -<generation> (and -ed with algorithm both) to spec.dkim.selector: the
// CRD caps the selector so the longest such suffix still leaves one DNS label, and the planner
// refuses, with a condition, a selector that would overflow (one stored before the cap, or a
// generation past six digits) instead of publishing a name no DNS holds. Pure; the API
// server's side: test/operator/dkim-selector.test.ts.
import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { DKIM_SELECTOR_MAX, DNS_LABEL_MAX, SELECTOR_SUFFIX_MAX } from '../../operator/api/common.ts';
import { planDkim, validSelector, type DkimState, type KeyAlgorithm } from '../../operator/render/dkim.ts';
import { dnsRecords } from '../../operator/render/dns-records.ts';
import type { DomainInternal } from '../../operator/render/domain-internal.ts';
import { renderSenderDomain } from '../../operator/render/sender-domain.ts';
import { SELECTOR_TOO_LONG } from '../../operator/render/sender-domain-status.ts';
import type { SenderDomain } from '../../operator/render/objects.ts';
import { domainObject, ed25519Pem, relayObject } from './fixtures.ts';

const rsaPem = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
const now = Date.parse('2026-01-01T00:00:00Z');
const at = new Date(now - 3_600_000).toISOString();
const longest = `s${'x'.repeat(DKIM_SELECTOR_MAX - 1)}`;
const overLong = `s${'x'.repeat(DNS_LABEL_MAX - 1)}`; // stored before the cap: 63 characters
const labels = (selector: string) => selector.split('.');
const dnsLabel = (s: string) => /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/.test(s);

/** A SenderDomain as the API server returns it, its selector set after parsing (as one stored before the cap would be). */
function withSelector(selector: string, algorithm: 'rsa-2048' | 'ed25519' | 'both'): SenderDomain {
  const sd = domainObject('d', { domain: 'example.com', relayRef: { name: 'r' }, dkim: { algorithm } });
  return { ...sd, spec: { ...sd.spec, dkim: { ...sd.spec.dkim, selector } } };
}

/** One live generation `g` of `selector` (and its -ed twin with algorithm both). */
function live(selector: string, g: number, algorithms: KeyAlgorithm[]): DkimState {
  return {
    keys: algorithms.map((algorithm) => ({ selector: algorithm === 'ed25519-sha256' && algorithms.length > 1 ? `${selector}-ed` : selector, algorithm, generation: g, publishedAt: at, activeAt: at })),
    rotateToken: 'r0',
  };
}

describe('DKIM selector length and the rotation suffix', () => {
  it('the cap leaves room for the longest suffix a rotation adds', () => {
    expect(SELECTOR_SUFFIX_MAX).toBe('-999999-ed'.length);
    expect(DKIM_SELECTOR_MAX + SELECTOR_SUFFIX_MAX).toBe(DNS_LABEL_MAX);
  });

  it.each([
    ['generation 2, algorithm both', 1, ['rsa-sha256', 'ed25519-sha256']],
    ['generation 999999 (six digits), algorithm both', 999998, ['rsa-sha256', 'ed25519-sha256']],
    ['generation 999999, rsa-2048', 999998, ['rsa-sha256']],
  ] as const)('rotating the longest allowed selector publishes valid DNS labels: %s', (_what, g, algorithms) => {
    const sd = withSelector(longest, algorithms.length > 1 ? 'both' : 'rsa-2048');
    const state = live(g === 1 ? longest : `${longest}-${g}`, g, [...algorithms]);
    const plan = planDkim({ spec: sd.spec.dkim, state, now, rotateAnnotation: 'r1' });
    expect(plan.selectorRefused).toBeUndefined();
    const added = plan.generate.map((k) => k.selector);
    expect(added).toEqual(algorithms.length > 1 ? [`${longest}-${g + 1}`, `${longest}-${g + 1}-ed`] : [`${longest}-${g + 1}`]);
    for (const sel of added) {
      expect(sel.length).toBeLessThanOrEqual(DNS_LABEL_MAX);
      expect(labels(sel).every(dnsLabel), sel).toBe(true);
      expect(validSelector(sel)).toBe(true);
    }
    if (g === 999998 && algorithms.length > 1) expect(added[1]!.length).toBe(DNS_LABEL_MAX);
    // and the records the domain is told to publish are named by DNS labels
    const pems = Object.fromEntries(plan.state.keys.map((k) => [k.selector, k.algorithm === 'rsa-sha256' ? rsaPem : ed25519Pem()]));
    const records = dnsRecords('example.com', plan.state, pems).filter((x) => x.purpose === 'dkim');
    expect(records.length).toBe(plan.state.keys.length);
    for (const r of records) {
      expect(r.name.split('.').slice(0, -1).filter((l) => l !== '_domainkey').every(dnsLabel), r.name).toBe(true);
    }
  });

  it('a selector stored before the cap: its rotation is refused with DKIMRotationBlocked SelectorTooLong, the current key keeps signing and Ready stays', () => {
    const sd = withSelector(overLong, 'rsa-2048');
    const state = live(overLong, 1, ['rsa-sha256']);
    const plan = planDkim({ spec: sd.spec.dkim, state, now, rotateAnnotation: 'r1' });
    expect(plan.generate).toEqual([]);
    expect(plan.state.keys.map((k) => k.selector)).toEqual([overLong]);
    expect(plan.selectorRefused).toBe(`no key generated for generation 2: its selector ${overLong}-2 would have 65 characters, more than the 63 of one DNS label `
      + `(rotations append -<generation>, and -ed with algorithm both); shorten spec.dkim.selector to at most ${DKIM_SELECTOR_MAX} characters and the rotation goes ahead`);
    // still requested: it goes ahead once the selector is shortened
    expect(plan.state.rotateToken).toBe('r0');
    const shortened = planDkim({ spec: { ...sd.spec.dkim, selector: 'short' }, state: plan.state, now, rotateAnnotation: 'r1' });
    expect(shortened.generate.map((k) => k.selector)).toEqual(['short-2']);
    expect(shortened.state.rotateToken).toBe('r1');

    const internal: DomainInternal = { dkim: plan.state, pems: { [overLong]: ed25519Pem() }, passwordHash: 'h' };
    const out = renderSenderDomain({ sd, relay: relayObject('r'), internal, password: 'pw', host: 'h', port: 587, now: new Date(now), selectorRefused: plan.selectorRefused });
    const cond = (t: string) => out.status.conditions!.find((c) => c.type === t);
    expect(cond('DKIMRotationBlocked')).toMatchObject({ status: 'True', reason: SELECTOR_TOO_LONG });
    expect(cond('DKIMRotationBlocked')!.message).toContain(`signing stays with the current key: no key generated for generation 2`);
    expect(cond('DKIMKeyReady')).toMatchObject({ status: 'True' });
    expect(out.ready).toBe(true);
  });

  it('a first key whose selector would overflow (algorithm both adds -ed) is not generated: DKIMKeyReady False and Degraded SelectorTooLong', () => {
    const sd = withSelector(overLong, 'both');
    const plan = planDkim({ spec: sd.spec.dkim, state: { keys: [] }, now });
    expect(plan.generate).toEqual([]);
    expect(plan.state.keys).toEqual([]);
    expect(plan.events).toEqual([]);
    expect(plan.selectorRefused).toContain(`no key generated for generation 1: its selector ${overLong}-ed would have 66 characters`);
    const out = renderSenderDomain({ sd, relay: relayObject('r'), internal: { dkim: plan.state, pems: {} }, password: 'pw', host: 'h', port: 587, now: new Date(now), selectorRefused: plan.selectorRefused });
    const cond = (t: string) => out.status.conditions!.find((c) => c.type === t);
    expect(cond('DKIMKeyReady')).toMatchObject({ status: 'False', reason: SELECTOR_TOO_LONG, message: plan.selectorRefused });
    expect(cond('Degraded')).toMatchObject({ status: 'True', reason: SELECTOR_TOO_LONG });
    expect(out.ready).toBe(false);
  });

  it('past six digits of generation the rotation is refused rather than publishing a 64-character label', () => {
    const sd = withSelector(longest, 'both');
    const plan = planDkim({ spec: sd.spec.dkim, state: live(`${longest}-999999`, 999999, ['rsa-sha256', 'ed25519-sha256']), now, rotateAnnotation: 'r1' });
    expect(plan.generate).toEqual([]);
    expect(plan.selectorRefused).toContain(`its selector ${longest}-1000000-ed would have 64 characters`);
  });
});
