// Per sender domain, what intake needs on its hot path: compiled local-part patterns,
// DKIM keys parsed once (a reload re-reads them), alignment mode and rate limit.
import { loadDkimKeys, type LoadedKey } from '../dkim/index.ts';
import type { RelayConfig } from '../config/schema.ts';
import type { RateLimit } from '../limits/index.ts';
import type { Logger } from '../log.ts';
import { LocalPartGlob } from './glob.ts';

export interface DomainPolicy {
  domain: string;
  allowedSenders: LocalPartGlob[];
  alignment: 'strict' | 'relaxed' | 'off';
  dkim?: { keys: LoadedKey[]; headers: string[]; overSign: boolean };
  rateLimit?: RateLimit;
}

export function buildDomainPolicies(config: RelayConfig, log?: Logger): Map<string, DomainPolicy> {
  const out = new Map<string, DomainPolicy>();
  for (const d of config.domains) {
    out.set(d.domain, {
      domain: d.domain,
      allowedSenders: d.allowedSenders.map((p) => new LocalPartGlob(p)),
      alignment: d.fromAlignment,
      ...(d.dkim ? { dkim: { keys: loadDkimKeys(d.dkim, log), headers: d.dkim.headers, overSign: d.dkim.overSign } } : {}),
      ...(d.rateLimit ? { rateLimit: d.rateLimit } : {}),
    });
  }
  return out;
}

/**
 * Is the header From domain acceptable for mail sent as envelopeDomain? Relaxed allows a
 * subdomain of the envelope domain, or a parent of it that this relay serves too (so
 * bounces.example.com may carry From: example.com) — never an arbitrary parent, which
 * could be a public suffix.
 */
export function aligned(headerDomain: string, envelopeDomain: string, mode: DomainPolicy['alignment'], served: (d: string) => boolean = () => false): boolean {
  if (mode === 'off') return true;
  if (headerDomain === envelopeDomain) return true;
  if (mode === 'strict') return false;
  return headerDomain.endsWith(`.${envelopeDomain}`) || (envelopeDomain.endsWith(`.${headerDomain}`) && served(headerDomain));
}
