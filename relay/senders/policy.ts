// What makes the relay safe to hand a domain's reputation: who may send as which
// address, how fast, to whom (suppression, dead domains), and the DKIM signature on
// every message. Plugs into intake through IntakePolicy.
import type { SMTPServerSession } from 'smtp-server';
import type { IntakePolicy } from '../smtp/intake.ts';
import type { RelayRuntime } from '../config/runtime.ts';
import type { Logger } from '../log.ts';
import type { Metrics } from '../metrics.ts';
import type { RateLimiter, AuthThrottle } from '../limits/index.ts';
import { PLATFORM, type SuppressionList } from '../suppression/index.ts';
import { signMessage } from '../dkim/index.ts';
import { RelaxedBodyHash } from '../dkim/relaxed-body.ts';
import { smtpError } from '../smtp/replies.ts';
import { aligned, type DomainPolicy } from './domains.ts';
import { headerFromAddresses } from './headers.ts';
import type { RecipientDnsCheck } from './recipient-dns.ts';
import { domainOf } from '../util/address.ts';

export interface SenderPolicyDeps {
  runtime(): RelayRuntime;
  limiter(): RateLimiter;
  authThrottle(): AuthThrottle;
  suppression?: SuppressionList;
  recipientDns(): RecipientDnsCheck | undefined;
  log: Logger;
  metrics: Metrics;
  onSuppressed?(rcpt: string, reason: string, session: SMTPServerSession): void;
}

function uncheckedDomainDefaults(domain: string): DomainPolicy {
  return { domain, allowedSenders: [], alignment: 'relaxed' };
}

function seconds(ms: number): number {
  return Math.max(1, Math.ceil(ms / 1000));
}

export function createSenderPolicy(deps: SenderPolicyDeps): IntakePolicy {
  const limitRefusals = deps.metrics.counter('mailfleet_ratelimit_refusals_total', 'Messages refused at intake by a rate limit', ['scope']);
  const lockouts = deps.metrics.counter('mailfleet_auth_lockouts_total', 'Lockouts begun after repeated AUTH failures, by what was locked (address, or login from one address)', ['scope']);
  const throttled = deps.metrics.counter('mailfleet_auth_throttled_total', 'AUTH attempts refused while locked out, or delayed because their login is under attack', ['action']);
  const suppressed = deps.metrics.counter('mailfleet_recipients_suppressed_total', 'Recipients refused by the suppression list');
  const deadDomains = deps.metrics.counter('mailfleet_recipients_dead_domain_total', 'Recipients refused because their domain takes no mail');

  return {
    async authAllowed(ip, user) {
      const state = await deps.authThrottle().check(ip, user);
      if (state.locked) {
        throttled.inc({ action: 'refused' });
        throw smtpError(454, '4.7.0', `Too many failed logins from ${ip}, try again in ${seconds(state.retryAfterMs)}s`);
      }
      if (state.delayMs > 0) {
        throttled.inc({ action: 'delayed' });
        await new Promise((r) => setTimeout(r, state.delayMs));
      }
    },

    async authResult(ip, user, ok) {
      if (ok) return deps.authThrottle().recordSuccess(ip, user);
      const { lockedNow } = await deps.authThrottle().recordFailure(ip, user);
      if (lockedNow) {
        lockouts.inc({ scope: lockedNow });
        const cfg = deps.authThrottle().config;
        deps.log.warn({ client: ip, user, scope: lockedNow, lockoutSeconds: cfg.lockoutSeconds }, lockedNow === 'address'
          ? 'auth lockout: client address locked after repeated failures'
          : 'auth lockout: login locked for this client address after repeated failures');
      }
    },

    async checkSender(from, domain, session) {
      const policy = deps.runtime().domains.get(domain);
      const local = from.slice(0, from.lastIndexOf('@'));
      if (policy && !policy.allowedSenders.some((glob) => glob.test(local))) {
        throw smtpError(550, '5.7.1', `Sender ${from} is not an allowed sender of ${domain}`);
      }
      const rt = deps.runtime();
      const checks: Array<{ scope: string; key: string; rule: NonNullable<typeof policy>['rateLimit'] }> = [];
      const domainRule = policy?.rateLimit ?? rt.config.rateLimits.perDomain;
      if (domainRule) checks.push({ scope: 'domain', key: `domain:${domain}`, rule: domainRule });
      if (session.user && rt.config.rateLimits.perLogin) checks.push({ scope: 'login', key: `login:${String(session.user)}`, rule: rt.config.rateLimits.perLogin });
      for (const c of checks) {
        const d = await deps.limiter().take(c.key, c.rule!);
        if (!d.allowed) {
          limitRefusals.inc({ scope: c.scope });
          deps.log.info({ client: session.remoteAddress, user: session.user, key: c.key, retryAfterMs: d.retryAfterMs }, 'rate limited');
          throw smtpError(451, '4.7.1', `Rate limit for ${c.scope === 'domain' ? domain : `login ${String(session.user)}`} exceeded, retry in ${seconds(d.retryAfterMs)}s`);
        }
      }
    },

    async checkRecipient(rcpt, session) {
      const from = session.envelope.mailFrom ? session.envelope.mailFrom.address : '';
      const entry = deps.suppression?.check(rcpt, from ? domainOf(from) : undefined);
      if (entry) {
        suppressed.inc();
        deps.onSuppressed?.(rcpt, entry.reason, session);
        // The remote server's text stays out of the reply: it may be another tenant's
        // destination talking (or an attacker's), and the reply goes to this sender.
        const list = entry.scope === PLATFORM ? 'the platform-wide list' : `the list of ${entry.scope}`;
        throw smtpError(550, '5.1.1', `Recipient ${rcpt} is suppressed on ${list} since ${new Date(entry.addedAt).toISOString()} after a hard bounce${entry.code ? ` (${entry.code.replace(/[^0-9. ]/g, '')})` : ''}`);
      }
      const dns = deps.recipientDns();
      if (dns) {
        const reason = await dns.refusal(domainOf(rcpt));
        if (reason) {
          deadDomains.inc();
          throw smtpError(550, '5.1.2', `Recipient domain takes no mail: ${reason}`);
        }
      }
    },

    messageHooks({ domain }) {
      // The schema makes every sendable domain a served one; should a domain still come
      // without its entry, it gets the default checks (relaxed alignment), never none.
      const policy = deps.runtime().domains.get(domain) ?? uncheckedDomainDefaults(domain);
      const body = policy.dkim ? new RelaxedBodyHash() : undefined;
      return {
        ...(body ? { body: (chunk: Buffer) => body.update(chunk) } : {}),
        finalize: async (_meta, headers) => {
          if (policy.alignment !== 'off') {
            const served = (d: string) => deps.runtime().domains.has(d);
            const froms = headerFromAddresses(headers.fields);
            if (froms.length === 0) throw smtpError(550, '5.7.1', 'The From header has no address');
            const bad = froms.find((a) => !aligned(domainOf(a), domain, policy.alignment, served));
            if (bad) throw smtpError(550, '5.7.1', `Header From ${bad} does not align with the sender domain ${domain}`);
          }
          if (!body || !policy.dkim) return {};
          const signature = await signMessage({
            domain, keys: policy.dkim.keys, headerBlock: headers.block, fields: headers.fields, bodyHash: body.digest(),
            signedHeaders: policy.dkim.headers, overSign: policy.dkim.overSign,
          });
          return { prepend: signature };
        },
      };
    },
  };
}
