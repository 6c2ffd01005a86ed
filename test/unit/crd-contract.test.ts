// The CRDs and the relay config describe some of the same things. Where the CRD takes the
// relay's own schema (rateLimit, the smarthost fields) this checks that it still does; where
// it must restate a rule (RE2 patterns for the API server, durations as strings) this runs
// both versions over the same inputs; and a spec with every field set renders to a config
// the relay accepts, so nothing the API server admits is refused by the relay.
import { describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { z } from 'zod';
import { DOMAIN_RE, rateLimit, smarthost } from '../../operator/api/common.ts';
import { emailRelayCrd, senderDomainCrd } from '../../operator/api/crd.ts';
import { renderRelay } from '../../operator/render/relay.ts';
import { domainName, relayConfigSchema } from '../../relay/config/schema.ts';
import { smarthostSchema } from '../../relay/delivery/schema.ts';
import { rateLimitSchema } from '../../relay/limits/schema.ts';
import { DURATION_PATTERN, parseDuration } from '../../relay/util/duration.ts';
import { webhookEventTypes } from '../../relay/webhooks/schema.ts';
import { domainObject, ed25519Pem, relayObject } from '../operator/fixtures.ts';

type Json = Record<string, unknown>;
const jsonOf = (s: z.ZodType) => z.toJSONSchema(s, { io: 'input', unrepresentable: 'any' }) as Json;

/** Every node of a CRD's schema whose pattern is the duration grammar, by path. */
function patterns(node: unknown, at = '', out: Map<string, string> = new Map()): Map<string, string> {
  if (!node || typeof node !== 'object') return out;
  const o = node as Json;
  if (typeof o.pattern === 'string') out.set(at, o.pattern);
  for (const [k, v] of Object.entries(o)) patterns(v, `${at}.${k}`, out);
  return out;
}

describe('CRDs against the relay config', () => {
  it('take rateLimit and the smarthost fields from the relay schemas', () => {
    expect(jsonOf(rateLimit).properties).toEqual(jsonOf(rateLimitSchema).properties);
    const crd = jsonOf(smarthost).properties as Json;
    const relay = jsonOf(smarthostSchema).properties as Json;
    for (const key of ['name', 'host', 'tls', 'requireTls']) expect(crd[key], key).toEqual(relay[key]);
    // spf is the operator's own (the SPF record it suggests): never rendered into the relay config
    expect(Object.keys(crd).sort()).toEqual(['credentialsSecretRef', 'host', 'name', 'oauth2', 'port', 'requireTls', 'spf', 'tls']);
    // oauth2: the relay's fields, with secret files replaced by one secretRef
    const o = (crd.oauth2 as Json).properties as Json;
    const ro = ((((relay.auth as Json).properties as Json).oauth2 as Json).properties) as Json;
    for (const key of ['userFromSender', 'mechanism']) expect(o[key], key).toEqual(ro[key]);
    const sub = (v: unknown, k: string) => ((v as Json).properties as Json)[k];
    for (const [src, key] of [['microsoft', 'tenantId'], ['microsoft', 'clientId'], ['microsoft', 'scope'], ['google', 'scope'], ['refreshToken', 'clientId'], ['refreshToken', 'scope']] as const) {
      expect(sub(o[src], key), `${src}.${key}`).toEqual(sub(ro[src], key));
    }
    // port is restated as a CEL rule (for a readable message): same default, same range
    expect((crd.port as Json).default).toBe((relay.port as Json).default);
    expect((crd.port as Json)['x-kubernetes-validations']).toEqual([expect.objectContaining({ rule: 'self >= 1 && self <= 65535' })]);
    expect([(relay.port as Json).minimum, (relay.port as Json).maximum]).toEqual([1, 65535]);
  });

  it('use the one duration grammar for every duration field, and the relay reads what the CRD admits', () => {
    const durations = [...patterns(emailRelayCrd()), ...patterns(senderDomainCrd())].filter(([, p]) => p.includes('ms|s'));
    expect(durations.length).toBeGreaterThanOrEqual(7);
    for (const [at, p] of durations) expect(p, at).toBe(DURATION_PATTERN);
    const re = new RegExp(DURATION_PATTERN);
    for (const v of ['0s', '200ms', '90s', '15m', '48h', '7d', '1.5h', ' 5m', '5 m', '5', '5w', '-1s', 's', '']) {
      const relayReads = (() => { try { parseDuration(v); return true; } catch { return false; } })();
      expect(relayReads, JSON.stringify(v)).toBe(re.test(v));
    }
    expect(parseDuration('48h')).toBe(172_800_000);
  });

  it('admit the same domain names as the relay (the CRD restates the rule in RE2)', () => {
    const re = new RegExp(DOMAIN_RE);
    const samples = ['example.com', 'a.b.c.example.org', 'xn--bcher-kva.example', 'mail-1.example.com', 'a1.b2',
      'localhost', '-bad.example', 'bad-.example', 'a..b', 'under_score.example', 'example.com.', '.example.com',
      `${'a'.repeat(63)}.example`, `${'a'.repeat(64)}.example`, 'EXAMPLE.COM'.toLowerCase(), 'exa mple.com'];
    for (const d of samples) expect(re.test(d), d).toBe(domainName.safeParse(d).success);
  });

  it('offer the webhook event types the relay knows', () => {
    const events = (((emailRelayCrd() as any).spec.versions[0].schema.openAPIV3Schema.properties.spec.properties.webhooks.items.properties.events.items.enum) as string[]);
    expect(events).toEqual([...webhookEventTypes]);
  });

  it('render a spec with every field set into a config the relay accepts', () => {
    const relay = relayObject('edge', {
      replicas: 3, hostname: 'mx.example.com',
      listeners: { submission: { port: 1587 }, implicitTls: { enabled: false }, plain: { port: 25 } },
      tls: { secretName: 'edge-cert' },
      trustedNetworks: [{ cidrs: ['10.0.0.0/8', 'fd00::/8'], domains: ['example.com'] }],
      delivery: {
        mode: 'smarthost',
        smarthosts: [{ name: 'ses', host: 'email-smtp.eu-west-1.amazonaws.com', port: 465, tls: 'implicit', credentialsSecretRef: { name: 'provider' }, spf: { include: 'amazonses.com' } }],
        egress: { addresses: ['203.0.113.25', '2001:db8::/64'] },
        destinations: { 'gmail.com': { maxConnections: 4, messagesPerMinute: 600 } },
        dnsServers: ['10.0.0.10', '[fd00::53]:53'],
      },
      queue: { retrySchedule: ['1m', '5m', '1h'], maxLifetime: '3d' },
      drainTimeout: '45s',
      rateLimits: { perDomain: { perHour: 1000, burst: 10 }, perLogin: { perSecond: 5, perDay: 10_000 } },
      redis: { url: 'rediss://redis.mail.svc:6379', passwordSecretRef: { name: 'redis' } },
      webhooks: [{ url: 'https://hooks.example.com/mail', secretRef: { name: 'hook' }, events: ['bounced', 'expired'] }],
    });
    const sd = domainObject('example', {
      domain: 'example.com', relayRef: { name: 'edge' }, allowedSenders: ['noreply', 'billing-*'], fromAlignment: 'strict',
      rateLimit: { perMinute: 60 }, smarthost: { host: 'smtp.example.net', requireTls: true, credentialsSecretRef: { name: 'provider' }, spf: { include: '_spf.example.net' } },
      spf: { all: '-all', include: ['_spf.google.com'] },
    });
    const out = renderRelay({
      relay,
      domains: [{ sd, internal: { dkim: { keys: [{ selector: 's1', algorithm: 'ed25519-sha256', generation: 1, publishedAt: '2025-01-01T00:00:00Z', activeAt: '2025-01-01T00:00:00Z' }] }, pems: { s1: ed25519Pem() }, passwordHash: 'scrypt$16384$8$1$c2FsdA==$aGFzaA==' },
        // the SenderDomain's own Secrets, read in its namespace (never the relay's map)
        secrets: new Map([['provider', { username: 'u', password: 'p' }]]) }],
      userSecrets: new Map<string, Record<string, string>>([['provider', { username: 'u', password: 'p' }], ['redis', { password: 'r' }], ['hook', { secret: 'h' }]]),
      image: 'ghcr.io/mailfleet/mailfleet:0.1.0',
      apis: { serviceMonitor: false, certManager: false },
      now: new Date('2025-03-01T00:00:00Z'),
    });
    expect(out.errors).toEqual([]);
    const cm = out.objects.find((o) => o.kind === 'ConfigMap') as unknown as { data: Record<string, string> };
    const cfg = relayConfigSchema.parse(YAML.parse(cm.data['relay.yaml']!));
    expect(cfg.queue.retrySchedule).toEqual([60_000, 300_000, 3_600_000]);
    expect(cfg.limits.drainTimeout).toBe(45_000);
    expect(cfg.domains[0]!.smarthost).toMatchObject({ host: 'smtp.example.net', auth: { user: 'u' } });
    expect(cfg.redis).toMatchObject({ url: 'rediss://redis.mail.svc:6379', passwordFile: expect.stringMatching(/redis\.password$/) });
    expect(cfg.rateLimits.perLogin).toEqual({ perSecond: 5, perDay: 10_000 });
    expect(cfg.delivery.mx.dnsServers).toEqual(['10.0.0.10', '[fd00::53]:53']);
  });
});
