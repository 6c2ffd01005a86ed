// Refuse at RCPT the recipients whose domain cannot receive mail (NXDOMAIN, no MX/A,
// null MX): a 550 now instead of a bounce later. Answers are cached (bounded); a DNS
// failure never refuses anything — the queue copes with temporary trouble.
import { MxResolver } from '../delivery/mx.ts';

interface Cached { ok: boolean; response: string; until: number }

const FAILURE_TTL_MS = 30_000;

export class RecipientDnsCheck {
  private readonly resolver: MxResolver;
  private readonly cache = new Map<string, Cached>();
  private readonly ttlMs: number;
  private readonly maxEntries: number;
  private readonly inflight = new Map<string, Promise<Cached>>();

  constructor(opts: { dnsServers?: string[] | undefined; ttlSeconds: number; maxEntries?: number; timeoutMs?: number }) {
    this.resolver = new MxResolver({ dnsServers: opts.dnsServers, timeoutMs: opts.timeoutMs ?? 5000, maxAddresses: 1 });
    this.ttlMs = opts.ttlSeconds * 1000;
    this.maxEntries = opts.maxEntries ?? 10_000;
  }

  /** undefined when the domain may receive mail (or DNS could not tell); else the reason. */
  async refusal(domain: string, now = Date.now()): Promise<string | undefined> {
    const key = domain.toLowerCase();
    const hit = this.cache.get(key);
    if (hit && hit.until > now) return hit.ok ? undefined : hit.response;
    let p = this.inflight.get(key);
    if (!p) {
      p = this.lookup(key, now).finally(() => this.inflight.delete(key));
      this.inflight.set(key, p);
    }
    const r = await p;
    return r.ok ? undefined : r.response;
  }

  private async lookup(domain: string, now: number): Promise<Cached> {
    const plan = await this.resolver.plan(domain);
    // A DNS failure lets the recipient through (the queue copes) and is remembered briefly,
    // so an unreachable resolver costs one timeout per domain per period, not one per RCPT.
    const result: Cached = plan.kind === 'verdict' && plan.status === 'failed'
      ? { ok: false, response: plan.response, until: now + this.ttlMs }
      : { ok: true, response: '', until: now + (plan.kind === 'targets' ? this.ttlMs : Math.min(this.ttlMs, FAILURE_TTL_MS)) };
    if (this.cache.size >= this.maxEntries) this.cache.delete(this.cache.keys().next().value!);
    this.cache.set(domain, result);
    return result;
  }
}
