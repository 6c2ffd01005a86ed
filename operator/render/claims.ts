// Who owns a domain, and a login. A domain has one owner in the whole cluster: among the
// SenderDomains whose relay admits them, the first claimant (creationTimestamp, then
// namespace/name) keeps it, whichever relay it is on. A login (credentials on) is unique per
// relay, among the domains' owners. A later claimant is refused as a whole (no Secrets, not
// in any relay config), whichever the operator happens to see first, so the outcome never
// depends on event order. A refusal never names another namespace's objects: a tenant learns
// that its domain is taken, not by whom.
export interface Claimant {
  metadata: { name: string; namespace?: string; creationTimestamp?: string };
  spec: { domain: string; relayRef: { name: string; namespace?: string | undefined }; credentials?: { enabled: boolean; username?: string | undefined } };
}

/** namespace/name of a SenderDomain. */
export const claimKey = (sd: Claimant) => `${sd.metadata.namespace ?? ''}/${sd.metadata.name}`;

/** namespace/name of the relay a SenderDomain names (its own namespace unless relayRef.namespace says otherwise). */
export const relayKeyOf = (sd: Claimant) => `${sd.spec.relayRef.namespace ?? sd.metadata.namespace ?? ''}/${sd.spec.relayRef.name}`;

/**
 * A claim's place in line, as a string whose order is the claim order: creationTimestamp
 * (RFC 3339 UTC with seconds: string order is time order), then namespace/name. The
 * separator sorts below every character of a timestamp, so an earlier time wins whatever follows.
 */
export const claimOrder = (sd: Claimant) => `${sd.metadata.creationTimestamp ?? ''}\n${claimKey(sd)}`;

/** The SMTP login a SenderDomain asks for on its relay, if it has one. */
export function loginName(sd: Claimant): string | undefined {
  return sd.spec.credentials?.enabled ? sd.spec.credentials.username ?? sd.spec.domain : undefined;
}

export interface Refusal {
  reason: 'DomainConflict' | 'UsernameConflict' | 'RelayNotAllowed';
  /** namespace/name of the SenderDomain that keeps the claim (never shown to another namespace). */
  with?: string;
  message: string;
}

export interface Claims<T> {
  /** Domain (lower case) → the SenderDomain that owns it, cluster-wide. */
  owners: Map<string, T>;
  /** namespace/name of a SenderDomain → why it is refused. */
  refused: Map<string, Refusal>;
}

/** The holder, by name when it is in the claimant's namespace; otherwise only that it exists. */
function holderText(claimant: Claimant, holder: Claimant): string {
  return holder.metadata.namespace === claimant.metadata.namespace ? `SenderDomain ${holder.metadata.name}` : 'a SenderDomain in another namespace';
}

/** sd is refused: holder (created earlier) owns its domain. */
export function domainConflict(sd: Claimant, holder: Claimant): Refusal {
  return {
    reason: 'DomainConflict', with: claimKey(holder),
    message: `domain ${sd.spec.domain} is already claimed by ${holderText(sd, holder)} (created earlier); this one is refused. `
      + 'A domain has one owner in the cluster: ask the relay\'s owners if it should be yours',
  };
}

/** sd is refused: holder (created earlier) has its login on the same relay. */
export function usernameConflict(sd: Claimant, holder: Claimant): Refusal {
  return {
    reason: 'UsernameConflict', with: claimKey(holder),
    message: `SMTP username ${loginName(sd) ?? ''} is already used on relay ${sd.spec.relayRef.name} by ${holderText(sd, holder)} (created earlier); `
      + 'set a different credentials.username; this one is refused',
  };
}

/**
 * The reference, every claim at once (the operator asks the ClaimIndex of claim-index.ts,
 * which gives the same verdicts one SenderDomain at a time). Resolves every claim among `all` (the cluster's SenderDomains; those `admitted` refuses
 * claim nothing): domains first, then logins per relay among the domains' owners.
 */
export function resolveClaims<T extends Claimant>(all: readonly T[], admitted: (sd: T) => boolean = () => true): Claims<T> {
  const sorted = all.filter(admitted).sort((a, b) => (claimOrder(a) < claimOrder(b) ? -1 : claimOrder(a) > claimOrder(b) ? 1 : 0));
  const owners = new Map<string, T>();
  const logins = new Map<string, T>(); // relay key + login → holder
  const refused = new Map<string, Refusal>();
  for (const sd of sorted) {
    const domain = sd.spec.domain.toLowerCase();
    const cur = owners.get(domain);
    if (cur) {
      refused.set(claimKey(sd), domainConflict(sd, cur));
      continue;
    }
    const login = loginName(sd);
    const loginKey = `${relayKeyOf(sd)}\n${login ?? ''}`;
    const holder = login === undefined ? undefined : logins.get(loginKey);
    if (login !== undefined && holder) {
      refused.set(claimKey(sd), usernameConflict(sd, holder));
      continue;
    }
    owners.set(domain, sd);
    if (login !== undefined) logins.set(loginKey, sd);
  }
  return { owners, refused };
}
