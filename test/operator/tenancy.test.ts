// The operator's tenancy rules as pure functions: which namespaces a relay admits, who owns
// a domain across the cluster (and what a refused tenant is told), trusted networks cut to
// the served domains, Secrets of a SenderDomain from another namespace read from that
// namespace, and the status of a domain waiting for its proof of control. The same rules on
// the real control plane, as an attack: test/operator/tenancy-attack.test.ts.
import { generateKeyPairSync } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { emailRelaySpec } from '../../operator/api/emailrelay.ts';
import { resolveClaims } from '../../operator/render/claims.ts';
import type { DomainInternal } from '../../operator/render/domain-internal.ts';
import { renderRelay, type RelayInput } from '../../operator/render/relay.ts';
import { renderSenderDomain } from '../../operator/render/sender-domain.ts';
import { admits, selectorCondition, selectorMatches } from '../../operator/tenancy/admission.ts';
import { DomainVerifier, challengeRecord, verificationRequired } from '../../operator/tenancy/verification.ts';
import { dnsRecords } from '../../operator/render/dns-records.ts';
import { startDnsServer, type TestDnsServer } from '../support/dns-server.ts';
import { domainObject, relayObject, domainInternal, RENDER_NOW } from './fixtures.ts';

const now = RENDER_NOW;

const internalFor = domainInternal;

function input(over: Partial<RelayInput> = {}): RelayInput {
  return {
    relay: relayObject('edge', { tls: { secretName: 'edge-cert' } }),
    domains: [], userSecrets: new Map(), image: 'img', apis: { serviceMonitor: false, certManager: false }, now, ...over,
  };
}

describe('which namespaces a relay admits', () => {
  const labels = (m: Record<string, Record<string, string>>) => (ns: string) => m[ns];
  it('Same (the default) admits only its own namespace; All admits any', () => {
    const same = relayObject('edge');
    expect(same.spec.senderDomains.namespaces.from).toBe('Same');
    expect(admits(same, 'mail', labels({}))).toEqual({ allowed: true });
    const refused = admits(same, 'tenant-b', labels({}));
    expect(refused.allowed).toBe(false);
    expect(!refused.allowed && refused.message).toMatch(/EmailRelay mail\/edge admits SenderDomains only from its own namespace .* admit namespace tenant-b/);
    expect(admits(relayObject('edge', { senderDomains: { namespaces: { from: 'All' } } }), 'tenant-b', labels({}))).toEqual({ allowed: true });
  });

  it('Selector follows the Namespace labels, and says so when it cannot read them', () => {
    const relay = relayObject('edge', { senderDomains: { namespaces: { from: 'Selector', selector: { matchLabels: { 'mailfleet.io/tenant': 'yes' } } } } });
    expect(admits(relay, 'tenant-a', labels({ 'tenant-a': { 'mailfleet.io/tenant': 'yes' } }))).toEqual({ allowed: true });
    expect(admits(relay, 'tenant-b', labels({ 'tenant-b': { 'mailfleet.io/tenant': 'no' } })).allowed).toBe(false);
    expect(admits(relay, 'unknown', labels({})).allowed).toBe(false);
    const blind = admits(relay, 'tenant-a', () => 'unreadable');
    expect(!blind.allowed && blind.message).toMatch(/cannot read Namespace labels \(namespace-scoped install\).*from: All or Same/);
    // the platform sees it on its relay too
    expect(selectorCondition(relay, false)).toMatchObject({ type: 'NamespaceSelectorUsable', status: 'False', reason: 'NamespacesUnreadable' });
    expect(selectorCondition(relay, true)).toMatchObject({ status: 'True' });
    expect(selectorCondition(relayObject('edge'), false)).toBeUndefined();
    // and its own namespace still attaches
    expect(admits(relay, 'mail', () => 'unreadable')).toEqual({ allowed: true });
  });

  it('matches label selectors as Kubernetes does', () => {
    const l = { team: 'pay', tier: 'prod' };
    expect(selectorMatches({}, l)).toBe(true);
    expect(selectorMatches({ matchExpressions: [{ key: 'team', operator: 'In', values: ['pay', 'ops'] }] }, l)).toBe(true);
    expect(selectorMatches({ matchExpressions: [{ key: 'team', operator: 'NotIn', values: ['pay'] }] }, l)).toBe(false);
    expect(selectorMatches({ matchExpressions: [{ key: 'other', operator: 'NotIn', values: ['x'] }] }, l)).toBe(true);
    expect(selectorMatches({ matchExpressions: [{ key: 'tier', operator: 'Exists' }] }, l)).toBe(true);
    expect(selectorMatches({ matchExpressions: [{ key: 'tier', operator: 'DoesNotExist' }] }, l)).toBe(false);
    expect(selectorMatches({ matchLabels: { team: 'pay' }, matchExpressions: [{ key: 'tier', operator: 'In', values: ['dev'] }] }, l)).toBe(false);
  });

  it('refuses a selector without from: Selector, and from: Selector without one, in the operator schema too', () => {
    expect(emailRelaySpec.safeParse({ senderDomains: { namespaces: { from: 'Selector' } } }).success).toBe(false);
    expect(emailRelaySpec.safeParse({ senderDomains: { namespaces: { from: 'All', selector: {} } } }).success).toBe(false);
    expect(emailRelaySpec.safeParse({ senderDomains: { namespaces: { from: 'Selector', selector: { matchExpressions: [{ key: 'a', operator: 'In' }] } } } }).success).toBe(false);
  });
});

describe('one owner per domain in the cluster', () => {
  const owner = domainObject('example-com', { domain: 'example.com', relayRef: { name: 'edge' } }, 'mail', '2025-01-01T00:00:00Z');
  const thief = domainObject('steal', { domain: 'Example.com', relayRef: { name: 'other', namespace: 'tenant-b' } }, 'tenant-b', '2025-02-01T00:00:00Z');
  it('gives the domain to the oldest claim whatever the relay, and tells the loser nothing about the owner', () => {
    const claims = resolveClaims([thief, owner]);
    expect(claims.owners.get('example.com')).toBe(owner);
    const r = claims.refused.get('tenant-b/steal')!;
    expect(r.reason).toBe('DomainConflict');
    expect(r.message).toMatch(/domain Example\.com is already claimed by a SenderDomain in another namespace/);
    expect(r.message).not.toMatch(/mail|example-com|edge/);
  });

  it('ties on creationTimestamp go to namespace/name order', () => {
    const a = domainObject('z', { domain: 'tie.example', relayRef: { name: 'r' } }, 'aaa', '2025-01-01T00:00:00Z');
    const b = domainObject('a', { domain: 'tie.example', relayRef: { name: 'r' } }, 'bbb', '2025-01-01T00:00:00Z');
    expect(resolveClaims([b, a]).owners.get('tie.example')).toBe(a);
  });

  it('a claim the relay does not admit claims nothing', () => {
    const claims = resolveClaims([owner, thief], (sd) => sd !== owner);
    expect(claims.owners.get('example.com')).toBe(thief);
    expect(claims.refused.size).toBe(0);
  });

  it('logins are unique per relay, across namespaces', () => {
    const a = domainObject('a', { domain: 'a.example', relayRef: { name: 'edge' }, credentials: { username: 'apps' } }, 'mail', '2025-01-01T00:00:00Z');
    const b = domainObject('b', { domain: 'b.example', relayRef: { name: 'edge', namespace: 'mail' }, credentials: { username: 'apps' } }, 'tenant-b', '2025-01-02T00:00:00Z');
    const c = domainObject('c', { domain: 'c.example', relayRef: { name: 'edge' }, credentials: { username: 'apps' } }, 'tenant-b', '2025-01-02T00:00:00Z');
    const claims = resolveClaims([a, b, c]);
    expect(claims.refused.get('tenant-b/b')?.message).toMatch(/SMTP username apps is already used on relay edge by a SenderDomain in another namespace/);
    expect(claims.refused.has('tenant-b/c')).toBe(false); // tenant-b/edge is another relay
  });
});

describe('what a relay renders for its tenants', () => {
  it('leaves trusted-network domains it does not serve out of the config, and reports them (no SenderDomains at all)', () => {
    const relay = relayObject('edge', { tls: { secretName: 'edge-cert' }, trustedNetworks: [{ cidrs: ['10.0.0.0/8'], domains: ['someone-else.com'] }] });
    const out = renderRelay(input({ relay }));
    expect(out.errors).toEqual([]);
    expect(out.config!.trustedNetworks).toEqual([]);
    expect(out.unservedTrustedDomains).toEqual(['someone-else.com']);
  });

  it('keeps the served domains of a network and drops the others', () => {
    const sd = domainObject('ok', { domain: 'ok.example', relayRef: { name: 'edge' } });
    const relay = relayObject('edge', { tls: { secretName: 'edge-cert' }, trustedNetworks: [{ cidrs: ['10.0.0.0/8'], domains: ['ok.example', 'broken.example'] }] });
    const out = renderRelay(input({ relay, domains: [{ sd, internal: internalFor('mailfleet') }] }));
    expect(out.errors).toEqual([]);
    expect(out.config!.trustedNetworks).toEqual([{ cidrs: ['10.0.0.0/8'], domains: ['ok.example'] }]);
    expect(out.unservedTrustedDomains).toEqual(['broken.example']);
  });

  it('keeps the files of same-named SenderDomains from two namespaces apart', () => {
    const relay = relayObject('edge', { tls: { secretName: 'edge-cert' }, senderDomains: { namespaces: { from: 'All' } } });
    const mine = domainObject('app', { domain: 'a.example', relayRef: { name: 'edge' } }, 'mail');
    const theirs = domainObject('app', {
      domain: 'b.example', relayRef: { name: 'edge', namespace: 'mail' },
      smarthost: { host: 'smtp.b.example', credentialsSecretRef: { name: 'provider' } },
    }, 'tenant-b');
    const out = renderRelay(input({
      relay,
      domains: [
        { sd: mine, internal: internalFor('mailfleet') },
        { sd: theirs, internal: internalFor('mailfleet'), secrets: new Map([['provider', { username: 'u', password: 'tenant' }]]) },
      ],
    }));
    expect(out.errors).toEqual([]);
    const files = [...out.config!.domains!.flatMap((d) => [...(d.dkim?.keys ?? []).map((k) => k.privateKeyFile), d.smarthost?.auth && 'passwordFile' in d.smarthost.auth ? d.smarthost.auth.passwordFile : undefined]),
      ...out.config!.credentials!.map((c) => c.passwordHashFile)].filter((f) => f !== undefined);
    expect(new Set(files).size).toBe(files.length);
    expect(files).toContain('/var/run/mailfleet/secrets/sd_tenant-b_app_login.hash');
    expect(files).toContain('/var/run/mailfleet/secrets/sd_tenant-b_app_smarthost.password');
  });
});

describe('proof of control', () => {
  const sd = domainObject('steal', { domain: 'example.com', relayRef: { name: 'edge', namespace: 'mail' } }, 'tenant-b');
  it('is required by default for SenderDomains from other namespaces only', () => {
    const relay = relayObject('edge', { senderDomains: { namespaces: { from: 'All' } } });
    expect(verificationRequired(relay, sd)).toBe(true);
    expect(verificationRequired(relay, domainObject('own', { domain: 'x.example', relayRef: { name: 'edge' } }))).toBe(false);
    expect(verificationRequired(relayObject('edge', { senderDomains: { requireVerification: true } }), domainObject('own', { domain: 'x.example', relayRef: { name: 'edge' } }))).toBe(true);
    expect(verificationRequired(relayObject('edge', { senderDomains: { namespaces: { from: 'All' }, requireVerification: false } }), sd)).toBe(false);
  });

  it('has a challenge token bound to the SenderDomain object', () => {
    const a = challengeRecord(sd);
    expect(challengeRecord(sd)).toEqual(a);
    expect(a.name).toBe('_mailfleet.example.com.');
    expect(a.value).toMatch(/^mailfleet-verification=[A-Za-z0-9_-]{32}$/);
    const other = { ...sd, metadata: { ...sd.metadata, uid: 'another-uid' } };
    expect(challengeRecord(other).value).not.toBe(a.value);
  });

  it('an unverified domain: no login Secret, not Ready, DomainNotVerified with the exact record', () => {
    const v = { state: 'Pending' as const, serving: false, message: 'm', nextAt: 0 };
    const out = renderSenderDomain({ sd, relay: relayObject('edge'), internal: internalFor('mailfleet'), host: 'h', port: 587, now, verification: v });
    expect(out.objects.map((o) => o.metadata.name)).toEqual(['steal-mailfleet']);
    expect(out.ready).toBe(false);
    const ready = out.status.conditions!.find((c) => c.type === 'Ready')!;
    expect(ready).toMatchObject({ status: 'False', reason: 'DomainNotVerified' });
    expect(ready.message).toContain(challengeRecord(sd).zone);
    expect(out.status.conditions!.find((c) => c.type === 'DomainVerified')).toMatchObject({ status: 'False', reason: 'DomainNotVerified' });
    expect(out.status.verification).toMatchObject({ required: true, state: 'Pending', challenge: challengeRecord(sd) });
    expect(out.status.credentialsSecret).toBeUndefined();
    // proof lost past the grace period: a permanent problem until someone publishes again
    const lost = renderSenderDomain({ sd, relay: relayObject('edge'), internal: internalFor('mailfleet'), host: 'h', port: 587, now, verification: { ...v, state: 'Lost', verifiedAt: 0, graceEndsAt: 1 } });
    expect(lost.status.conditions!.find((c) => c.type === 'Degraded')).toMatchObject({ status: 'True', reason: 'DomainNotVerified' });
  });
});

describe('DomainVerifier against a DNS server on loopback', () => {
  let dns: TestDnsServer;
  beforeAll(async () => { dns = await startDnsServer(); });
  afterAll(async () => { await dns?.close(); });

  it('verifies by the challenge or a DKIM record, keeps serving through the grace period, then stops', async () => {
    const v = new DomainVerifier({ dnsServers: [dns.address], intervalMs: 1_000, graceMs: 10_000 });
    const sd = domainObject('d', { domain: 'proof.test', relayRef: { name: 'edge', namespace: 'mail' } }, 'tenant-b');
    const internal = internalFor('mailfleet');
    const t = now.getTime();
    dns.setZone({});
    expect(await v.verify(sd, internal, t)).toMatchObject({ state: 'Pending', serving: false });
    // someone else's token at the name proves nothing
    const other = challengeRecord({ ...sd, metadata: { ...sd.metadata, uid: 'x' } });
    dns.setZone({ [other.name]: { TXT: [other.value] } });
    expect(await v.verify(sd, internal, t + 70_000)).toMatchObject({ state: 'Pending', serving: false });
    const ch = challengeRecord(sd);
    dns.setZone({ [ch.name]: { TXT: [ch.value] } });
    expect(await v.verify(sd, internal, t + 140_000)).toMatchObject({ state: 'Verified', serving: true, method: 'challenge' });
    // gone: served during the grace period, then not
    dns.setZone({});
    expect(await v.verify(sd, internal, t + 142_000)).toMatchObject({ state: 'GracePeriod', serving: true, graceEndsAt: t + 152_000 });
    expect(await v.verify(sd, internal, t + 153_000)).toMatchObject({ state: 'Lost', serving: false });
    // the DKIM record proves control as well
    const dkim = dnsRecords('proof.test', internal.dkim, internal.pems).find((r) => r.purpose === 'dkim')!;
    dns.setZone({ [dkim.name]: { TXT: [dkim.value] } });
    const back = await v.verify(sd, internal, t + 160_000);
    expect(back).toMatchObject({ state: 'Verified', serving: true, method: 'dkim', verifiedAt: t + 160_000 });
    // a key the claimant does not hold cannot match the published record
    const forged: DomainInternal = { ...internal, pems: { mailfleet: generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }) as string } };
    const sd2 = { ...sd, metadata: { ...sd.metadata, uid: 'thief' } };
    expect(await v.verify(sd2, forged, t + 160_000)).toMatchObject({ state: 'Pending', serving: false });
  });
});
