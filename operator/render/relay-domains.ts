// The SenderDomains' part of a relay's render: each one's config entry, login and files,
// rendered and checked on its own, so that what fails for one tenant leaves out that tenant
// alone; then as many as the Secret and the config can hold, oldest first. Pure.
import YAML from 'yaml';
import { credentialSchema, senderDomainSchema, type RelayConfigInput } from '../../relay/config/schema.ts';
import { parseDkimKey } from '../../relay/dkim/keys.ts';
import { formatIssues } from '../../relay/util/zod-issues.ts';
import { claimOrder } from './claims.ts';
import { signingKeys } from './dkim.ts';
import type { DomainInternal } from './domain-internal.ts';
import type { SenderDomain } from './objects.ts';
import { OBJECT_DATA_MAX, SecretFiles, byteSize, filesSize } from './relay-secret-files.ts';
import { domainFiles } from './relay-secret-keys.ts';
import { smarthostConfig } from './relay-smarthost.ts';

export interface AttachedDomain {
  sd: SenderDomain;
  internal: DomainInternal;
  /**
   * Decoded data of the user Secrets this SenderDomain names (its smarthost's login), read
   * in its own namespace with their consent. Never the relay's: a SenderDomain must not
   * reach the platform's Secrets by naming them.
   */
  secrets?: Map<string, Record<string, string>>;
}

type DomainEntry = NonNullable<RelayConfigInput['domains']>[number];
type Credential = NonNullable<RelayConfigInput['credentials']>[number];

/** A SenderDomain the relay serves as an owner but left out of its config, and why. */
export interface LeftOutDomain {
  /** namespace/name of the SenderDomain. */
  senderDomain: string;
  domain: string;
  errors: string[];
  /** Left out for the relay's size budget (SECRET_BUDGET_EXCEEDED), not for a problem of its own. */
  overBudget?: true;
}

/**
 * One SenderDomain's config entry and login, its files staged in `files`. Everything it reads
 * is its own (its keys, its Secrets), and its entry is checked against the relay's schema on
 * its own: what fails here is that tenant's, and leaves out that domain only.
 */
function domainEntry(a: AttachedDomain, files: SecretFiles, now: number): { entry: DomainEntry; credential?: Credential } {
  const { sd, internal } = a;
  const d = sd.spec;
  const names = domainFiles(sd.metadata.namespace ?? '', sd.metadata.name);
  const entry: DomainEntry = { domain: d.domain, allowedSenders: d.allowedSenders, fromAlignment: d.fromAlignment };
  const keys = signingKeys(internal.dkim, now).filter((k) => internal.pems[k.selector]);
  if (keys.length) {
    entry.dkim = {
      keys: keys.map((k) => {
        const key = { selector: k.selector, algorithm: k.algorithm, privateKeyFile: files.put(names.dkim(k.selector), internal.pems[k.selector] as string) };
        // a key the relay would refuse (RSA under 1024 bits, say) would make it refuse the whole config
        try { parseDkimKey(internal.pems[k.selector] as string, key); } catch (e) { files.errors.push((e as Error).message); }
        return key;
      }),
    };
  }
  if (d.rateLimit) entry.rateLimit = d.rateLimit;
  // Its name labels metrics (mailfleet_oauth2_credential_healthy{smarthost}), /status and the
  // relay's destinations entries: qualified by the SenderDomain, so that no tenant's smarthost
  // shares one with the platform's or another tenant's (unnamed, two would share host:port).
  if (d.smarthost) {
    const name = `${sd.metadata.namespace ?? ''}/${sd.metadata.name}/${d.smarthost.name ?? d.smarthost.host}`;
    entry.smarthost = smarthostConfig(files, d.smarthost, names.smarthost, `SenderDomain ${sd.metadata.name} smarthost`, name);
  }
  const checked = senderDomainSchema.safeParse(entry);
  if (!checked.success) files.errors.push(...formatIssues(checked.error, 'relay config entry '));
  if (!d.credentials.enabled || !internal.passwordHash) return { entry };
  const credential: Credential = { username: d.credentials.username ?? d.domain, passwordHashFile: files.put(names.login, internal.passwordHash), domains: [d.domain] };
  const login = credentialSchema.safeParse(credential);
  if (!login.success) files.errors.push(...formatIssues(login.error, 'relay config login '));
  return { entry, credential };
}

/**
 * What one SenderDomain's files may take in the relay's Secret (keys and values, bytes). Its
 * DKIM keys (a few during a rotation), login hash and smarthost login take a few KiB; the
 * bound keeps one tenant's oversized Secret from filling what every tenant shares.
 */
export const DOMAIN_FILES_MAX = 32 * 1024;
export const yamlSize = (v: unknown) => byteSize(YAML.stringify(v, { lineWidth: 0 }));

/** Renders one SenderDomain into its stage; an exception is that domain's error, never the relay's. */
function stageDomain(a: AttachedDomain, stage: SecretFiles, now: number): ReturnType<typeof domainEntry> | undefined {
  try {
    const out = domainEntry(a, stage, now);
    const size = filesSize(stage.data);
    if (size > DOMAIN_FILES_MAX) {
      stage.errors.push(`its files in the relay's Secret would take ${size} bytes, more than ${DOMAIN_FILES_MAX}: a Secret it names holds more than a key or a password needs`);
    }
    return out;
  } catch (e) {
    stage.errors.push((e as Error).message);
    return undefined;
  }
}

/**
 * Why a SenderDomain would be left out of its relay's config on its own account (its
 * smarthost Secret lacks a key, its OAuth2 credential does not load, its entry breaks the
 * relay's schema); empty when it renders. The same code as the relay's render, so the
 * SenderDomain controller reports exactly what the relay leaves it out for.
 */
export function domainEntryRefusal(a: AttachedDomain, now: Date): { reason: typeof SECRET_UNUSABLE | typeof ENTRY_INVALID; message: string } | undefined {
  const stage = SecretFiles.forRelay(new Map()).stage(domainFiles(a.sd.metadata.namespace ?? '', a.sd.metadata.name).owner, a.secrets);
  stageDomain(a, stage, now.getTime());
  if (!stage.errors.length) return undefined;
  // every error that comes from a user Secret says so (`<field>: Secret <name> ...`)
  const reason = stage.errors.some((e) => /\bSecret\b/.test(e)) ? SECRET_UNUSABLE : ENTRY_INVALID;
  return { reason, message: `not served: ${stage.errors.join('; ')}`.slice(0, 4000) };
}

/** A Secret the SenderDomain may use lacks a key, or holds what cannot be used (an OAuth2 credential that does not load). */
export const SECRET_UNUSABLE = 'SecretUnusable';
/** The SenderDomain's entry is one the relay's config schema refuses. */
export const ENTRY_INVALID = 'ConfigInvalid';

/**
 * The SenderDomain renders, but the relay's Secret or config has no room left for it: the
 * older SenderDomains fill what the API server stores (OBJECT_DATA_MAX).
 */
export const SECRET_BUDGET_EXCEEDED = 'SecretBudgetExceeded';

/** The SenderDomain's own words for SECRET_BUDGET_EXCEEDED: which relay, which budget, what to do. */
export function budgetRefusal(relayKey: string): { reason: typeof SECRET_BUDGET_EXCEEDED; message: string } {
  return {
    reason: SECRET_BUDGET_EXCEEDED,
    message: `not served: EmailRelay ${relayKey} has no room left for its files — the relay's one Secret and its config each hold at most `
      + `${OBJECT_DATA_MAX} bytes (1 MiB − 16 KiB, what the API server stores; at most ${DOMAIN_FILES_MAX} per SenderDomain), `
      + 'SenderDomains are served oldest first and the older ones fill it; it is served once room frees up '
      + '(fewer or smaller SenderDomains on that relay), or put it on another relay',
  };
}

/**
 * The served domains (with their signing keys) and the SMTP logins, sorted by domain, after
 * the relay's own files are in. A domain that does not render whole is left out and listed;
 * so is one that would take the Secret or the config (`configBytes` so far) past what the API
 * server stores: the oldest SenderDomains are served first, so a newcomer never pushes out
 * those already served.
 */
export function domainsConfig(attached: AttachedDomain[], at: Date, files: SecretFiles, configBytes: number): { domains: DomainEntry[]; credentials: Credential[]; leftOut: LeftOutDomain[] } {
  const now = at.getTime();
  const leftOut: LeftOutDomain[] = [];
  const key = (a: AttachedDomain) => `${a.sd.metadata.namespace ?? ''}/${a.sd.metadata.name}`;
  const staged: { a: AttachedDomain; out: NonNullable<ReturnType<typeof stageDomain>>; stage: SecretFiles }[] = [];
  for (const a of attached) {
    const stage = files.stage(domainFiles(a.sd.metadata.namespace ?? '', a.sd.metadata.name).owner, a.secrets);
    const out = stageDomain(a, stage, now);
    if (!out || stage.errors.length) leftOut.push({ senderDomain: key(a), domain: a.sd.spec.domain, errors: stage.errors });
    else staged.push({ a, out, stage });
  }
  let secretBytes = filesSize(files.data);
  // oldest claim first (creationTimestamp, then namespace/name), as domain ownership goes
  const fitting = staged.sort((x, y) => (claimOrder(x.a.sd) < claimOrder(y.a.sd) ? -1 : 1)).filter(({ a, out, stage }) => {
    const s = filesSize(stage.data);
    const c = yamlSize({ domains: [out.entry], credentials: out.credential ? [out.credential] : [] });
    const full = secretBytes + s > OBJECT_DATA_MAX ? 'Secret' : configBytes + c > OBJECT_DATA_MAX ? 'config' : undefined;
    if (full) {
      leftOut.push({
        senderDomain: key(a), domain: a.sd.spec.domain, overBudget: true,
        errors: [`the relay's ${full} would pass the ${OBJECT_DATA_MAX} bytes the API server stores; SenderDomains are served oldest first`],
      });
      return false;
    }
    secretBytes += s;
    configBytes += c;
    return true;
  });
  const domains: DomainEntry[] = [];
  const credentials: Credential[] = [];
  for (const { a, out, stage } of fitting.sort((x, y) => x.a.sd.spec.domain.localeCompare(y.a.sd.spec.domain))) {
    const taken = files.commit(stage);
    if (taken.length) {
      leftOut.push({ senderDomain: key(a), domain: a.sd.spec.domain, errors: taken });
      continue;
    }
    domains.push(out.entry);
    if (out.credential) credentials.push(out.credential);
  }
  return { domains, credentials, leftOut: leftOut.sort((x, y) => x.senderDomain.localeCompare(y.senderDomain)) };
}
