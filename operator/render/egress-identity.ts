// The EgressIdentityVerified condition of an MX-mode EmailRelay, from what reverse DNS says
// about its declared egress addresses (operator/controllers/egress-identity.ts looks them up).
// Receiving MX hosts check that the connecting address has a PTR record whose name resolves
// back to it (forward-confirmed reverse DNS) and compare that name with the EHLO name; mail
// from an address that fails is often refused or sent to spam. A warning only: it never
// changes Ready, since the relay serves and queues either way. Pure.
import type { ConditionInput } from './conditions.ts';

export const EGRESS_CONDITION = 'EgressIdentityVerified';

/** What DNS said about one egress address. */
export interface AddressIdentity {
  address: string;
  /** Names of its PTR records. */
  ptr: string[];
  /** Those PTR names whose A/AAAA records contain the address. */
  confirmed: string[];
  /** A lookup that failed for another reason than "no such record" (SERVFAIL, timeout), with where. */
  error?: string;
}

export interface EgressIdentityInput {
  hostname: string;
  results: AddressIdentity[];
  /** CIDR ranges among the addresses: not checked address by address. */
  ranges: string[];
}

const sameName = (a: string, b: string) => a.replace(/\.$/, '').toLowerCase() === b.replace(/\.$/, '').toLowerCase();

type Problem = { reason: string; text: string };

function problemOf(hostname: string, r: AddressIdentity): Problem | undefined {
  if (r.error) return { reason: 'LookupFailed', text: `${r.address}: reverse DNS lookup failed (${r.error})` };
  if (!r.ptr.length) return { reason: 'PTRMissing', text: `${r.address} has no PTR record (publish ${hostname} as its PTR at the address's owner, usually the cloud provider)` };
  if (!r.confirmed.length) {
    return { reason: 'NotForwardConfirmed', text: `${r.address}'s PTR ${r.ptr.join(', ')} does not resolve back to ${r.address} (add the A/AAAA record)` };
  }
  if (!r.confirmed.some((n) => sameName(n, hostname))) {
    return { reason: 'HostnameMismatch', text: `${r.address}'s PTR names ${r.confirmed.join(', ')}, not hostname ${hostname} (the relay's EHLO name): make them the same` };
  }
  return undefined;
}

export function egressIdentityCondition(input: EgressIdentityInput): ConditionInput {
  const { hostname, results, ranges } = input;
  const skipped = ranges.length ? `; ranges not checked address by address: ${ranges.join(', ')}` : '';
  if (!results.length) {
    return { type: EGRESS_CONDITION, status: 'Unknown', reason: 'NoSingleAddresses', message: `only ranges are declared, no single address to check${skipped}` };
  }
  const problems = results.flatMap((r) => problemOf(hostname, r) ?? []);
  if (!problems.length) {
    return {
      type: EGRESS_CONDITION, status: 'True', reason: 'ForwardConfirmed',
      message: `${results.map((r) => r.address).join(', ')} → ${hostname}: PTR and A/AAAA agree${skipped}`,
    };
  }
  return { type: EGRESS_CONDITION, status: 'False', reason: problems[0]!.reason, message: `${problems.map((p) => p.text).join('; ')}${skipped}` };
}

/** The condition when there is nothing to check: an MX relay that declares no egress addresses. */
export const noEgressCondition = (): ConditionInput => ({
  type: EGRESS_CONDITION, status: 'Unknown', reason: 'NoEgressAddresses',
  message: 'spec.delivery.egress.addresses is not set: the PTR records of the addresses mail leaves from cannot be checked',
});
