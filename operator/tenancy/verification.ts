// Proof of control over a domain before a relay serves it, as SES does: the claimant
// publishes one of its DKIM records (status.dnsRecords) or a TXT challenge at
// _mailfleet.<domain>. The challenge token is derived from the SenderDomain's uid, so it is
// stable for that object and useless to anyone else: a token read from the owner's public
// DNS verifies nothing but the owner's SenderDomain, and a DKIM record can only match the key
// pair whose private half sits in the claimant's own internal Secret.
//
// Results live in this process (one verifier shared by both controllers), never in anything
// a tenant can write (a status, a Secret in its namespace): a restarted operator proves
// again before it serves. A verified domain is checked again every interval; a proof that
// disappears keeps the domain served for the grace period, then it is not served (Lost)
// until the proof is back.
import { createHash } from 'node:crypto';
import { seenSelectors, txtPublished } from '../controllers/dns-verification.ts';
import type { DomainInternal } from '../render/domain-internal.ts';
import type { EmailRelay, SenderDomain } from '../render/objects.ts';

export const CHALLENGE_LABEL = '_mailfleet';
export const DOMAIN_NOT_VERIFIED = 'DomainNotVerified';

/** Unverified domains are looked up again at least this often. */
const PENDING_RECHECK_MS = 60_000;

export type VerificationState = 'Pending' | 'Verified' | 'GracePeriod' | 'Lost';

export interface Challenge {
  name: string;
  value: string;
  zone: string;
}

/** The TXT record that proves `sd` controls its domain. */
export function challengeRecord(sd: SenderDomain): Challenge {
  const uid = sd.metadata.uid ?? `${sd.metadata.namespace ?? ''}/${sd.metadata.name}`;
  const token = createHash('sha256').update(`mailfleet.io domain verification\0${uid}\0${sd.spec.domain.toLowerCase()}`).digest('base64url').slice(0, 32);
  const name = `${CHALLENGE_LABEL}.${sd.spec.domain.toLowerCase()}.`;
  const value = `mailfleet-verification=${token}`;
  return { name, value, zone: `${name} 300 IN TXT "${value}"` };
}

/**
 * Must this SenderDomain prove control before it is served? Yes when it asks the operator to
 * publish its records (dns.publish: externalDNS), whatever the relay says: the zones
 * external-dns writes belong to the platform, not to the relay's owner, so only someone who
 * can already write the domain's DNS gets the operator to write it. Otherwise as the relay
 * says (default: yes for SenderDomains from other namespaces).
 */
export function verificationRequired(relay: EmailRelay, sd: SenderDomain): boolean {
  if (sd.spec.dns?.publish === 'externalDNS') return true;
  return relay.spec.senderDomains.requireVerification ?? (sd.metadata.namespace !== relay.metadata.namespace);
}

export interface Verification {
  state: VerificationState;
  /** May the relay serve the domain now (Verified, or missing for less than the grace period)? */
  serving: boolean;
  method?: 'dkim' | 'challenge';
  message: string;
  verifiedAt?: number;
  graceEndsAt?: number;
  /** When the result should be looked at again (a check, or the grace period's end). */
  nextAt: number;
  /** Only the TXT challenge proves control (the SenderDomain has its records published: see challengeOnly()). */
  challengeOnly?: boolean;
}

/**
 * Only the TXT challenge proves control of a SenderDomain that has the operator publish its
 * records (dns.publish: externalDNS): its DKIM record is then one the operator wrote
 * itself, and would prove nothing but that it was asked to. The operator never publishes
 * the challenge.
 */
export function challengeOnly(sd: SenderDomain): boolean {
  return sd.spec.dns?.publish === 'externalDNS';
}

interface Entry {
  /** The object the result belongs to: a SenderDomain deleted and created again proves again. */
  uid: string;
  domain: string;
  checkedAt: number;
  okAt?: number;
  lostAt?: number;
  method?: 'dkim' | 'challenge';
  message: string;
  /** Checked with the challenge alone (challengeOnly() when it was made). */
  challengeOnly: boolean;
}

export interface VerifierOptions {
  dnsServers?: string[] | undefined;
  /** How often a verified domain is checked again. */
  intervalMs: number;
  /** How long a domain whose proof disappeared is still served. */
  graceMs: number;
}

export class DomainVerifier {
  private readonly o: VerifierOptions;
  private readonly entries = new Map<string, Entry>();
  private readonly inflight = new Map<string, Promise<Entry>>();

  constructor(o: VerifierOptions) {
    this.o = o;
  }

  private key(sd: SenderDomain): string {
    return `${sd.metadata.namespace ?? ''}/${sd.metadata.name}`;
  }

  private view(e: Entry, now: number): Verification {
    const recheck = e.okAt !== undefined && e.lostAt === undefined ? this.o.intervalMs : Math.min(this.o.intervalMs, PENDING_RECHECK_MS);
    let nextAt = e.checkedAt + recheck;
    const base = { message: e.message, challengeOnly: e.challengeOnly, ...(e.method ? { method: e.method } : {}), ...(e.okAt !== undefined ? { verifiedAt: e.okAt } : {}) };
    if (e.okAt === undefined) return { ...base, state: 'Pending', serving: false, nextAt };
    if (e.lostAt === undefined) return { ...base, state: 'Verified', serving: true, nextAt };
    const graceEndsAt = e.lostAt + this.o.graceMs;
    if (now < graceEndsAt) {
      nextAt = Math.min(nextAt, graceEndsAt);
      return { ...base, state: 'GracePeriod', serving: true, graceEndsAt, nextAt };
    }
    return { ...base, state: 'Lost', serving: false, graceEndsAt, nextAt };
  }

  private due(e: Entry | undefined, sd: SenderDomain, now: number): boolean {
    return !e || e.uid !== (sd.metadata.uid ?? '') || e.domain !== sd.spec.domain || e.challengeOnly !== challengeOnly(sd) || now >= this.view(e, now).nextAt;
  }

  /**
   * The domain's verification now, from DNS when a check is due (or none was made yet), else
   * from the last result. `previousVerifiedAt` (from status) only keeps the reported time
   * stable across operator restarts; it never makes a domain verified.
   */
  async verify(sd: SenderDomain, internal: DomainInternal, now: number, previousVerifiedAt?: number): Promise<Verification> {
    const key = this.key(sd);
    const cur = this.entries.get(key);
    if (!this.due(cur, sd, now)) return this.view(cur as Entry, now);
    let p = this.inflight.get(key);
    if (!p) {
      p = this.check(sd, internal, now, cur?.domain === sd.spec.domain && cur.uid === (sd.metadata.uid ?? '') ? cur : undefined, previousVerifiedAt)
        .finally(() => this.inflight.delete(key));
      this.inflight.set(key, p);
    }
    const e = await p;
    this.entries.set(key, e);
    return this.view(e, now);
  }

  /** Forgets a deleted SenderDomain. */
  forget(namespace: string, name: string): void {
    this.entries.delete(`${namespace}/${name}`);
  }

  private async check(sd: SenderDomain, internal: DomainInternal, now: number, prev: Entry | undefined, previousVerifiedAt?: number): Promise<Entry> {
    const domain = sd.spec.domain;
    const uid = sd.metadata.uid ?? '';
    const ch = challengeRecord(sd);
    const only = challengeOnly(sd);
    const keys = only ? [] : internal.dkim.keys.filter((k) => internal.pems[k.selector]);
    const [challenge, dkim] = await Promise.all([
      txtPublished(ch.name, ch.value, this.o.dnsServers),
      keys.length ? seenSelectors(domain, keys, internal, this.o.dnsServers) : Promise.resolve({} as Record<string, boolean>),
    ]);
    const dkimSeen = Object.entries(dkim).filter(([, seen]) => seen).map(([s]) => s);
    const method = dkimSeen.length ? 'dkim' as const : challenge.ok ? 'challenge' as const : undefined;
    if (method) {
      const wasLost = prev?.okAt !== undefined && prev.lostAt !== undefined && now >= prev.lostAt + this.o.graceMs;
      const okAt = prev?.okAt !== undefined && !wasLost ? prev.okAt : prev ? now : previousVerifiedAt ?? now;
      return {
        uid, domain, checkedAt: now, okAt, method, challengeOnly: only,
        message: method === 'dkim' ? `control of ${domain} proven by its DKIM record (${dkimSeen.join(', ')})` : `control of ${domain} proven by ${ch.name}`,
      };
    }
    const other = only ? '' : ' (or the DKIM record in status.dnsRecords)';
    const message = `publish ${ch.zone}${other} to prove control of ${domain}; ${challenge.message}`;
    if (prev?.okAt === undefined) return { uid, domain, checkedAt: now, message, challengeOnly: only };
    return { uid, domain, checkedAt: now, okAt: prev.okAt, lostAt: prev.lostAt ?? now, message, challengeOnly: only, ...(prev.method ? { method: prev.method } : {}) };
  }
}
