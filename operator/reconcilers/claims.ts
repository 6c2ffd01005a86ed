// Two SenderDomains may claim the same domain on one relay; the first (creationTimestamp,
// then name) keeps it and the later one is refused, whichever the operator sees first.
import type { CustomObject } from './objects.ts';

interface Claimant { metadata: { name: string; creationTimestamp?: string }; spec: { domain: string; relayRef: { name: string } } }

function before(a: Claimant, b: Claimant): boolean {
  const ta = a.metadata.creationTimestamp ?? '';
  const tb = b.metadata.creationTimestamp ?? '';
  if (ta !== tb) return ta < tb; // RFC 3339 UTC with seconds: string order is time order
  return a.metadata.name < b.metadata.name;
}

/** For every domain claimed on `relay`, the SenderDomain that owns it. */
export function domainOwners<T extends Claimant>(all: readonly T[], relay: string): Map<string, T> {
  const owners = new Map<string, T>();
  for (const sd of all) {
    if (sd.spec.relayRef.name !== relay) continue;
    const domain = sd.spec.domain.toLowerCase();
    const cur = owners.get(domain);
    if (!cur || before(sd, cur)) owners.set(domain, sd);
  }
  return owners;
}

export type AnySenderDomain = CustomObject<{ domain: string; relayRef: { name: string } }>;
