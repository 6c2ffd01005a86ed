// Refuse at RCPT the recipients whose domain cannot receive mail (NXDOMAIN, no MX/A,
// null MX): a 550 now instead of a bounce later. The lookup is delivery's own MxResolver,
// so an RCPT check warms the cache the delivery of the same mail then reads (one DNS
// cache in the relay). A DNS failure never refuses anything — the queue copes with
// temporary trouble.
import type { MxResolver } from '../delivery/mx.ts';

// A failed lookup is reused this long, so an unreachable resolver costs one timeout per
// domain per period, not one per RCPT.
const FAILURE_REUSE_MS = 30_000;

export class RecipientDnsCheck {
  private readonly resolver: () => MxResolver;
  private readonly maxAgeMs: number;

  /** `resolver` returns the current one (a reload may replace it). */
  constructor(opts: { resolver: () => MxResolver; ttlSeconds: number }) {
    this.resolver = opts.resolver;
    this.maxAgeMs = opts.ttlSeconds * 1000;
  }

  /** undefined when the domain may receive mail (or DNS could not tell); else the reason. */
  async refusal(domain: string, now = Date.now()): Promise<string | undefined> {
    const plan = await this.resolver().plan(domain, { maxAgeMs: this.maxAgeMs, temporaryFailureMaxAgeMs: Math.min(this.maxAgeMs, FAILURE_REUSE_MS) }, now);
    return plan.kind === 'verdict' && plan.status === 'failed' ? plan.response : undefined;
  }
}
