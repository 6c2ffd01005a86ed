// DKIM key lifecycle of one SenderDomain, as a pure plan over the stored key state:
//
//   published ──(record seen in DNS for rotationDelay)──► active ──(next generation active)──► retiring ──(retireAfter)──► gone
//
// A rotation (annotation mailfleet.io/rotate-dkim set to a new value, or rotationPeriod
// elapsed) adds a generation whose selectors are published in status.dnsRecords at once but
// sign only once the operator has seen their exact records in DNS, without a gap, for
// rotationDelay. A clock alone never switches signing: a selector that is not in DNS would
// fail DKIM at every receiver (and DMARC p=reject domains would lose all their mail). The
// old generation keeps signing meanwhile, and stays listed until retired. A generation whose
// records have not appeared within publishWithin is reported blocked. Timestamps live in
// the state, so replaying the plan at the same instant with the same DNS answers gives the
// same result (no writes when nothing is due).
import { createPrivateKey } from 'node:crypto';
import { DKIM_SELECTOR_MAX, DNS_LABEL_MAX, SELECTOR_RE } from '../api/common.ts';
import type { SenderDomainSpec } from '../api/senderdomain.ts';
import { parseDuration } from '../../relay/util/duration.ts';

export type KeyAlgorithm = 'rsa-sha256' | 'ed25519-sha256';

/** The algorithm of a user-provided PEM key (spec.dkim.secretRef). */
export function detectAlgorithm(pem: string): KeyAlgorithm {
  const key = createPrivateKey(pem);
  if (key.asymmetricKeyType === 'ed25519') return 'ed25519-sha256';
  if (key.asymmetricKeyType === 'rsa') return 'rsa-sha256';
  throw new Error(`unsupported DKIM key type ${key.asymmetricKeyType}`);
}

export interface KeyState {
  selector: string;
  algorithm: KeyAlgorithm;
  generation: number;
  /** ISO time the key was published (created). */
  publishedAt: string;
  /** ISO time it signs from; absent while it waits for its DNS record (see seenAt). */
  activeAt?: string;
  /** ISO time since which its exact record has been seen in DNS without a gap (a waiting key). */
  seenAt?: string;
  /** ISO time it is removed; set when a newer generation took over. */
  retireAt?: string;
  /** The key came from the user's Secret (never rotated by us). */
  external?: boolean;
}

export interface DkimState {
  keys: KeyState[];
  /** Last value of the rotate annotation acted upon. */
  rotateToken?: string;
}

export interface DkimPlan {
  state: DkimState;
  /** Keys to generate (no PEM in state yet). */
  generate: { selector: string; algorithm: KeyAlgorithm }[];
  /** Earliest future instant at which the plan changes (a requeue), if any. */
  nextAt?: number;
  /** What happened, for Events. */
  events: { reason: string; message: string }[];
  /** Selectors of a waiting generation whose records are overdue (publishWithin passed, not seen). */
  blocked: string[];
  /**
   * Why a key was not generated: the selector it would get is no DNS label (spec.dkim.selector
   * stored before the CRD capped it, plus a rotation's suffix). The keys there are keep signing.
   */
  selectorRefused?: string;
}

/** Whether the operator may publish `selector`: a DKIM selector whose labels are DNS labels, and at most one label long. */
export const validSelector = (selector: string) => selector.length <= DNS_LABEL_MAX && new RegExp(SELECTOR_RE).test(selector);

export type KeyPhase = 'published' | 'active' | 'retiring';

export function keyPhase(k: KeyState, now: number): KeyPhase {
  if (k.retireAt) return 'retiring';
  return k.activeAt !== undefined && Date.parse(k.activeAt) <= now ? 'active' : 'published';
}

/** Keys that wait for their DNS record before they sign. */
export function waitingKeys(state: DkimState): KeyState[] {
  return state.keys.filter((k) => !k.retireAt && k.activeAt === undefined);
}

export function algorithmsFor(spec: SenderDomainSpec['dkim']): KeyAlgorithm[] {
  if (spec.algorithm === 'both') return ['rsa-sha256', 'ed25519-sha256'];
  return [spec.algorithm === 'ed25519' ? 'ed25519-sha256' : 'rsa-sha256'];
}

const iso = (ms: number) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');

function selectorFor(base: string, generation: number, algorithm: KeyAlgorithm, both: boolean, taken: Set<string>): string {
  let sel = generation === 1 ? base : `${base}-${generation}`;
  if (both && algorithm === 'ed25519-sha256') sel = `${sel}-ed`;
  while (taken.has(sel)) sel = `${sel}x`;
  return sel;
}

export interface DkimPlanInput {
  spec: SenderDomainSpec['dkim'];
  state: DkimState;
  now: number;
  rotateAnnotation?: string;
  /** Algorithm of the user's key when spec.dkim.secretRef is set (undefined: not readable yet). */
  externalAlgorithm?: KeyAlgorithm;
  /**
   * What DNS answered for the waiting keys' records at `now`: selector → its exact record was
   * seen (by every configured resolver). A waiting selector missing here was not checked and
   * keeps its state.
   */
  dnsSeen?: Record<string, boolean>;
  /** The first key also waits for DNS (spec.dnsVerification.enabled) instead of signing at once. */
  gateFirstKey?: boolean;
}

export function planDkim(input: DkimPlanInput): DkimPlan {
  const { spec, now } = input;
  const events: DkimPlan['events'] = [];
  const generate: DkimPlan['generate'] = [];
  let keys = input.state.keys.map((k) => ({ ...k }));
  let rotateToken = input.state.rotateToken;
  const future: number[] = [];
  const blocked: string[] = [];

  if (spec.secretRef) {
    // The user's key, as is: one selector, signing at once, no rotation.
    const alg = input.externalAlgorithm;
    const cur = keys.find((k) => k.external && k.selector === spec.selector && k.algorithm === alg);
    keys = alg ? [cur ?? { selector: spec.selector, algorithm: alg, generation: 1, publishedAt: iso(now), activeAt: iso(now), external: true }] : [];
    return { state: { keys, rotateToken }, generate, events, blocked };
  }
  keys = keys.filter((k) => !k.external);

  // Drop retired keys.
  const kept = keys.filter((k) => !(k.retireAt && Date.parse(k.retireAt) <= now));
  if (kept.length !== keys.length) events.push({ reason: 'DKIMKeyRetired', message: `retired selector(s) ${keys.filter((k) => !kept.includes(k)).map((k) => k.selector).join(', ')}` });
  keys = kept;

  const wanted = algorithmsFor(spec);
  const both = wanted.length > 1;
  const taken = new Set(keys.map((k) => k.selector));
  let selectorRefused: string | undefined;
  /** The selectors of generation g's new keys, or none (and why) when one would be no DNS label. */
  const newSelectors = (g: number, algorithms: KeyAlgorithm[]): string[] | undefined => {
    const t = new Set(taken);
    const sels = algorithms.map((a) => { const sel = selectorFor(spec.selector, g, a, both, t); t.add(sel); return sel; });
    const bad = sels.find((sel) => !validSelector(sel));
    if (bad !== undefined) {
      selectorRefused = `no key generated for generation ${g}: its selector ${bad} would have ${bad.length} characters, more than the ${DNS_LABEL_MAX} of one DNS label `
        + `(rotations append -<generation>, and -ed with algorithm both); shorten spec.dkim.selector to at most ${DKIM_SELECTOR_MAX} characters and the rotation goes ahead`;
      return undefined;
    }
    for (const sel of sels) taken.add(sel);
    return sels;
  };
  const gens = [...new Set(keys.filter((k) => !k.retireAt).map((k) => k.generation))].sort((a, b) => a - b);

  if (gens.length === 0) {
    // First key: nothing to replace, so it signs at once, unless the domain asks for its DNS
    // to be verified first: then it waits for its record like a rotation's key.
    const g = Math.max(0, ...keys.map((k) => k.generation)) + 1;
    const sels = newSelectors(g, wanted);
    wanted.forEach((algorithm, i) => {
      const selector = sels?.[i];
      if (selector === undefined) return;
      keys.push({ selector, algorithm, generation: g, publishedAt: iso(now), ...(input.gateFirstKey ? {} : { activeAt: iso(now) }) });
      generate.push({ selector, algorithm });
    });
    if (sels) {
      events.push({ reason: 'DKIMKeyGenerated', message: `generated ${wanted.join(' and ')} key(s): selector(s) ${generate.map((k) => k.selector).join(', ')}` });
      rotateToken = input.rotateAnnotation ?? rotateToken;
      if (spec.rotationPeriod) future.push(now + parseDuration(spec.rotationPeriod));
    }
  } else {
    // State written by the clock-driven planner of earlier versions: a key scheduled to sign
    // in the future waits for its DNS record instead.
    for (const k of keys) if (!k.retireAt && k.activeAt !== undefined && Date.parse(k.activeAt) > now) delete k.activeAt;
    const newest = gens[gens.length - 1] as number;
    const newestKeys = keys.filter((k) => k.generation === newest);
    const newestWaiting = newestKeys.some((k) => k.activeAt === undefined);
    const newestActiveAt = newestWaiting ? undefined : Math.max(...newestKeys.map((k) => Date.parse(k.activeAt as string)));

    // Algorithm added to the spec: complete the newest generation. A live generation's new
    // key signs at once (nothing it replaces); a waiting generation's waits with it.
    for (const algorithm of wanted) {
      if (newestKeys.some((k) => k.algorithm === algorithm)) continue;
      const selector = newSelectors(newest, [algorithm])?.[0];
      if (selector === undefined) continue;
      const k: KeyState = { selector, algorithm, generation: newest, publishedAt: iso(now), ...(newestActiveAt !== undefined ? { activeAt: iso(now) } : {}) };
      keys.push(k);
      generate.push({ selector, algorithm });
      events.push({ reason: 'DKIMKeyGenerated', message: `generated ${algorithm} key for selector ${selector}` });
    }
    // Algorithm removed from the spec: its keys retire like a rotation's.
    for (const k of keys) if (!k.retireAt && !wanted.includes(k.algorithm)) k.retireAt = iso(now + parseDuration(spec.retireAfter));

    const rotateRequested = input.rotateAnnotation !== undefined && input.rotateAnnotation !== rotateToken;
    const period = spec.rotationPeriod ? parseDuration(spec.rotationPeriod) : undefined;
    const pending = newestActiveAt === undefined;
    const periodDue = period !== undefined && !pending && newestActiveAt + period <= now;
    if (period !== undefined && !pending) future.push(newestActiveAt + period);
    // refused, a requested rotation stays requested: it goes ahead once the selector is shortened
    const added = (rotateRequested || periodDue) && !pending ? newSelectors(newest + 1, wanted) : undefined;
    if (added) {
      wanted.forEach((algorithm, i) => {
        keys.push({ selector: added[i] as string, algorithm, generation: newest + 1, publishedAt: iso(now) });
        generate.push({ selector: added[i] as string, algorithm });
      });
      events.push({ reason: 'DKIMRotationStarted', message: `published selector(s) ${added.join(', ')}; signing switches once their records have been in DNS for ${spec.rotationDelay}` });
    }
    if (rotateRequested && (added || pending)) rotateToken = input.rotateAnnotation;
  }

  // The DNS gate: a waiting key's record must be seen without a gap for rotationDelay (a gap
  // starts the wait again); a generation signs when every one of its keys has passed. A
  // first key replaces nothing, so one sighting is enough for it.
  const waitingGens = [...new Set(keys.filter((k) => !k.retireAt && k.activeAt === undefined).map((k) => k.generation))];
  for (const g of waitingGens) {
    const genKeys = keys.filter((k) => k.generation === g && !k.retireAt);
    const replacesLive = keys.some((k) => !k.retireAt && k.activeAt !== undefined && k.generation < g);
    const minVisible = replacesLive ? parseDuration(spec.rotationDelay) : 0;
    for (const k of genKeys) {
      const seen = input.dnsSeen?.[k.selector];
      if (seen === true && k.seenAt === undefined) k.seenAt = iso(now);
      if (seen === false && k.seenAt !== undefined) {
        delete k.seenAt;
        events.push({ reason: 'DKIMRecordLost', message: `the DNS record of selector ${k.selector} is gone again; its wait starts over` });
      }
    }
    if (genKeys.every((k) => k.seenAt !== undefined && Date.parse(k.seenAt) + minVisible <= now)) {
      for (const k of genKeys) k.activeAt = iso(now);
      if (!replacesLive) events.push({ reason: 'DKIMKeyActive', message: `signing with selector(s) ${genKeys.map((k) => k.selector).join(', ')}: their records are in DNS` });
      continue;
    }
    for (const k of genKeys) if (k.seenAt !== undefined) future.push(Date.parse(k.seenAt) + minVisible);
    const deadline = Math.max(...genKeys.map((k) => Date.parse(k.publishedAt))) + parseDuration(spec.publishWithin);
    if (deadline <= now) blocked.push(...genKeys.filter((k) => k.seenAt === undefined).map((k) => k.selector));
    else future.push(deadline);
  }

  // A generation that went live retires every older one.
  const live = keys.filter((k) => !k.retireAt && keyPhase(k, now) === 'active').map((k) => k.generation);
  const liveGen = live.length ? Math.max(...live) : undefined;
  if (liveGen !== undefined) {
    const older = keys.filter((k) => !k.retireAt && k.generation < liveGen);
    for (const k of older) k.retireAt = iso(now + parseDuration(spec.retireAfter));
    if (older.length) events.push({ reason: 'DKIMRotated', message: `signing with generation ${liveGen}; retiring selector(s) ${older.map((k) => k.selector).join(', ')}` });
  }

  for (const k of keys) if (k.retireAt) future.push(Date.parse(k.retireAt));
  keys.sort((a, b) => a.generation - b.generation || a.selector.localeCompare(b.selector));
  const nextAt = future.filter((t) => t > now).sort((a, b) => a - b)[0];
  return { state: { keys, rotateToken }, generate, events, blocked, ...(nextAt !== undefined ? { nextAt } : {}), ...(selectorRefused ? { selectorRefused } : {}) };
}

/** Keys that sign now (what the relay config lists). */
export function signingKeys(state: DkimState, now: number): KeyState[] {
  const active = state.keys.filter((k) => keyPhase(k, now) === 'active');
  // Only the newest live generation signs; a retiring one does not.
  const gen = Math.max(...active.map((k) => k.generation));
  return active.filter((k) => k.generation === gen);
}
