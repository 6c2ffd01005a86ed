// The API server itself refuses bad EmailRelays and SenderDomains, with readable messages,
// and applies defaults: the CRDs' schemas and CEL rules at work.
import { describe, expect, it } from 'vitest';
import { eventually, getJson, useOperatorCluster } from './support.ts';

const cluster = useOperatorCluster();
const NS = 'crdtest';

const sd = (name: string, spec: Record<string, unknown>) => JSON.stringify({ apiVersion: 'mailfleet.io/v1alpha1', kind: 'SenderDomain', metadata: { name, namespace: NS }, spec });
const er = (name: string, spec: Record<string, unknown>) => JSON.stringify({ apiVersion: 'mailfleet.io/v1alpha1', kind: 'EmailRelay', metadata: { name, namespace: NS }, spec });

describe.skipIf(!cluster.available)('CRD validation (real API server)', () => {
  it('applies defaults', async () => {
    const c = cluster.get();
    await c.kubectl(['create', 'namespace', NS]);
    await eventually('EmailRelay created', async () => { await c.kubectl(['apply', '-f', '-'], { input: er('r1', { hostname: 'mail.example.net' }) }); return true; }, 30_000);
    const r = await getJson(c, ['get', 'emailrelay', 'r1', '-n', NS]);
    expect(r.spec.replicas).toBe(2);
    expect(r.spec.listeners).toEqual({ submission: { enabled: true, port: 587 }, implicitTls: { enabled: true, port: 465 } });
    expect(r.spec.queue).toMatchObject({ maxLifetime: '5d', persistence: { enabled: true, size: '1Gi' } });
    await c.kubectl(['apply', '-f', '-'], { input: sd('d1', { domain: 'example.com', relayRef: { name: 'r1' } }) });
    const d = await getJson(c, ['get', 'senderdomain', 'd1', '-n', NS]);
    expect(d.spec.dkim).toMatchObject({ selector: 'mailfleet', algorithm: 'rsa-2048', rotationDelay: '48h' });
    expect(d.spec.allowedSenders).toEqual(['*']);
  });

  it.each([
    ['a bad domain', sd('bad1', { domain: 'not_a_domain', relayRef: { name: 'r1' } }), /spec.domain: Invalid value.*must be a lower-case domain name/],
    ['a single-label domain', sd('bad2', { domain: 'localhost', relayRef: { name: 'r1' } }), /must be a lower-case domain name/],
    ['a bad DKIM selector', sd('bad3', { domain: 'example.org', relayRef: { name: 'r1' }, dkim: { selector: 'bad_selector!' } }), /spec.dkim.selector.*must be a DKIM selector/],
    ['a smarthost port out of range', er('bad4', { delivery: { mode: 'smarthost', smarthosts: [{ host: 'smtp.example.net', port: 70000 }] } }), /must be a TCP port between 1 and 65535/],
    ['smarthost mode without smarthosts', er('bad5', { delivery: { mode: 'smarthost' } }), /at least one smarthost/],
    ['oauth2 with two token sources', er('bad-oauth1', { delivery: { mode: 'smarthost', smarthosts: [{ host: 'smtp.office365.com', oauth2: { user: 'a@example.com', secretRef: { name: 's' }, microsoft: { tenantId: 't', clientId: 'c' }, google: {} } }] } }), /set exactly one token source/],
    ['oauth2 beside credentialsSecretRef', er('bad-oauth2', { delivery: { mode: 'smarthost', smarthosts: [{ host: 'smtp.office365.com', credentialsSecretRef: { name: 'p' }, oauth2: { user: 'a@example.com', secretRef: { name: 's' }, google: {} } }] } }), /credentialsSecretRef \(password\) or oauth2, not both/],
    ['oauth2 in plaintext', sd('bad-oauth3', { domain: 'example.net', relayRef: { name: 'r1' }, smarthost: { host: 'smtp.gmail.com', tls: 'none', requireTls: false, oauth2: { user: 'a@example.net', secretRef: { name: 's' }, google: {} } } }), /oauth2 needs TLS/],
    ['autoscaling with an emptyDir queue', er('bad7', { autoscaling: { maxReplicas: 5 }, queue: { persistence: { enabled: false } } }), /autoscaling needs queue.persistence.enabled/],
    ['an unknown algorithm', sd('bad6', { domain: 'example.org', relayRef: { name: 'r1' }, dkim: { algorithm: 'dsa' } }), /spec.dkim.algorithm: Unsupported value: "dsa"/],
  ])('refuses %s', async (_what, manifest, message) => {
    const r = await cluster.get().kubectl(['apply', '-f', '-'], { input: manifest, check: false });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(message);
  });

  // The exact texts people get from kubectl for MX identity and SPF inputs.
  it.each([
    ['MX mode (the default) without a hostname', er('host1', {}),
      `spec.hostname: Required value: hostname is required when delivery.mode is mx (the default): set the public FQDN of the relay's egress address (its PTR name), e.g. mail.example.com; receiving MX hosts see it in EHLO and Received`],
    ['a cluster-internal hostname in MX mode', er('host2', { hostname: 'edge.crdtest.svc.cluster.local', delivery: { mode: 'mx' } }),
      'spec.hostname: Invalid value: hostname must be a public FQDN in MX mode: a cluster-internal or single-label name (.svc, .cluster.local, .local, .internal) cannot be resolved by receiving MX hosts'],
    ['a single-label hostname in MX mode', er('host3', { hostname: 'mailhost' }),
      'spec.hostname: Invalid value: hostname must be a public FQDN in MX mode'],
    ['an IP address as hostname in MX mode', er('host4', { hostname: '203.0.113.25' }),
      'spec.hostname: Invalid value: hostname must be a name, not an IP address: receivers distrust an EHLO without a name'],
    ['a hostname that is no DNS name', er('host5', { hostname: 'mail.example.com.' }),
      'spec.hostname: Invalid value: "mail.example.com.": must be a DNS name such as mail.example.com (letters, digits, hyphens and dots; no trailing dot)'],
    ['an egress address that is no address', er('egress1', { hostname: 'mail.example.net', delivery: { egress: { addresses: ['203.0.113.256'] } } }),
      'spec.delivery.egress.addresses[0]: Invalid value: "203.0.113.256": must be an IPv4 or IPv6 address or CIDR, such as 203.0.113.25, 203.0.113.0/28 or 2001:db8::25'],
    ['an egress CIDR with a bad prefix', er('egress2', { hostname: 'mail.example.net', delivery: { egress: { addresses: ['2001:db8::/129'] } } }),
      'spec.delivery.egress.addresses[0]: Invalid value: "2001:db8::/129": must be an IPv4 or IPv6 address or CIDR'],
    ['an SPF include written as a mechanism', er('spf1', { delivery: { mode: 'smarthost', smarthosts: [{ host: 'email-smtp.eu-west-1.amazonaws.com', spf: { include: 'include:amazonses.com' } }] } }),
      'spec.delivery.smarthosts[0].spf.include: Invalid value: "include:amazonses.com": must be the domain an SPF include names, such as amazonses.com or _spf.google.com (lower case, no include: prefix, no macros)'],
    ['an SPF ending that is neither ~all nor -all', sd('spf2', { domain: 'example.org', relayRef: { name: 'r1' }, spf: { all: '?all' } }),
      'spec.spf.all: Unsupported value: "?all": supported values: "~all", "-all"'],
  ])('refuses %s, saying so', async (_what, manifest, message) => {
    const r = await cluster.get().kubectl(['apply', '-f', '-'], { input: manifest, check: false });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(message);
  });

  it('admits a public hostname with egress addresses and SPF fields, and a smarthost relay without a hostname', async () => {
    const c = cluster.get();
    await c.kubectl(['apply', '-f', '-'], { input: er('mx-ok', { hostname: 'Mail.Example.net', delivery: { egress: { addresses: ['203.0.113.25', '198.51.100.0/28', '2001:db8::25', '2001:db8::/48'] } } }) });
    await c.kubectl(['apply', '-f', '-'], { input: er('sh-ok', { delivery: { mode: 'smarthost', smarthosts: [{ host: 'smtp-relay.gmail.com', spf: { include: '_spf.google.com' } }] } }) });
    await c.kubectl(['apply', '-f', '-'], { input: er('sh-svc', { hostname: 'sh-svc.crdtest.svc.cluster.local', delivery: { mode: 'smarthost', smarthosts: [{ host: 'smtp.sendgrid.net' }] } }) });
    await c.kubectl(['apply', '-f', '-'], { input: sd('spf-ok', { domain: 'example.net', relayRef: { name: 'mx-ok' }, spf: { all: '-all', include: ['_spf.google.com'] } }) });
    const d = await getJson(c, ['get', 'senderdomain', 'spf-ok', '-n', NS]);
    expect(d.spec.spf).toEqual({ all: '-all', include: ['_spf.google.com'] });
    expect((await getJson(c, ['get', 'senderdomain', 'd1', '-n', NS])).spec.spf).toEqual({ all: '~all' });
  });

  it('refuses changing SenderDomain.spec.domain', async () => {
    const c = cluster.get();
    const r = await c.kubectl(['patch', 'senderdomain', 'd1', '-n', NS, '--type=merge', '-p', '{"spec":{"domain":"other.example"}}'], { check: false });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/domain is immutable/);
  });

  it('shows printer columns', async () => {
    const out = (await cluster.get().kubectl(['get', 'emailrelays', '-n', NS])).stdout;
    expect(out.split('\n')[0]).toMatch(/NAME\s+READY\s+REPLICAS\s+DOMAINS\s+AGE/);
    const explain = (await cluster.get().kubectl(['explain', 'senderdomain.spec.dkim.rotationDelay'])).stdout;
    expect(explain).toMatch(/exact\s+record\s+in\s+DNS/);
  });
});
