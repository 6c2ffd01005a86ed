// The pure side of publishing records through external-dns (operator/render/dns-publish.ts):
// which records become DNSEndpoint endpoints and in what form (a long DKIM key as one target
// of ≤255-byte quoted strings), and when a SenderDomain gets nothing published.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dnsEndpointName, dnsEndpoints, publishPlan, txtTarget } from '../../operator/render/dns-publish.ts';
import { dnsRecords } from '../../operator/render/dns-records.ts';
import { renderSenderDomain } from '../../operator/render/sender-domain.ts';
import { generateDkimKey } from '../../operator/controllers/domain-secrets.ts';
import type { DomainInternal } from '../../operator/render/domain-internal.ts';
import type { DomainInput } from '../../operator/render/sender-domain-status.ts';
import { DomainVerifier, challengeRecord, verificationRequired, type Verification } from '../../operator/tenancy/verification.ts';
import { startDnsServer, type TestDnsServer } from '../support/dns-server.ts';
import { domainObject, relayObject } from './fixtures.ts';

const t0 = '2026-01-01T00:00:00Z';

async function internalWith(selectors: string[]): Promise<DomainInternal> {
  const internal: DomainInternal = { dkim: { keys: [] }, pems: {} };
  for (const [i, s] of selectors.entries()) {
    internal.dkim.keys.push({ selector: s, algorithm: 'rsa-sha256', generation: i + 1, publishedAt: t0, ...(i === 0 ? { activeAt: t0 } : {}) });
    internal.pems[s] = await generateDkimKey('rsa-sha256');
  }
  return internal;
}

/** Reads a target back the way a DNS server parses the master-file form: the quoted strings, joined. */
function unquote(target: string): string[] {
  return [...target.matchAll(/"((?:[^"\\]|\\.)*)"/g)].map((m) => m[1]!.replace(/\\(.)/g, '$1'));
}

describe('DNSEndpoint endpoints from status.dnsRecords', () => {
  it('a 2048-bit DKIM key is one target made of ≤255-byte strings that join back to the value; SPF when complete; DMARC', async () => {
    const internal = await internalWith(['mailfleet', 'mailfleet-2']);
    const spf = { value: 'v=spf1 ip4:192.0.2.1 ~all', lookups: 0 };
    const records = dnsRecords('example.com', internal.dkim, internal.pems, spf);
    const eps = dnsEndpoints(records, 600);
    expect(eps.map((e) => e.dnsName)).toEqual(['mailfleet._domainkey.example.com', 'mailfleet-2._domainkey.example.com', 'example.com', '_dmarc.example.com']);
    for (const e of eps) {
      expect(e).toMatchObject({ recordType: 'TXT', recordTTL: 600 });
      expect(e.targets).toHaveLength(1);
    }
    const dkim = records.find((r) => r.selector === 'mailfleet')!;
    expect(dkim.value.length).toBeGreaterThan(255);
    const strings = unquote(eps[0]!.targets[0]!);
    expect(strings.length).toBeGreaterThan(1);
    for (const s of strings) expect(Buffer.byteLength(s)).toBeLessThanOrEqual(255);
    expect(strings.join('')).toBe(dkim.value);
    expect(eps[2]!.targets).toEqual(['"v=spf1 ip4:192.0.2.1 ~all"']);
  });

  it('an incomplete SPF record is not published', async () => {
    const internal = await internalWith(['mailfleet']);
    const records = dnsRecords('example.com', internal.dkim, internal.pems, { incomplete: 'the relay has no egress addresses', reason: 'EgressUnknown' } as never);
    expect(dnsEndpoints(records, 3600).map((e) => e.dnsName)).toEqual(['mailfleet._domainkey.example.com', '_dmarc.example.com']);
  });

  it('quotes and backslashes inside a string are escaped, so the value cannot break out of its string', () => {
    expect(txtTarget(['a"b\\c', 'd'])).toBe('"a\\"b\\\\c" "d"');
    expect(unquote(txtTarget(['a"b\\c', 'd']))).toEqual(['a"b\\c', 'd']);
  });

  it('names stay within 253 characters and distinct', () => {
    expect(dnsEndpointName('example-com')).toBe('example-com-mailfleet');
    const long = 'a'.repeat(250);
    const other = `${'a'.repeat(249)}b`;
    expect(dnsEndpointName(long).length).toBeLessThanOrEqual(253);
    expect(dnsEndpointName(long)).not.toBe(dnsEndpointName(other));
  });
});

describe('what a SenderDomain gets published', () => {
  const gate = { allowed: true, installed: true };
  const sd = (publish: 'none' | 'externalDNS', ns = 'mail') => domainObject('example-com', { domain: 'example.com', relayRef: { name: 'edge', namespace: 'mail' }, dns: { publish } }, ns);

  it('none: nothing, and no condition', () => {
    expect(publishPlan(sd('none'), gate, [], undefined)).toEqual({});
  });

  it('the platform has not allowed it, or the CRD is missing: DNSPublished=False, no object', () => {
    expect(publishPlan(sd('externalDNS'), { allowed: false, installed: true }, [], undefined))
      .toEqual({ condition: expect.objectContaining({ type: 'DNSPublished', status: 'False', reason: 'PublishingNotAllowed' }) });
    expect(publishPlan(sd('externalDNS'), { allowed: true, installed: false }, [], undefined))
      .toEqual({ condition: expect.objectContaining({ type: 'DNSPublished', status: 'False', reason: 'ExternalDNSNotInstalled' }) });
  });

  it('a relay that forbids it: DNSPublished=False RelayForbidsPublishing, no object', async () => {
    const internal = await internalWith(['mailfleet']);
    const verification: Verification = { state: 'Verified', serving: true, message: 'm', nextAt: 0, method: 'challenge', challengeOnly: true };
    const relay = relayObject('edge', { senderDomains: { namespaces: { from: 'All' }, dnsPublish: 'Forbidden' } });
    const out = renderSenderDomain({ sd: sd('externalDNS'), relay, internal, host: 'h', port: 587, now: new Date(t0), password: 'p', verification, publish: gate });
    expect(out.objects.filter((o) => o.kind === 'DNSEndpoint')).toEqual([]);
    expect(out.absent.map((a) => a.kind)).toEqual(['DNSEndpoint']);
    expect(out.status.conditions?.find((c) => c.type === 'DNSPublished')).toMatchObject({ status: 'False', reason: 'RelayForbidsPublishing' });
    const allowed = renderSenderDomain({ sd: sd('externalDNS'), relay: relayObject('edge', { senderDomains: { namespaces: { from: 'All' } } }), internal, host: 'h', port: 587, now: new Date(t0), password: 'p', verification, publish: gate });
    expect(allowed.objects.map((o) => o.kind)).toContain('DNSEndpoint');
  });

  it('a served domain: the DNSEndpoint, labelled and controlled by the SenderDomain, never the _mailfleet challenge', async () => {
    const internal = await internalWith(['mailfleet']);
    const out = renderSenderDomain({ sd: sd('externalDNS'), relay: relayObject('edge'), internal, host: 'h', port: 587, now: new Date(t0), password: 'p', publish: gate });
    const ep = out.objects.find((o) => o.kind === 'DNSEndpoint')!;
    expect(ep.metadata).toMatchObject({
      name: 'example-com-mailfleet', namespace: 'mail',
      labels: { 'app.kubernetes.io/managed-by': 'mailfleet-operator' },
      ownerReferences: [expect.objectContaining({ kind: 'SenderDomain', controller: true })],
    });
    const names = (ep.spec as { endpoints: { dnsName: string }[] }).endpoints.map((e) => e.dnsName);
    expect(names).toContain('mailfleet._domainkey.example.com');
    expect(names.some((n) => n.startsWith('_mailfleet.'))).toBe(false);
    expect(out.absent).toEqual([]);
    expect(out.status.conditions?.find((c) => c.type === 'DNSPublished')).toMatchObject({ status: 'True', reason: 'EndpointWritten' });
  });

  it('a domain that is not served gets nothing: unverified, refused, not attached, its spec refused', async () => {
    const internal = await internalWith(['mailfleet']);
    const pending: Verification = { state: 'Pending', serving: false, message: 'm', nextAt: 0, challengeOnly: true };
    const base = { sd: sd('externalDNS', 'tenant'), relay: relayObject('edge'), internal, host: 'h', port: 587, now: new Date(t0), publish: gate };
    const cases: DomainInput[] = [
      { ...base, verification: pending },
      { ...base, refused: { reason: 'DomainConflict' as const, message: 'taken' } },
      { ...base, relay: undefined },
      { ...base, specRefused: { reason: 'SecretNotAllowed', message: 'no' } },
    ];
    for (const input of cases) {
      const out = renderSenderDomain(input);
      expect(out.objects.filter((o) => o.kind === 'DNSEndpoint')).toEqual([]);
      expect(out.absent).toEqual([{ apiVersion: 'externaldns.k8s.io/v1alpha1', kind: 'DNSEndpoint', name: 'example-com-mailfleet' }]);
    }
    const unverified = renderSenderDomain(cases[0]!);
    expect(unverified.status.conditions?.find((c) => c.type === 'DNSPublished')).toMatchObject({ status: 'False', reason: 'DomainNotServed' });
    // with the operator publishing, the way to prove control is the challenge alone
    expect(unverified.status.conditions?.find((c) => c.type === 'DomainVerified')?.message).not.toContain('DKIM');
    // verified (or in its grace period): published
    const verified = renderSenderDomain({ ...base, verification: { ...pending, state: 'Verified', serving: true, method: 'challenge' } });
    expect(verified.objects.map((o) => o.kind)).toContain('DNSEndpoint');
    // still served on a DKIM proof made before publishing was asked for (its grace period): not published
    const byDkim = renderSenderDomain({ ...base, verification: { ...pending, state: 'GracePeriod', serving: true, method: 'dkim', graceEndsAt: 1 } });
    expect(byDkim.objects.filter((o) => o.kind === 'DNSEndpoint')).toEqual([]);
    expect(byDkim.status.conditions?.find((c) => c.type === 'DNSPublished')).toMatchObject({ status: 'False', reason: 'DomainNotServed' });
  });

  it('without the DNSEndpoint kind nothing is to be deleted either', async () => {
    const internal = await internalWith(['mailfleet']);
    const out = renderSenderDomain({ sd: sd('none'), relay: relayObject('edge'), internal, host: 'h', port: 587, now: new Date(t0), publish: { allowed: true, installed: false } });
    expect(out.absent).toEqual([]);
  });
});

describe('proof of control while the operator publishes (DNS server on loopback)', () => {
  let dns: TestDnsServer;
  beforeAll(async () => { dns = await startDnsServer(); });
  afterAll(async () => { await dns?.close(); });

  it('asking for publishing makes proof required, even on a relay that waives it for its own namespace', () => {
    const relay = relayObject('edge', { senderDomains: { requireVerification: false } });
    const own = domainObject('d', { domain: 'own.test', relayRef: { name: 'edge' } });
    expect(verificationRequired(relay, own)).toBe(false);
    expect(verificationRequired(relay, domainObject('d', { domain: 'own.test', relayRef: { name: 'edge' }, dns: { publish: 'externalDNS' } }))).toBe(true);
  });

  it('publishing on: a published DKIM record (as the operator would write it) proves nothing, the challenge does; switching it on re-checks a DKIM proof', async () => {
    const v = new DomainVerifier({ dnsServers: [dns.address], intervalMs: 1_000, graceMs: 10_000 });
    const plain = domainObject('d', { domain: 'proof.test', relayRef: { name: 'edge', namespace: 'mail' } }, 'tenant-b');
    const sd = { ...plain, spec: { ...plain.spec, dns: { publish: 'externalDNS' as const, ttl: 3600 } } };
    const internal = await internalWith(['mailfleet']);
    const dkim = dnsRecords('proof.test', internal.dkim, internal.pems).find((r) => r.purpose === 'dkim')!;
    dns.setZone({ [dkim.name]: { TXT: [dkim.value] } });
    const t = Date.parse(t0);
    // without publishing, the record proves control
    expect(await v.verify(plain, internal, t)).toMatchObject({ state: 'Verified', method: 'dkim' });
    // asking for publishing is checked again at once, with the challenge alone: the earlier proof only runs its grace period
    const switched = await v.verify(sd, internal, t + 1);
    expect(switched).toMatchObject({ state: 'GracePeriod', serving: true, method: 'dkim', challengeOnly: true });
    expect(switched.message).not.toContain('DKIM');
    const fresh = new DomainVerifier({ dnsServers: [dns.address], intervalMs: 1_000, graceMs: 10_000 });
    expect(await fresh.verify(sd, internal, t)).toMatchObject({ state: 'Pending', serving: false, challengeOnly: true });
    const ch = challengeRecord(sd);
    dns.setZone({ [dkim.name]: { TXT: [dkim.value] }, [ch.name]: { TXT: [ch.value] } });
    expect(await fresh.verify(sd, internal, t + 70_000)).toMatchObject({ state: 'Verified', serving: true, method: 'challenge' });
    expect(await v.verify(sd, internal, t + 70_000)).toMatchObject({ state: 'Verified', serving: true, method: 'challenge' });
  });
});
