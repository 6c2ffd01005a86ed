// The claims of claims.ts, answered per SenderDomain instead of for the whole cluster at once.
// resolveClaims sorts every SenderDomain on each call, and each SenderDomain's reconcile (and
// each EmailRelay's) called it: a resync of N SenderDomains cost N² (log N). This index holds
// the claimants by domain, by relay and login, and by relay, each list in claim order, and is
// kept up to date from the watch (one set/remove per event); a verdict looks at the earlier
// claimants of its own domain and login only, and is remembered until anything changes.
//
// The verdict is exactly resolveClaims's (test/operator/claim-index.test.ts holds the two
// side by side): walking the claimants oldest first, one is refused when an earlier one that
// was itself accepted holds its domain (DomainConflict) or, on the same relay, its login
// (UsernameConflict); one the relay does not admit claims nothing. So a SenderDomain's verdict
// depends on the verdicts of the earlier claimants of its domain and login only — which are
// strictly earlier in claim order, so working them out ends (with an explicit stack: the
// chain of SenderDomains linked by shared domains and logins is as long as a tenant makes it).
import { claimKey, claimOrder, domainConflict, loginName, relayKeyOf, usernameConflict, type Claimant, type Refusal } from './claims.ts';

/** Inserts into a list kept in claim order. */
function insert<T extends Claimant>(list: T[], sd: T): void {
  const k = claimOrder(sd);
  let i = list.length;
  while (i > 0 && claimOrder(list[i - 1] as T) > k) i--;
  list.splice(i, 0, sd);
}

function removeFrom<T extends Claimant>(map: Map<string, T[]>, key: string, sd: T): void {
  const list = map.get(key);
  if (!list) return;
  const i = list.indexOf(sd);
  if (i >= 0) list.splice(i, 1);
  if (!list.length) map.delete(key);
}

const loginKey = (sd: Claimant) => {
  const login = loginName(sd);
  return login === undefined ? undefined : `${relayKeyOf(sd)}\n${login}`;
};

export class ClaimIndex<T extends Claimant> {
  private readonly byKey = new Map<string, T>();
  private readonly byDomain = new Map<string, T[]>();
  private readonly byLogin = new Map<string, T[]>();
  private readonly byRelay = new Map<string, T[]>();
  /** Verdicts so far (null: accepted; undefined entry: not computed); cleared on every change. */
  private verdicts = new Map<T, Refusal | null>();
  private readonly admittedMemo = new Map<T, boolean>();
  private readonly admitted: (sd: T) => boolean;

  /** admitted: whether the relay a SenderDomain names admits it (one it does not claims nothing). */
  constructor(admitted: (sd: T) => boolean = () => true) {
    this.admitted = admitted;
  }

  get size(): number {
    return this.byKey.size;
  }

  /** Adds a claimant, or replaces the one of the same namespace/name. */
  set(sd: T): void {
    this.remove(claimKey(sd));
    this.byKey.set(claimKey(sd), sd);
    insert(this.listOf(this.byDomain, sd.spec.domain.toLowerCase()), sd);
    insert(this.listOf(this.byRelay, relayKeyOf(sd)), sd);
    const login = loginKey(sd);
    if (login !== undefined) insert(this.listOf(this.byLogin, login), sd);
    this.changed();
  }

  /** Removes the claimant of this namespace/name, if any. */
  remove(key: string): void {
    const sd = this.byKey.get(key);
    if (!sd) return;
    this.byKey.delete(key);
    removeFrom(this.byDomain, sd.spec.domain.toLowerCase(), sd);
    removeFrom(this.byRelay, relayKeyOf(sd), sd);
    const login = loginKey(sd);
    if (login !== undefined) removeFrom(this.byLogin, login, sd);
    this.changed();
  }

  /** Something a verdict depends on changed outside the index (a relay's admission rules, a namespace's labels). */
  changed(): void {
    if (this.verdicts.size) this.verdicts = new Map();
    this.admittedMemo.clear();
  }

  /** Why this claimant is refused (another one holds its domain or login), or undefined. */
  refusal(sd: T): Refusal | undefined {
    const held = this.byKey.get(claimKey(sd));
    if (!held || !this.isAdmitted(held)) return undefined;
    return this.verdict(held) ?? undefined;
  }

  /** The claimants whose relay is relayKey and that own their domain, in claim order. */
  owners(relayKey: string): T[] {
    return (this.byRelay.get(relayKey) ?? []).filter((sd) => this.accepted(sd));
  }

  /** Every claimant of this domain (any case, any relay), in claim order. */
  claimantsOf(domain: string): readonly T[] {
    return this.byDomain.get(domain.toLowerCase()) ?? [];
  }

  /** Every claimant naming this relay (namespace/name), in claim order. */
  onRelay(relayKey: string): readonly T[] {
    return this.byRelay.get(relayKey) ?? [];
  }

  private listOf(map: Map<string, T[]>, key: string): T[] {
    let list = map.get(key);
    if (!list) map.set(key, list = []);
    return list;
  }

  private isAdmitted(sd: T): boolean {
    let a = this.admittedMemo.get(sd);
    if (a === undefined) this.admittedMemo.set(sd, a = this.admitted(sd));
    return a;
  }

  private accepted(sd: T): boolean {
    return this.isAdmitted(sd) && this.verdict(sd) === null;
  }

  /**
   * The verdict of an admitted claimant: the first accepted earlier holder of its domain,
   * then of its login. Worked out with an explicit stack, not by recursion: a verdict needs
   * the verdicts of earlier claimants, and a tenant can chain its SenderDomains (each sharing
   * a domain with the next and a login with the one after) as deep as it has objects — a
   * few thousand would overflow the call stack and crash the operator for every tenant.
   */
  private verdict(target: T): Refusal | null {
    const known = this.verdicts.get(target);
    if (known !== undefined) return known;
    const stack: T[] = [target];
    // Bounded: each turn either decides one claimant (popped, never pushed again: decided)
    // or pushes an undecided, strictly earlier one.
    while (stack.length) {
      const sd = stack[stack.length - 1]!;
      if (this.verdicts.has(sd)) { stack.pop(); continue; }
      const needed = this.undecidedDependency(sd);
      if (needed) { stack.push(needed); continue; }
      this.verdicts.set(sd, this.decide(sd));
      stack.pop();
    }
    return this.verdicts.get(target)!;
  }

  /** The earlier claimants a verdict reads, oldest first, up to the first accepted one. */
  private *earlierHolders(sd: T): Generator<{ list: 'domain' | 'login'; e: T }> {
    const order = claimOrder(sd);
    for (const e of this.byDomain.get(sd.spec.domain.toLowerCase()) ?? []) {
      if (claimOrder(e) >= order) break;
      if (!this.isAdmitted(e)) continue;
      yield { list: 'domain', e };
      if (this.verdicts.get(e) === null) return; // the domain's holder: the login does not matter
    }
    const login = loginKey(sd);
    if (login === undefined) return;
    for (const e of this.byLogin.get(login) ?? []) {
      if (claimOrder(e) >= order) break;
      if (!this.isAdmitted(e)) continue;
      yield { list: 'login', e };
      if (this.verdicts.get(e) === null) return;
    }
  }

  /** An earlier claimant whose verdict this one still waits for. */
  private undecidedDependency(sd: T): T | undefined {
    for (const { e } of this.earlierHolders(sd)) if (!this.verdicts.has(e)) return e;
    return undefined;
  }

  /** The verdict, once every earlier claimant it reads is decided. */
  private decide(sd: T): Refusal | null {
    for (const { list, e } of this.earlierHolders(sd)) {
      if (this.verdicts.get(e) !== null) continue;
      return list === 'domain' ? domainConflict(sd, e) : usernameConflict(sd, e);
    }
    return null;
  }
}
