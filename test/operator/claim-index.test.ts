// The ClaimIndex (operator/render/claim-index.ts) against the reference resolveClaims
// (claims.ts): the same verdicts, reasons, holders and messages, for random clusters of
// SenderDomains that share domains (in any case), logins and relays across namespaces, with
// ties on creationTimestamp and relays that do not admit some of them — after building the
// index, and after every change of a random sequence of creations, edits and deletions, as
// the watch would feed it. And what it costs: a verdict looks only at its own domain's and
// login's earlier claimants, counted (not timed) through the admission function.
import { describe, expect, it } from 'vitest';
import { ClaimIndex } from '../../operator/render/claim-index.ts';
import { claimKey, relayKeyOf, resolveClaims } from '../../operator/render/claims.ts';
import type { SenderDomain } from '../../operator/render/objects.ts';
import { seededRandom as rng } from '../support/random.ts';
import { domainObject } from './fixtures.ts';

function randomDomain(r: () => number, i: number): SenderDomain {
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(r() * xs.length)] as T;
  const ns = pick(['mail', 'team-a', 'team-b']);
  const domain = pick(['a.example', 'b.example', 'c.example', 'd.example', 'A.example', 'e.example']);
  const relay = pick([{ name: 'edge' }, { name: 'edge', namespace: 'mail' }, { name: 'other' }]);
  const credentials = pick([{}, { enabled: false }, { username: 'apps' }, { username: 'b.example' }, { username: 'c.example' }]);
  // a few seconds apart at most: many ties, broken by namespace/name
  const created = `2025-01-01T00:00:0${Math.floor(r() * 4)}Z`;
  return domainObject(`sd${i}`, { domain, relayRef: relay, credentials }, ns, created);
}

/** The reference's verdicts, as the index reports them. */
function reference(all: SenderDomain[], admitted: (sd: SenderDomain) => boolean) {
  const claims = resolveClaims(all, admitted);
  const relays = [...new Set(all.map(relayKeyOf))];
  return {
    refusals: Object.fromEntries(all.map((sd) => [claimKey(sd), claims.refused.get(claimKey(sd))])),
    owners: Object.fromEntries(relays.map((k) => [k, [...claims.owners.values()].filter((sd) => relayKeyOf(sd) === k).map(claimKey).sort()])),
  };
}

function fromIndex(index: ClaimIndex<SenderDomain>, all: SenderDomain[]) {
  const relays = [...new Set(all.map(relayKeyOf))];
  return {
    refusals: Object.fromEntries(all.map((sd) => [claimKey(sd), index.refusal(sd)])),
    owners: Object.fromEntries(relays.map((k) => [k, index.owners(k).map(claimKey).sort()])),
  };
}

describe('ClaimIndex', () => {
  it('gives the verdicts of resolveClaims, for 200 random clusters and after every change the watch brings', () => {
    for (let seed = 1; seed <= 200; seed++) {
      const r = rng(seed);
      const live = new Map<string, SenderDomain>();
      // namespace team-b is not admitted by relay other (as a relay's namespace rules would)
      const admitted = (sd: SenderDomain) => !(sd.metadata.namespace === 'team-b' && sd.spec.relayRef.name === 'other');
      const index = new ClaimIndex<SenderDomain>(admitted);
      for (let step = 0; step < 40; step++) {
        const i = Math.floor(r() * 24);
        const key = (sd: SenderDomain) => claimKey(sd);
        const existing = [...live.values()].find((sd) => sd.metadata.name === `sd${i}`);
        if (existing && r() < 0.3) {
          live.delete(key(existing));
          index.remove(key(existing));
        } else {
          // a new one, or an edit of one of that name (any field but its name and namespace)
          const sd = randomDomain(r, i);
          const edited = existing ? { ...sd, metadata: existing.metadata } : sd;
          if (existing && existing.metadata.namespace !== sd.metadata.namespace) continue;
          live.set(key(edited), edited);
          index.set(edited);
        }
        const all = [...live.values()];
        expect(fromIndex(index, all), `seed ${seed} step ${step}`).toEqual(reference(all, admitted));
      }
    }
  });

  it('the holder of a domain refused for its login gives way: the next claimant of that domain owns it, as in resolveClaims', () => {
    // first holds login apps; second (same relay) is refused for apps, so it does not own b.example; third owns it
    const first = domainObject('first', { domain: 'a.example', relayRef: { name: 'r' }, credentials: { username: 'apps' } }, 'mail', '2025-01-01T00:00:00Z');
    const second = domainObject('second', { domain: 'b.example', relayRef: { name: 'r' }, credentials: { username: 'apps' } }, 'mail', '2025-01-02T00:00:00Z');
    const third = domainObject('third', { domain: 'b.example', relayRef: { name: 'r' }, credentials: { username: 'other' } }, 'mail', '2025-01-03T00:00:00Z');
    const index = new ClaimIndex<SenderDomain>();
    for (const sd of [third, second, first]) index.set(sd);
    expect(index.refusal(second)).toMatchObject({ reason: 'UsernameConflict', with: 'mail/first' });
    expect(index.refusal(third)).toBeUndefined();
    expect(index.owners('mail/r').map(claimKey)).toEqual(['mail/first', 'mail/third']);
    // first goes: second gets its login, and with it b.example; third is refused now
    index.remove('mail/first');
    expect(index.refusal(second)).toBeUndefined();
    expect(index.refusal(third)).toMatchObject({ reason: 'DomainConflict', with: 'mail/second' });
    expect(index.refusal(third)?.message).toMatch(/^domain b\.example is already claimed by SenderDomain second \(created earlier\)/);
  });

  it('a verdict looks at its own domain and login only, and a resync of N asks each admission once', () => {
    const N = 2000;
    const all = Array.from({ length: N }, (_, i) => domainObject(`d${i}`, { domain: `d${i}.example`, relayRef: { name: `r${i % 50}` } }, 'mail', '2025-01-01T00:00:00Z'));
    let asked = 0;
    const index = new ClaimIndex<SenderDomain>(() => { asked++; return true; });
    for (const sd of all) index.set(sd);
    // one verdict: its own admission, nobody else's (no other claimant of its domain or login)
    expect(index.refusal(all[1234]!)).toBeUndefined();
    expect(asked).toBe(1);
    // a resync: every SenderDomain's verdict and every relay's owners; each admission asked once
    for (const sd of all) expect(index.refusal(sd)).toBeUndefined();
    for (let r = 0; r < 50; r++) expect(index.owners(`mail/r${r}`).length).toBe(N / 50);
    expect(asked).toBe(N);
    // a change elsewhere (a relay's rules): verdicts are worked out again, on demand
    index.changed();
    index.refusal(all[7]!);
    expect(asked).toBe(N + 1);
  });

  it('decides a chain as long as a tenant can make it without running out of stack', () => {
    // Each SenderDomain shares its domain with the next and its login with the one after:
    // the verdict of the newest needs every earlier one's. 30,000 of them, asked newest first.
    const n = 30_000;
    const all = Array.from({ length: n }, (_, i) => domainObject(`sd${String(i).padStart(6, '0')}`, {
      domain: `d${Math.floor(i / 2)}.example`, relayRef: { name: 'edge' }, credentials: { username: `u${Math.floor((i - 1) / 2)}` },
    }, 'team-a', '2025-01-01T00:00:00Z'));
    const index = new ClaimIndex<SenderDomain>();
    for (const sd of all) index.set(sd);
    expect(() => index.refusal(all[n - 1]!)).not.toThrow();
    const expected = reference(all, () => true);
    expect(fromIndex(index, all)).toEqual(expected);
    // the chain alternates: every other one keeps its claim
    expect(expected.refusals[claimKey(all[n - 2]!)]).toBeUndefined();
    expect(expected.refusals[claimKey(all[n - 1]!)]?.reason).toBe('DomainConflict');
  });
});
