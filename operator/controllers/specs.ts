// Cached objects with their spec parsed through the CRD schemas (defaults applied), as the
// renderers take them. The API server validated them already; a spec that still fails (an
// older CRD, a field the schema tightened) is reported, never guessed at.
import type { z } from 'zod';
import { formatIssues } from '../../relay/util/zod-issues.ts';
import { emailRelaySpec } from '../api/emailrelay.ts';
import { senderDomainSpec } from '../api/senderdomain.ts';
import type { EmailRelay, SenderDomain } from '../render/objects.ts';

const issuesText = (error: z.ZodError) => formatIssues(error).join('; ');

export function parseRelay(raw: EmailRelay): { relay: EmailRelay } | { error: string } {
  const parsed = emailRelaySpec.safeParse(raw.spec);
  return parsed.success ? { relay: { ...raw, spec: parsed.data } } : { error: issuesText(parsed.error) };
}

export function parseDomain(raw: SenderDomain): { sd: SenderDomain } | { error: string } {
  const parsed = senderDomainSpec.safeParse(raw.spec);
  return parsed.success ? { sd: { ...raw, spec: parsed.data } } : { error: issuesText(parsed.error) };
}

/** The SenderDomains whose spec parses (the others are Degraded and claim nothing). */
export function validDomains(all: SenderDomain[]): SenderDomain[] {
  return all.flatMap((raw) => {
    const p = parseDomain(raw);
    return 'sd' in p ? [p.sd] : [];
  });
}
