// The SPF record a SenderDomain suggests follows the route its mail takes, and is never
// printed wrongly: when the route does not say who sends, the entry says what is missing.
// Also the operator's own schema for what SPF and MX identity need (hostname, egress).
import { describe, expect, it } from 'vitest';
import { emailRelaySpec, type EmailRelaySpecInput } from '../../operator/api/emailrelay.ts';
import { senderDomainSpec, type SenderDomainSpecInput } from '../../operator/api/senderdomain.ts';
import { zoneSnippet } from '../../operator/render/dns-records.ts';
import { renderSenderDomain } from '../../operator/render/sender-domain.ts';
import { spfRecord } from '../../operator/render/spf.ts';
import { formatIssues } from '../../relay/util/zod-issues.ts';
import { domainObject, ed25519Pem, relayObject } from './fixtures.ts';

const now = new Date('2025-03-01T12:00:00Z');

function status(relay: EmailRelaySpecInput | undefined, domain: Partial<SenderDomainSpecInput> = {}) {
  const sd = domainObject('d', { domain: 'example.com', relayRef: { name: 'r' }, ...domain });
  const out = renderSenderDomain({
    sd, relay: relay ? relayObject('r', relay) : undefined, password: 'pw', host: 'r.mail.svc.cluster.local', port: 587, now,
    internal: { dkim: { keys: [{ selector: 's1', algorithm: 'ed25519-sha256', generation: 1, publishedAt: now.toISOString(), activeAt: now.toISOString() }] }, pems: { s1: ed25519Pem() } },
  });
  const spf = out.status.dnsRecords!.filter((r) => r.purpose === 'spf');
  expect(spf).toHaveLength(1);
  const cond = out.status.conditions!.find((c) => c.type === 'SPFRecordComplete')!;
  return { spf: spf[0]!, cond, ready: out.ready, records: out.status.dnsRecords! };
}

const smarthost = (name: string, include?: string) => ({ name, host: `smtp.${name}.example`, ...(include ? { spf: { include } } : {}) });

describe('SPF record of the route', () => {
  it('MX delivery lists the declared egress addresses as ip4:/ip6: (addresses and CIDRs), ending as configured', () => {
    const relay = { delivery: { mode: 'mx' as const, egress: { addresses: ['203.0.113.25', '198.51.100.0/28', '2001:db8::25', '2001:db8:1::/48'] } } };
    const { spf, cond } = status(relay);
    expect(spf).toMatchObject({
      name: 'example.com.', type: 'TXT', ttl: 3600, required: false,
      value: 'v=spf1 ip4:203.0.113.25 ip4:198.51.100.0/28 ip6:2001:db8::25 ip6:2001:db8:1::/48 ~all',
      zone: 'example.com. 3600 IN TXT "v=spf1 ip4:203.0.113.25 ip4:198.51.100.0/28 ip6:2001:db8::25 ip6:2001:db8:1::/48 ~all"',
    });
    expect(spf.incomplete).toBeUndefined();
    expect(cond).toMatchObject({ status: 'True', reason: 'RouteKnown', message: expect.stringMatching(/^0 of 10 DNS lookups/) });
    expect(status(relay, { spf: { all: '-all' } }).spf.value).toBe('v=spf1 ip4:203.0.113.25 ip4:198.51.100.0/28 ip6:2001:db8::25 ip6:2001:db8:1::/48 -all');
  });

  it('MX delivery without egress addresses: no record, the entry and a condition say what is missing, Ready is untouched', () => {
    const { spf, cond, ready, records } = status({});
    expect(spf).toMatchObject({
      name: 'example.com.', value: '', values: [], required: false,
      incomplete: 'EmailRelay r delivers to MX hosts but lists no spec.delivery.egress.addresses: the addresses its mail leaves from are unknown',
      zone: '; example.com. TXT (SPF) not known yet: EmailRelay r delivers to MX hosts but lists no spec.delivery.egress.addresses: the addresses its mail leaves from are unknown',
    });
    expect(cond).toMatchObject({ status: 'False', reason: 'EgressAddressesMissing', message: spf.incomplete });
    expect(ready).toBe(true);
    const snippet = zoneSnippet('example.com', records);
    expect(snippet).toContain('; spf (incomplete)\n; example.com. TXT (SPF) not known yet: EmailRelay r delivers');
    // nothing in the snippet is an SPF record a zone would load
    expect(snippet).not.toMatch(/^[^;].*v=spf1/m);
  });

  it('smarthost relays include every provider of the failover list, once each; one without an include makes the record incomplete', () => {
    const both = status({ delivery: { mode: 'smarthost', smarthosts: [smarthost('ses', 'amazonses.com'), smarthost('sg', 'sendgrid.net'), smarthost('ses2', 'amazonses.com')] } });
    expect(both.spf.value).toBe('v=spf1 include:amazonses.com include:sendgrid.net ~all');
    expect(both.cond.message).toMatch(/^2 of 10 DNS lookups/);
    const missing = status({ delivery: { mode: 'smarthost', smarthosts: [smarthost('ses', 'amazonses.com'), smarthost('backup')] } });
    expect(missing.spf).toMatchObject({ value: '', incomplete: "EmailRelay r: smarthost backup has no spf.include (the provider's SPF domain, e.g. amazonses.com)" });
    expect(missing.cond).toMatchObject({ status: 'False', reason: 'SmarthostIncludeMissing' });
  });

  it("a SenderDomain's own smarthost is its route, whatever the relay does", () => {
    const mxRelay = { delivery: { egress: { addresses: ['203.0.113.25'] } } };
    expect(status(mxRelay, { smarthost: smarthost('pm', 'spf.mtasv.net') }).spf.value).toBe('v=spf1 include:spf.mtasv.net ~all');
    expect(status(mxRelay, { smarthost: smarthost('pm') }).spf.incomplete).toBe("this SenderDomain's smarthost pm has no spf.include (the provider's SPF domain, e.g. amazonses.com)");
  });

  it("keeps the domain's other senders (spf.include) and refuses more than 10 DNS lookups", () => {
    const relay = { delivery: { mode: 'smarthost' as const, smarthosts: [smarthost('ses', 'amazonses.com')] } };
    expect(status(relay, { spf: { include: ['_spf.google.com', 'amazonses.com'] } }).spf.value).toBe('v=spf1 include:amazonses.com include:_spf.google.com ~all');
    const many = status(relay, { spf: { include: ['a1.example', 'a2.example', 'a3.example', 'a4.example', 'a5.example', 'a6.example', 'a7.example', 'a8.example'] } });
    expect(many.spf.value).toBe(`v=spf1 include:amazonses.com ${[1, 2, 3, 4, 5, 6, 7, 8].map((i) => `include:a${i}.example`).join(' ')} ~all`);
    const hosts = Array.from({ length: 4 }, (_, i) => smarthost(`p${i}`, `p${i}.example`));
    const over = status({ delivery: { mode: 'smarthost', smarthosts: hosts } }, { spf: { include: ['a1.example', 'a2.example', 'a3.example', 'a4.example', 'a5.example', 'a6.example', 'a7.example'] } });
    expect(over.spf.value).toBe('');
    expect(over.cond).toMatchObject({ status: 'False', reason: 'TooManyDNSLookups', message: "11 includes exceed SPF's limit of 10 DNS lookups (RFC 7208 §4.6.4): receivers would answer permerror" });
  });

  it('without the relay, or with a relay whose spec does not parse, the route is unknown', () => {
    expect(status(undefined).cond).toMatchObject({ status: 'False', reason: 'RelayNotFound', message: 'EmailRelay r not found: the route its mail takes is unknown' });
    const policy = senderDomainSpec.parse({ domain: 'example.com', relayRef: { name: 'r' } }).spf;
    expect(spfRecord({ relayName: 'r', relay: 'invalid', own: undefined, policy })).toMatchObject({ reason: 'RelayInvalid' });
  });

  it('splits a long record into ≤255-byte strings that join back to the value', () => {
    const addresses = Array.from({ length: 32 }, (_, i) => `2001:db8:${(i + 1).toString(16)}::/48`);
    const { spf } = status({ delivery: { egress: { addresses } } });
    expect(spf.value.length).toBeGreaterThan(255 * 2);
    expect(spf.values.every((v) => Buffer.byteLength(v) <= 255)).toBe(true);
    expect(spf.values.join('')).toBe(spf.value);
    expect(spf.zone).toBe(`example.com. 3600 IN TXT ${spf.values.map((v) => `"${v}"`).join(' ')}`);
  });
});

const relayIssues = (spec: unknown) => {
  const r = emailRelaySpec.safeParse(spec);
  return r.success ? [] : formatIssues(r.error);
};

describe("the operator's schema for MX identity and SPF inputs", () => {
  const required = "hostname is required when delivery.mode is mx (the default): set the public FQDN of the relay's egress address (its PTR name), e.g. mail.example.com; receiving MX hosts see it in EHLO and Received";
  const internal = 'hostname must be a public FQDN in MX mode: a cluster-internal or single-label name (.svc, .cluster.local, .local, .internal) cannot be resolved by receiving MX hosts';

  it('requires a public hostname in MX mode, and only there', () => {
    expect(relayIssues({})).toEqual([`hostname: ${required}`]);
    expect(relayIssues({ delivery: { mode: 'mx' } })).toEqual([`hostname: ${required}`]);
    for (const h of ['edge.mail.svc.cluster.local', 'edge.mail.svc', 'relay.local', 'mail.corp.internal', 'EDGE.MAIL.SVC.CLUSTER.LOCAL', 'mailhost']) {
      expect(relayIssues({ hostname: h }), h).toEqual([`hostname: ${internal}`]);
    }
    expect(relayIssues({ hostname: '203.0.113.25' })).toEqual(['hostname: hostname must be a name, not an IP address: receivers distrust an EHLO without a name']);
    expect(relayIssues({ hostname: 'mail.example.com.' })).toEqual(['hostname: must be a DNS name such as mail.example.com (letters, digits, hyphens and dots; no trailing dot)']);
    expect(relayIssues({ hostname: 'mail.example.com' })).toEqual([]);
    // a smarthost relay may keep the in-cluster name (its serving certificate is for in-cluster clients)
    const viaProvider = { mode: 'smarthost', smarthosts: [{ host: 'smtp.example.net' }] };
    expect(relayIssues({ delivery: viaProvider })).toEqual([]);
    expect(relayIssues({ hostname: 'edge.mail.svc.cluster.local', delivery: viaProvider })).toEqual([]);
  });

  it('takes IPv4, IPv6 and CIDR egress addresses and refuses anything else', () => {
    const ok = { hostname: 'mail.example.com', delivery: { egress: { addresses: ['203.0.113.25', '203.0.113.0/28', '2001:db8::25', '2001:db8::/32'] } } };
    expect(relayIssues(ok)).toEqual([]);
    for (const bad of ['203.0.113.256', 'mail.example.com', '203.0.113.0/33', '2001:db8::/129', '10.0.0.0/8/8', '10.0.0.0/', '10.0.0.0/ 8', 'ip4:203.0.113.25']) {
      expect(relayIssues({ hostname: 'mail.example.com', delivery: { egress: { addresses: [bad] } } }), bad)
        .toEqual(['delivery.egress.addresses.0: must be an IPv4 or IPv6 address or CIDR, such as 203.0.113.25, 203.0.113.0/28 or 2001:db8::25']);
    }
    expect(relayIssues({ hostname: 'mail.example.com', delivery: { egress: { addresses: [] } } })).toHaveLength(1);
  });

  it('takes SPF include domains without prefixes or macros', () => {
    const sd = (include: string) => senderDomainSpec.safeParse({ domain: 'example.com', relayRef: { name: 'r' }, spf: { include: [include] } }).success;
    expect(['amazonses.com', '_spf.google.com', 'spf.mtasv.net'].map(sd)).toEqual([true, true, true]);
    expect(['include:amazonses.com', '%{i}._spf.example.com', 'Amazonses.com', 'amazonses', 'amazonses.com.'].map(sd)).toEqual([false, false, false, false, false]);
    expect(senderDomainSpec.safeParse({ domain: 'example.com', relayRef: { name: 'r' }, spf: { all: '?all' } }).success).toBe(false);
  });
});
