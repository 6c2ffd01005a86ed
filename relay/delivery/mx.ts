// MX resolution (RFC 5321 §5.1, RFC 7505): turns a recipient domain into the ordered list
// of addresses to try, or into a verdict when DNS already decides the outcome.
import { Resolver } from 'node:dns/promises';
import type { RecipientStatus } from './types.ts';

export interface MxTarget {
  host: string;        // MX host name: TLS servername and part of the log/outcome 'remote'
  ip: string;
  preference: number;
}

export type MxPlan =
  | { kind: 'targets'; targets: MxTarget[] }
  | { kind: 'verdict'; status: Exclude<RecipientStatus, 'delivered'>; enhanced: string; response: string };

export interface MxResolverOptions {
  dnsServers?: string[] | undefined;
  /** How long a decisive answer is reused by default (60 s; 0 turns reuse off). */
  cacheMs?: number;
  timeoutMs: number;
  maxAddresses: number;
}

/** How old a cached answer a caller accepts; delivery and the RCPT check differ. */
export interface PlanFreshness {
  /** Targets and permanent failures (default: the resolver's cacheMs). */
  maxAgeMs?: number;
  /** Temporary failures (default 0: ask DNS again, so a retry sees a recovered resolver). */
  temporaryFailureMaxAgeMs?: number;
}

/** DNS errors that say the name or the record does not exist, as opposed to a lookup failure. */
const NXDOMAIN = new Set(['ENOTFOUND']);
const NODATA = new Set(['ENODATA']);

function code(err: unknown): string {
  return (err as { code?: string }).code ?? 'EUNKNOWN';
}

/**
 * Equal preferences are shuffled (RFC 5321 §5.1: SHOULD randomize), spreading load over
 * a domain's equally-preferred MX hosts; lower preference first.
 */
export function orderMx<T extends { priority: number }>(records: T[], random: () => number = Math.random): T[] {
  const keyed = records.map((r) => ({ r, k: random() }));
  keyed.sort((a, b) => a.r.priority - b.r.priority || a.k - b.k);
  return keyed.map((x) => x.r);
}

export class MxResolver {
  private readonly resolver: Resolver;
  private readonly maxAddresses: number;
  // Without a cache every message costs an MX and an A/AAAA round trip. This is the relay's
  // one DNS cache, shared by delivery and the RCPT-time recipient check: every answer is
  // kept with its time, and each caller says how old an answer it accepts (PlanFreshness).
  // Concurrent asks share one lookup.
  private readonly cache = new Map<string, { plan: MxPlan; at: number }>();
  private readonly inflight = new Map<string, Promise<MxPlan>>();
  private readonly cacheMs: number;
  private static readonly MAX_CACHED = 10_000;

  constructor(opts: MxResolverOptions) {
    // tries: 2 so one lost UDP datagram does not defer mail
    this.resolver = new Resolver({ timeout: opts.timeoutMs, tries: 2 });
    if (opts.dnsServers?.length) this.resolver.setServers(opts.dnsServers);
    this.maxAddresses = opts.maxAddresses;
    this.cacheMs = opts.cacheMs ?? 60_000;
  }

  /** The configured resolver itself, for other lookups that must ask the same servers (MTA-STS). */
  get dns(): Resolver {
    return this.resolver;
  }

  async plan(domain: string, fresh: PlanFreshness = {}, now = Date.now()): Promise<MxPlan> {
    const key = domain.toLowerCase();
    const hit = this.cache.get(key);
    if (hit) {
      const temporary = hit.plan.kind === 'verdict' && hit.plan.status !== 'failed';
      const maxAge = temporary ? fresh.temporaryFailureMaxAgeMs ?? 0 : fresh.maxAgeMs ?? this.cacheMs;
      if (now - hit.at < maxAge) return reshuffle(hit.plan);
    }
    let p = this.inflight.get(key);
    if (!p) {
      p = this.resolvePlan(key).finally(() => this.inflight.delete(key));
      this.inflight.set(key, p);
      void p.then((plan) => {
        this.cache.delete(key); // re-inserted last: eviction drops the least recently resolved
        if (this.cache.size >= MxResolver.MAX_CACHED) this.cache.delete(this.cache.keys().next().value!);
        this.cache.set(key, { plan, at: now });
      }, () => {});
    }
    return p;
  }

  private async resolvePlan(domain: string): Promise<MxPlan> {
    let records: { exchange: string; priority: number }[];
    try {
      records = await this.resolver.resolveMx(domain);
    } catch (err) {
      const c = code(err);
      if (NXDOMAIN.has(c)) {
        return { kind: 'verdict', status: 'failed', enhanced: '5.1.2', response: `domain ${domain} does not exist (NXDOMAIN)` };
      }
      if (NODATA.has(c)) return this.implicitMx(domain);
      return { kind: 'verdict', status: 'deferred', enhanced: '4.4.3', response: `MX lookup for ${domain} failed: ${c}` };
    }
    if (records.length === 0) return this.implicitMx(domain);
    // RFC 7505: a single MX with the root as exchange says the domain accepts no mail.
    const isNull = (r: { exchange: string }) => r.exchange === '' || r.exchange === '.';
    if (records.every(isNull)) {
      return { kind: 'verdict', status: 'failed', enhanced: '5.1.10', response: `domain ${domain} does not accept mail (null MX, RFC 7505)` };
    }
    const ordered = orderMx(records.filter((r) => !isNull(r)));
    const targets: MxTarget[] = [];
    const notes: string[] = [];
    let temporary = 0;
    for (const mx of ordered) {
      if (targets.length >= this.maxAddresses) break;
      const host = mx.exchange.replace(/\.$/, '');
      const res = await this.addresses(host);
      if (res.temporary) temporary++;
      if (res.note) notes.push(res.note);
      for (const ip of res.ips) {
        if (targets.length >= this.maxAddresses) break;
        targets.push({ host, ip, preference: mx.priority });
      }
    }
    if (targets.length === 0) {
      // Every MX host lacked an address: permanent only when DNS said so for all of them.
      return temporary > 0
        ? { kind: 'verdict', status: 'deferred', enhanced: '4.4.3', response: `no address for the MX hosts of ${domain}: ${notes.join('; ')}` }
        : { kind: 'verdict', status: 'failed', enhanced: '5.4.4', response: `the MX hosts of ${domain} have no address: ${notes.join('; ')}` };
    }
    return { kind: 'targets', targets };
  }

  /** No MX records: the domain itself is the mail host (RFC 5321 §5.1). */
  private async implicitMx(domain: string): Promise<MxPlan> {
    const res = await this.addresses(domain);
    if (res.ips.length === 0) {
      return res.temporary
        ? { kind: 'verdict', status: 'deferred', enhanced: '4.4.3', response: `address lookup for ${domain} (no MX) failed: ${res.note}` }
        : { kind: 'verdict', status: 'failed', enhanced: '5.1.2', response: `domain ${domain} has no MX and no address records` };
    }
    const targets = res.ips.slice(0, this.maxAddresses).map((ip) => ({ host: domain, ip, preference: 0 }));
    return { kind: 'targets', targets };
  }

  /** A and AAAA of one host, IPv4 first (IPv6 egress is often missing in clusters). */
  private async addresses(host: string): Promise<{ ips: string[]; temporary: boolean; note?: string }> {
    const [v4, v6] = await Promise.allSettled([this.resolver.resolve4(host), this.resolver.resolve6(host)]);
    const ips = [
      ...(v4.status === 'fulfilled' ? v4.value : []),
      ...(v6.status === 'fulfilled' ? v6.value : []),
    ];
    const errors = [v4, v6].flatMap((r) => (r.status === 'rejected' ? [code(r.reason)] : []));
    const temporary = errors.some((c) => !NXDOMAIN.has(c) && !NODATA.has(c));
    if (ips.length > 0) return { ips, temporary: false };
    return { ips, temporary, note: `${host}: ${[...new Set(errors)].join('/') || 'no addresses'}` };
  }
}

/** A cached plan with equal-preference hosts shuffled again, so load still spreads. */
function reshuffle(plan: MxPlan): MxPlan {
  if (plan.kind !== 'targets' || plan.targets.length < 2) return plan;
  const ordered = orderMx(plan.targets.map((t) => ({ ...t, priority: t.preference })));
  return { ...plan, targets: ordered.map(({ priority: _p, ...t }) => t) };
}
