// Cached objects with their spec parsed through the CRD schemas (defaults applied), as the
// renderers take them. The API server validated them already; a spec that still fails (an
// older CRD, a field the schema tightened) is reported, never guessed at.
import type { z } from 'zod';
import { formatIssues } from '../../relay/util/zod-issues.ts';
import { emailRelaySpec } from '../api/emailrelay.ts';
import { senderDomainSpec } from '../api/senderdomain.ts';
import type { EmailRelay, SenderDomain } from '../render/objects.ts';

const issuesText = (error: z.ZodError) => formatIssues(error).join('; ');

// Every reconcile now looks at the cluster's SenderDomains (domain ownership is cluster-wide)
// and at the relays they name: parses are remembered per cached object (the cache replaces
// an object on every change, so identity is the version).
const relayParses = new WeakMap<EmailRelay, { relay: EmailRelay } | { error: string }>();
const domainParses = new WeakMap<SenderDomain, { sd: SenderDomain } | { error: string }>();

export function parseRelay(raw: EmailRelay): { relay: EmailRelay } | { error: string } {
  let out = relayParses.get(raw);
  if (!out) {
    const parsed = emailRelaySpec.safeParse(raw.spec);
    out = parsed.success ? { relay: { ...raw, spec: parsed.data } } : { error: issuesText(parsed.error) };
    relayParses.set(raw, out);
  }
  return out;
}

/** A label value's limit: a SenderDomain's name labels the Secrets it owns (mailfleet.io/senderdomain). */
export const DOMAIN_NAME_MAX = 63;

export function parseDomain(raw: SenderDomain): { sd: SenderDomain } | { error: string } {
  let out = domainParses.get(raw);
  if (!out) {
    const parsed = senderDomainSpec.safeParse(raw.spec);
    const name = raw.metadata.name;
    const relayName = parsed.success ? parsed.data.relayRef.name : '';
    // refused before it claims a domain it could never be served for
    out = name.length > DOMAIN_NAME_MAX
      ? { error: `metadata.name: a SenderDomain's name labels the Secrets it owns, so it has at most ${DOMAIN_NAME_MAX} characters (this one has ${name.length}); create it under a shorter name` }
      : relayName.length > DOMAIN_NAME_MAX
        ? { error: `relayRef.name: an EmailRelay's name has at most ${DOMAIN_NAME_MAX} characters (it names its Services and labels this SenderDomain's Secrets); this one has ${relayName.length}` }
        : parsed.success ? { sd: { ...raw, spec: parsed.data } } : { error: issuesText(parsed.error) };
    domainParses.set(raw, out);
  }
  return out;
}

/** The SenderDomains whose spec parses (the others are Degraded and claim nothing). */
export function validDomains(all: SenderDomain[]): SenderDomain[] {
  return all.flatMap((raw) => {
    const p = parseDomain(raw);
    return 'sd' in p ? [p.sd] : [];
  });
}
