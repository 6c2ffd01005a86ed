// MTA-STS (RFC 8461): which policy a recipient domain publishes, cached as the RFC asks.
//
// mailauth does the protocol parts: the `_mta-sts` TXT discovery (resolvePolicy, asked
// through the relay's own resolver so configured DNS servers answer), the policy file
// syntax (parsePolicy) and MX matching (validateMx, used by tls-policy.ts). The HTTPS fetch
// is done here instead of by mailauth's getPolicy, because getPolicy connects to port 443
// of the first address with the system CAs only: the relay must check the policy host's
// address against the outbound rules first (no loopback, link-local or metadata address
// unless allowed), connect to exactly that address, trust mx.caFile too, and be testable
// on a loopback port. The fetch keeps mailauth's rules: HTTP 200 only, no redirects, at
// most 64 KB, a DNS-ID certificate match without CN fallback, an overall time limit.
//
// Cache (RFC 8461 §3.3, §5.1): a policy is kept for its max_age; the TXT id is asked again
// every recheckIntervalMs and a changed id fetches the policy again. Whatever goes wrong
// (no TXT record any more, DNS or HTTPS failure), a policy that has not expired stays in
// force, so an attacker who blocks the lookups cannot downgrade an `enforce` domain.
// Policies are written to <dataDir>/mta-sts/policies.json, so a restart keeps them.
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import https from 'node:https';
import path from 'node:path';
import tls from 'node:tls';
import { X509Certificate } from 'node:crypto';
import type { Resolver } from 'node:dns/promises';
import { parsePolicy, resolvePolicy } from 'mailauth/lib/mta-sts.js';
import type { Logger } from '../log.ts';
import type { OutboundPolicy } from '../outbound/targets.ts';
import type { MtaStsConfig } from './schema.ts';

export interface StsPolicy {
  id: string;
  mode: 'enforce' | 'testing' | 'none';
  mx: string[];
  maxAge: number;
  /** epoch ms */
  fetchedAt: number;
  /** epoch ms: fetchedAt + max_age */
  expires: number;
}

export type LookupResult = 'fetched' | 'cached' | 'none' | 'error';

export interface StsAnswer {
  /** The policy in force (enforce or testing); undefined: deliver without one. */
  policy?: StsPolicy;
  /** What the last lookup or fetch ran into, when it failed (the cached policy, if any, still applies). */
  error?: string;
}

const MAX_POLICY_SIZE = 64 * 1024;
const MAX_POLICIES = 10_000;

/** The policies of every domain seen, persisted; shared by all deliverers of a relay. */
export class StsPolicyStore {
  private readonly policies = new Map<string, StsPolicy>();
  private readonly file: string | undefined;
  private readonly log: Logger | undefined;
  private saving: Promise<void> | undefined;
  private dirty = false;

  constructor(file?: string, log?: Logger) {
    this.file = file;
    this.log = log;
    if (!file) return;
    try {
      const data = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, StsPolicy>;
      const now = Date.now();
      for (const [domain, p] of Object.entries(data)) {
        if (validStored(p) && p.expires > now) this.policies.set(domain, p);
      }
    } catch (err) {
      // no file yet is normal; a damaged one must not stop delivery: it is replaced
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') log?.warn({ file, err: (err as Error).message }, 'MTA-STS policy cache unreadable, starting empty');
    }
  }

  /** A policy that has not expired. */
  get(domain: string, now = Date.now()): StsPolicy | undefined {
    const p = this.policies.get(domain);
    return p && p.expires > now ? p : undefined;
  }

  set(domain: string, policy: StsPolicy): void {
    this.policies.delete(domain);
    if (this.policies.size >= MAX_POLICIES) {
      const now = Date.now();
      for (const [d, p] of this.policies) if (p.expires <= now) this.policies.delete(d);
      // still full: the least recently stored goes
      if (this.policies.size >= MAX_POLICIES) this.policies.delete(this.policies.keys().next().value!);
    }
    this.policies.set(domain, policy);
    void this.save();
  }

  get size(): number { return this.policies.size; }

  /** Writes the file (tmp + rename); saves requested meanwhile are folded into one more. */
  async save(): Promise<void> {
    if (!this.file) return;
    this.dirty = true;
    if (this.saving) return this.saving;
    this.saving = (async () => {
      try {
        while (this.dirty) {
          this.dirty = false;
          await fsp.mkdir(path.dirname(this.file!), { recursive: true, mode: 0o700 });
          await fsp.writeFile(`${this.file}.tmp`, JSON.stringify(Object.fromEntries(this.policies)), { mode: 0o600 });
          await fsp.rename(`${this.file}.tmp`, this.file!);
        }
      } catch (err) {
        this.log?.warn({ file: this.file, err: (err as Error).message }, 'MTA-STS policy cache not written');
      } finally {
        this.saving = undefined;
      }
    })();
    return this.saving;
  }
}

function validStored(p: unknown): p is StsPolicy {
  const x = p as StsPolicy;
  return typeof x === 'object' && x !== null && typeof x.id === 'string' && ['enforce', 'testing', 'none'].includes(x.mode)
    && Array.isArray(x.mx) && x.mx.every((m) => typeof m === 'string') && Number.isFinite(x.expires) && Number.isFinite(x.fetchedAt);
}

export interface MtaStsOptions {
  config: MtaStsConfig;
  store: StsPolicyStore;
  resolver: Resolver;
  outbound: () => OutboundPolicy;
  /** Extra CAs (PEM) trusted besides the system ones for the policy host. */
  ca?: string | undefined;
  log: Logger;
  onLookup?: (result: LookupResult) => void;
}

interface Checked { at: number; retryAt?: number; error?: string }

export class MtaSts {
  private readonly opts: MtaStsOptions;
  /** When each domain's TXT was last asked (in memory only: a restart asks again). */
  private readonly checked = new Map<string, Checked>();
  private readonly inflight = new Map<string, Promise<StsAnswer>>();

  constructor(opts: MtaStsOptions) {
    this.opts = opts;
  }

  /** The policy to apply to mail for `domain` now. Never throws. */
  async policyFor(domain: string): Promise<StsAnswer> {
    const key = domain.toLowerCase().replace(/\.$/, '');
    const c = this.checked.get(key);
    const now = Date.now();
    if (c && now - c.at < this.opts.config.recheckIntervalMs) {
      this.opts.onLookup?.('cached');
      return this.answer(key, c.error);
    }
    let p = this.inflight.get(key);
    if (!p) {
      p = this.refresh(key).finally(() => this.inflight.delete(key));
      this.inflight.set(key, p);
    }
    return p;
  }

  private answer(domain: string, error?: string): StsAnswer {
    const policy = this.opts.store.get(domain);
    return {
      ...(policy && policy.mode !== 'none' ? { policy } : {}),
      ...(error ? { error } : {}),
    };
  }

  private remember(domain: string, c: Checked): void {
    this.checked.delete(domain);
    if (this.checked.size >= MAX_POLICIES) this.checked.delete(this.checked.keys().next().value!);
    this.checked.set(domain, c);
  }

  private async refresh(domain: string): Promise<StsAnswer> {
    const { log, store } = this.opts;
    const now = Date.now();
    const cached = store.get(domain, now);
    let id: string | false;
    try {
      id = await resolvePolicy(domain, { resolver: (name: string, type: string) => this.opts.resolver.resolve(name, type as 'TXT') as Promise<string[][]> });
    } catch (err) {
      const error = `_mta-sts.${domain} TXT lookup failed: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`;
      this.remember(domain, { at: now, error });
      this.opts.onLookup?.('error');
      log.warn({ destination: domain, err: error, cachedMode: cached?.mode }, 'MTA-STS lookup failed');
      return this.answer(domain, error);
    }
    if (!id) {
      // no record: a policy still in its max_age keeps applying (RFC 8461 §5.1)
      this.remember(domain, { at: now });
      this.opts.onLookup?.(cached ? 'cached' : 'none');
      return this.answer(domain);
    }
    if (cached && cached.id === id) {
      this.remember(domain, { at: now });
      this.opts.onLookup?.('cached');
      return this.answer(domain);
    }
    const prev = this.checked.get(domain);
    if (prev?.retryAt && now < prev.retryAt && !cached) {
      this.remember(domain, { ...prev, at: now });
      this.opts.onLookup?.('error');
      return this.answer(domain, prev.error);
    }
    try {
      const body = await this.fetch(domain);
      const parsed = parsePolicy(body);
      const policy: StsPolicy = {
        id, mode: parsed.mode, mx: parsed.mx ?? [], maxAge: parsed.maxAge ?? 0, fetchedAt: now, expires: now + (parsed.maxAge ?? 0) * 1000,
      };
      store.set(domain, policy);
      this.remember(domain, { at: now });
      this.opts.onLookup?.('fetched');
      log.info({ destination: domain, id, mode: policy.mode, mx: policy.mx, maxAge: policy.maxAge }, 'MTA-STS policy fetched');
      return this.answer(domain);
    } catch (err) {
      const error = `MTA-STS policy of ${domain} (id ${id}) could not be fetched: ${(err as Error).message}`;
      this.remember(domain, { at: now, retryAt: now + this.opts.config.errorRetryMs, error });
      this.opts.onLookup?.('error');
      log.warn({ destination: domain, err: error, cachedMode: cached?.mode }, 'MTA-STS policy fetch failed');
      return this.answer(domain, error);
    }
  }

  /** GET https://mta-sts.<domain>/.well-known/mta-sts.txt from an address the outbound rules allow. */
  private async fetch(domain: string): Promise<string> {
    const host = `mta-sts.${domain}`;
    const { resolver } = this.opts;
    const [v4, v6] = await Promise.allSettled([resolver.resolve4(host), resolver.resolve6(host)]);
    const ips = [...(v4.status === 'fulfilled' ? v4.value : []), ...(v6.status === 'fulfilled' ? v6.value : [])];
    if (ips.length === 0) throw new Error(`policy host ${host} has no address`);
    // like every outbound target: one refused address refuses the host (outbound/targets.ts)
    const outbound = this.opts.outbound();
    for (const ip of ips) {
      const why = outbound.refusal(ip);
      if (why) throw new Error(`policy host ${host} resolves to ${ip} (${why}), which this relay may not connect to (allow it in outbound.allowAddresses)`);
    }
    const { port, fetchTimeoutMs } = this.opts.config;
    const ca = this.opts.ca ? [...tls.rootCertificates, this.opts.ca] : undefined;
    return new Promise<string>((resolve, reject) => {
      let settled = false;
      const done = (err: Error | undefined, body?: string) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (err) { req.destroy(); reject(err); } else resolve(body!);
      };
      const req = https.request({
        host: ips[0], port, servername: host, path: '/.well-known/mta-sts.txt', method: 'GET',
        headers: { host }, agent: false, rejectUnauthorized: true, ...(ca ? { ca } : {}),
        // RFC 8461 §3.3: the certificate must name the policy host as a DNS-ID (no CN fallback)
        checkServerIdentity: (name, cert) => {
          const err = tls.checkServerIdentity(name, cert);
          if (err) return err;
          const ok = new X509Certificate(cert.raw).checkHost(name, { subject: 'never', wildcards: true, partialWildcards: false, multiLabelWildcards: false });
          return ok ? undefined : new Error(`certificate of ${name} does not name it as a DNS subjectAltName`);
        },
      }, (res) => {
        if (res.statusCode !== 200) { res.resume(); return done(new Error(`https://${host}/.well-known/mta-sts.txt answered HTTP ${res.statusCode} (redirects are not followed)`)); }
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > MAX_POLICY_SIZE) return done(new Error(`policy file larger than ${MAX_POLICY_SIZE} bytes`));
          chunks.push(chunk);
        });
        res.on('end', () => done(undefined, Buffer.concat(chunks).toString('utf8')));
        res.on('error', (err) => done(err));
      });
      const timer = setTimeout(() => done(new Error(`no policy from https://${host} within ${fetchTimeoutMs} ms`)), fetchTimeoutMs);
      req.on('error', (err) => done(err));
      req.end();
    });
  }
}
