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
    await eventually('EmailRelay created', async () => { await c.kubectl(['apply', '-f', '-'], { input: er('r1', {}) }); return true; }, 30_000);
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
