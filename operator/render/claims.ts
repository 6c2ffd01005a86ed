// SenderDomains on one relay claim two things that must be unique there: their domain and,
// with credentials on, their SMTP login. The first claimant (creationTimestamp, then name)
// keeps each; a later one is refused as a whole (no Secrets, not in the relay config),
// whichever the operator happens to see first, so the outcome never depends on event order.
import type { CustomObject } from './objects.ts';

interface Claimant {
  metadata: { name: string; creationTimestamp?: string };
  spec: { domain: string; relayRef: { name: string }; credentials?: { enabled: boolean; username?: string | undefined } };
}

function before(a: Claimant, b: Claimant): boolean {
  const ta = a.metadata.creationTimestamp ?? '';
  const tb = b.metadata.creationTimestamp ?? '';
  if (ta !== tb) return ta < tb; // RFC 3339 UTC with seconds: string order is time order
  return a.metadata.name < b.metadata.name;
}

/** The SMTP login a SenderDomain asks for on its relay, if it has one. */
export function loginName(sd: Claimant): string | undefined {
  return sd.spec.credentials?.enabled ? sd.spec.credentials.username ?? sd.spec.domain : undefined;
}

export interface Refusal {
  reason: 'DomainConflict' | 'UsernameConflict';
  /** The SenderDomain that keeps the claim. */
  with: string;
  message: string;
}

export interface Claims<T> {
  /** Domain (lower case) → the SenderDomain serving it on the relay. */
  owners: Map<string, T>;
  /** SenderDomain name → why it is refused. */
  refused: Map<string, Refusal>;
}

/** Resolves every claim on `relay`: domains first, then logins among the domains' owners. */
export function resolveClaims<T extends Claimant>(all: readonly T[], relay: string): Claims<T> {
  const mine = all.filter((sd) => sd.spec.relayRef.name === relay).sort((a, b) => (before(a, b) ? -1 : before(b, a) ? 1 : 0));
  const owners = new Map<string, T>();
  const logins = new Map<string, T>();
  const refused = new Map<string, Refusal>();
  for (const sd of mine) {
    const domain = sd.spec.domain.toLowerCase();
    const cur = owners.get(domain);
    if (cur) {
      refused.set(sd.metadata.name, {
        reason: 'DomainConflict', with: cur.metadata.name,
        message: `domain ${sd.spec.domain} is already served by relay ${relay} for SenderDomain ${cur.metadata.name} (created earlier); this one is refused`,
      });
      continue;
    }
    const login = loginName(sd);
    const holder = login === undefined ? undefined : logins.get(login);
    if (login !== undefined && holder) {
      refused.set(sd.metadata.name, {
        reason: 'UsernameConflict', with: holder.metadata.name,
        message: `SMTP username ${login} is already used on relay ${relay} by SenderDomain ${holder.metadata.name} (created earlier); `
          + 'set a different credentials.username; this one is refused',
      });
      continue;
    }
    owners.set(domain, sd);
    if (login !== undefined) logins.set(login, sd);
  }
  return { owners, refused };
}

/** For every domain claimed on `relay`, the SenderDomain that owns it (login conflicts removed too). */
export function domainOwners<T extends Claimant>(all: readonly T[], relay: string): Map<string, T> {
  return resolveClaims(all, relay).owners;
}

export type AnySenderDomain = CustomObject<{ domain: string; relayRef: { name: string } }>;
