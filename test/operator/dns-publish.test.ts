// SenderDomain records that publish themselves through external-dns (spec.dns.publish:
// externalDNS), on a real control plane with the admission policy of deploy/ applied and
// external-dns's DNSEndpoint CRD installed mid-test. external-dns itself is played by the test:
// publishFromEndpoints() reads the operator's DNSEndpoints and writes their TXT targets into a
// DNS server on loopback (the operator's --dns-servers), as external-dns would write them into
// a zone, so a DKIM rotation completes by itself: published, seen, signing.
// The attacks: a DKIM record in DNS proves nothing while the operator publishes; a tenant's
// SenderDomain for a domain it does not control gets nothing published and stays unverified;
// one claiming an owned domain is refused with nothing published; a relay that forbids it
// (spec.senderDomains.dnsPublish: Forbidden) and the platform turning --dns-publish off remove
// the DNSEndpoints.
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { challengeRecord } from '../../operator/tenancy/verification.ts';
import { startDnsServer, type TestDnsServer, type Zone } from '../support/dns-server.ts';
import { eventually, getJson, readyCondition, repoRoot, sleep, startOperatorProcess, tryGetJson, useOperatorCluster, waitReady, type OperatorProcess, conditionOf as cond, senderDomainObject as sd } from './support.ts';

const cluster = useOperatorCluster();
const MAIL = 'mail';
const TENANT = 'tenant-b';
const GROUP = 'mailfleet.io/v1alpha1';
const OPERATOR_USER = 'system:serviceaccount:mailfleet-system:mailfleet-operator';

let op: OperatorProcess | undefined;
let dns: TestDnsServer | undefined;
/** Records the domain's owner published by hand (the _mailfleet challenge), beside what "external-dns" publishes. */
let byHand: Zone = {};

beforeAll(async () => { dns = await startDnsServer({}); });
afterAll(async () => {
  await op?.stop();
  await dns?.close();
}, 30_000);

const admin = (obj: unknown) => cluster.get().kubectl(['apply', '-f', '-'], { input: JSON.stringify(obj) });
const getSd = (ns: string, name: string) => tryGetJson(cluster.get(), ['get', 'senderdomain', name, '-n', ns]);
const endpointsIn = async (ns: string) => (await getJson(cluster.get(), ['get', 'dnsendpoints', '-n', ns])).items as any[];
const getEndpoint = (ns: string, name: string) => tryGetJson(cluster.get(), ['get', 'dnsendpoint', name, '-n', ns]);

/** A target in RFC 1035 master-file form, read back as a DNS server loads it: the quoted strings. */
function strings(target: string): string[] {
  return [...target.matchAll(/"((?:[^"\\]|\\.)*)"/g)].map((m) => m[1]!.replace(/\\(.)/g, '$1'));
}

/** external-dns, for the test: every DNSEndpoint's TXT endpoints into the zone (plus what was published by hand). */
async function publishFromEndpoints(): Promise<void> {
  const zone: Zone = { ...byHand };
  for (const ns of [MAIL, TENANT]) {
    for (const ep of await endpointsIn(ns).catch(() => [])) {
      for (const e of ep.spec.endpoints ?? []) {
        if (e.recordType === 'TXT') zone[e.dnsName] = { TXT: (e.targets as string[]).map((t) => strings(t).join('')) };
      }
    }
  }
  dns!.setZone(zone);
}

async function waitCondition(ns: string, name: string, type: string, pred: (c: any) => boolean, what: string): Promise<any> {
  return eventually(`${ns}/${name} ${what}`, async () => {
    const o = await getSd(ns, name);
    return o && o.status?.observedGeneration === o.metadata.generation && pred(cond(o, type)) ? o : undefined;
  }, 120_000, { context: () => op?.logs().slice(-3000) ?? '' });
}

describe.skipIf(!cluster.available)('DNS records published through external-dns (real control plane)', () => {
  it('asked for before external-dns is installed: DNSPublished=False ExternalDNSNotInstalled, nothing else changes', async () => {
    const c = cluster.get();
    await c.kubectl(['create', 'namespace', MAIL]);
    await c.kubectl(['create', 'namespace', TENANT]);
    // the kubectl install's admission policy: the operator may write only objects labelled as its own
    await c.kubectl(['apply', '-f', path.join(repoRoot, 'deploy/admission-policy.yaml')]);
    op = await startOperatorProcess(cluster.operatorKubeconfig(), ['--dns-publish=true', '--dns-servers', dns!.address, '--verify-interval', '1', '--verify-grace', '3600', '--resync', '5']);
    await admin({
      apiVersion: GROUP, kind: 'EmailRelay', metadata: { name: 'edge', namespace: MAIL },
      spec: {
        hostname: 'mail.example.net', replicas: 1, queue: { persistence: { enabled: false } },
        delivery: { egress: { addresses: ['192.0.2.10'] } },
        senderDomains: { namespaces: { from: 'All' } },
      },
    });
    await admin(sd(MAIL, 'example-com', { domain: 'example.com', relayRef: { name: 'edge' }, dns: { publish: 'externalDNS' }, dkim: { rotationDelay: '5s' } }));
    const o = await waitCondition(MAIL, 'example-com', 'DNSPublished', (x) => x?.reason === 'ExternalDNSNotInstalled', 'ExternalDNSNotInstalled');
    expect(cond(o, 'DNSPublished')).toMatchObject({ status: 'False', message: expect.stringContaining('externaldns.k8s.io/v1alpha1') });
    // asking for publishing made proof of control required, on the relay's own namespace too
    expect(o.status.verification).toMatchObject({ required: true, state: 'Pending' });
    expect(o.status.dnsRecords.map((r: any) => r.purpose)).toEqual(['dkim', 'spf', 'dmarc']);
  });

  it('installed: an unverified domain gets nothing, and its DKIM record in DNS proves nothing while the operator publishes', async () => {
    const c = cluster.get();
    await c.kubectl(['apply', '-f', path.join(repoRoot, 'test/support/external-dns-dnsendpoint-crd.yaml')]);
    await c.kubectl(['wait', '--for=condition=Established', 'crd/dnsendpoints.externaldns.k8s.io', '--timeout=60s']);
    // the admission policy covers DNSEndpoints: the operator's account may not write an unlabelled one
    const unlabelled = { apiVersion: 'externaldns.k8s.io/v1alpha1', kind: 'DNSEndpoint', metadata: { name: 'probe', namespace: TENANT }, spec: { endpoints: [] } };
    await eventually('the policy refuses an unlabelled DNSEndpoint from the operator', async () => {
      const r = await c.kubectl(['create', '-f', '-', '--dry-run=server', `--as=${OPERATOR_USER}`], { input: JSON.stringify(unlabelled), check: false });
      return r.code !== 0 && /may only write dnsendpoints labelled app.kubernetes.io\/managed-by: mailfleet-operator/.test(r.stderr);
    }, 60_000);

    // the API is found at the next resync; the domain is not verified, so nothing is written
    const o = await waitCondition(MAIL, 'example-com', 'DNSPublished', (x) => x?.reason === 'DomainNotServed', 'DomainNotServed');
    expect(cond(o, 'DNSPublished').message).toContain(challengeRecord(o).zone);
    // its exact DKIM record in DNS, as the operator would have published it: no proof
    const dkim = o.status.dnsRecords.find((r: any) => r.purpose === 'dkim');
    dns!.setZone({ [dkim.name]: { TXT: [dkim.value] } });
    await sleep(4000); // several --verify-interval 1 checks with the record in place
    const still = await getSd(MAIL, 'example-com');
    expect(still.status.verification.state).toBe('Pending');
    expect(still.status.verification.method).toBeUndefined();
    expect(cond(still, 'DomainVerified')).toMatchObject({ status: 'False', message: expect.not.stringContaining('DKIM record') });
    expect(await endpointsIn(MAIL)).toEqual([]);
  });

  it('proven by the _mailfleet challenge: one DNSEndpoint, labelled and owned, with the DKIM key as one target of ≤255-byte strings, SPF and DMARC', async () => {
    const c = cluster.get();
    const o0 = await getSd(MAIL, 'example-com');
    const ch = challengeRecord(o0);
    byHand = { [ch.name]: { TXT: [ch.value] } };
    dns!.setZone(byHand);
    const ep = await eventually('DNSEndpoint written', () => getEndpoint(MAIL, 'example-com-mailfleet'), 60_000, { context: () => op?.logs().slice(-3000) ?? '' });
    const o = await waitCondition(MAIL, 'example-com', 'DNSPublished', (x) => x?.status === 'True', 'DNSPublished');
    expect(cond(o, 'DNSPublished')).toMatchObject({ reason: 'EndpointWritten', message: expect.stringContaining('3 record(s)') });
    expect(o.status.verification).toMatchObject({ state: 'Verified', method: 'challenge' });
    expect(ep.metadata.labels).toMatchObject({ 'app.kubernetes.io/managed-by': 'mailfleet-operator' });
    expect(ep.metadata.ownerReferences).toEqual([expect.objectContaining({ kind: 'SenderDomain', name: 'example-com', uid: o.metadata.uid, controller: true })]);
    const byName = Object.fromEntries(ep.spec.endpoints.map((e: any) => [e.dnsName, e]));
    expect(Object.keys(byName).sort()).toEqual(['_dmarc.example.com', 'example.com', 'mailfleet._domainkey.example.com']);
    for (const e of ep.spec.endpoints) expect(e).toMatchObject({ recordType: 'TXT', recordTTL: 3600, targets: [expect.any(String)] });
    for (const r of o.status.dnsRecords) {
      const parts = strings(byName[r.name.replace(/\.$/, '')].targets[0]);
      expect(parts).toEqual(r.values);
      expect(parts.join('')).toBe(r.value);
      for (const p of parts) expect(Buffer.byteLength(p)).toBeLessThanOrEqual(255);
    }
    expect(strings(byName['example.com'].targets[0]).join('')).toBe('v=spf1 ip4:192.0.2.10 ~all');
    // never the challenge: the owner published that one by hand
    expect(ep.spec.endpoints.some((e: any) => e.dnsName.startsWith('_mailfleet.'))).toBe(false);
    await publishFromEndpoints();
    await waitReady(c, MAIL, 'senderdomain', 'example-com');
  });

  it('follows the keys: a rotation publishes the new selector, which then signs by itself; a TTL change updates it', async () => {
    const c = cluster.get();
    await c.kubectl(['annotate', 'senderdomain', 'example-com', '-n', MAIL, 'mailfleet.io/rotate-dkim=r1', '--overwrite']);
    const ep = await eventually('the new selector in the DNSEndpoint', async () => {
      const e = await getEndpoint(MAIL, 'example-com-mailfleet');
      return e?.spec.endpoints.some((x: any) => x.dnsName === 'mailfleet-2._domainkey.example.com') ? e : undefined;
    }, 60_000);
    expect(ep.spec.endpoints.map((e: any) => e.dnsName)).toContain('mailfleet._domainkey.example.com');
    // external-dns publishes it; the rotation gate sees it for rotationDelay (5s) and switches
    const rotated = await eventually('mailfleet-2 signing', async () => {
      await publishFromEndpoints();
      const o = await getSd(MAIL, 'example-com');
      return o?.status?.dkim?.activeSelectors?.join() === 'mailfleet-2' ? o : undefined;
    }, 90_000, { everyMs: 1000, context: () => op?.logs().slice(-3000) ?? '' });
    const published = Object.fromEntries((await getEndpoint(MAIL, 'example-com-mailfleet')).spec.endpoints.map((e: any) => [e.dnsName, strings(e.targets[0]).join('')]));
    for (const r of rotated.status.dnsRecords) expect(published[r.name.replace(/\.$/, '')]).toBe(r.value);

    await c.kubectl(['patch', 'senderdomain', 'example-com', '-n', MAIL, '--type=merge', '-p', '{"spec":{"dns":{"ttl":600}}}']);
    await eventually('recordTTL 600', async () => (await getEndpoint(MAIL, 'example-com-mailfleet'))?.spec.endpoints.every((e: any) => e.recordTTL === 600), 60_000);
    // out of range: the CRD refuses it
    const bad = await c.kubectl(['patch', 'senderdomain', 'example-com', '-n', MAIL, '--type=merge', '-p', '{"spec":{"dns":{"ttl":5}}}'], { check: false });
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/spec\.dns\.ttl/);
  });

  it('the attack: another namespace gets nothing published for a domain it does not control, nor for one another SenderDomain owns', async () => {
    await admin(sd(TENANT, 'victim', { domain: 'victim.test', relayRef: { name: 'edge', namespace: MAIL }, dns: { publish: 'externalDNS' } }));
    await admin(sd(TENANT, 'steal', { domain: 'example.com', relayRef: { name: 'edge', namespace: MAIL }, dns: { publish: 'externalDNS' } }));
    const victim = await waitCondition(TENANT, 'victim', 'DNSPublished', (x) => x?.reason === 'DomainNotServed', 'DomainNotServed');
    // its own DKIM record in DNS (however it got there) does not prove control either
    const dkim = victim.status.dnsRecords.find((r: any) => r.purpose === 'dkim');
    dns!.setZone({ ...byHand, [dkim.name]: { TXT: [dkim.value] } });
    await sleep(4000);
    const after = await getSd(TENANT, 'victim');
    expect(after.status.verification).toMatchObject({ required: true, state: 'Pending' });
    expect(readyCondition(after)).toMatchObject({ status: 'False', reason: 'DomainNotVerified' });
    const steal = await eventually('steal refused', async () => {
      const o = await getSd(TENANT, 'steal');
      return cond(o, 'Degraded')?.reason === 'DomainConflict' ? o : undefined;
    });
    expect(cond(steal, 'DNSPublished')).toBeUndefined();
    expect(await endpointsIn(TENANT)).toEqual([]);
    // the owner's object is unchanged: one DNSEndpoint in its namespace, its own records
    const mine = await endpointsIn(MAIL);
    expect(mine.map((e) => e.metadata.name)).toEqual(['example-com-mailfleet']);
    expect(mine[0].spec.endpoints.every((e: any) => e.dnsName.endsWith('example.com'))).toBe(true);
    await publishFromEndpoints();
  });

  it('removed with publish: none, by a relay that forbids it, and everywhere when the platform turns --dns-publish off', async () => {
    const c = cluster.get();
    await c.kubectl(['patch', 'senderdomain', 'example-com', '-n', MAIL, '--type=merge', '-p', '{"spec":{"dns":{"publish":"none"}}}']);
    await eventually('DNSEndpoint deleted', async () => !(await getEndpoint(MAIL, 'example-com-mailfleet')), 60_000);
    const none = await waitCondition(MAIL, 'example-com', 'DNSPublished', (x) => x === undefined, 'no DNSPublished');
    expect(readyCondition(none).status).toBe('True');

    await c.kubectl(['patch', 'senderdomain', 'example-com', '-n', MAIL, '--type=merge', '-p', '{"spec":{"dns":{"publish":"externalDNS"}}}']);
    await eventually('DNSEndpoint back', () => getEndpoint(MAIL, 'example-com-mailfleet'), 60_000);
    // the relay's owner forbids it for the SenderDomains of that relay
    await c.kubectl(['patch', 'emailrelay', 'edge', '-n', MAIL, '--type=merge', '-p', '{"spec":{"senderDomains":{"dnsPublish":"Forbidden"}}}']);
    await eventually('DNSEndpoint deleted for a relay that forbids it', async () => !(await getEndpoint(MAIL, 'example-com-mailfleet')), 60_000);
    const forbidden = await waitCondition(MAIL, 'example-com', 'DNSPublished', (x) => x?.reason === 'RelayForbidsPublishing', 'RelayForbidsPublishing');
    expect(cond(forbidden, 'DNSPublished')).toMatchObject({ status: 'False', message: expect.stringContaining('spec.senderDomains.dnsPublish: Forbidden') });
    await c.kubectl(['patch', 'emailrelay', 'edge', '-n', MAIL, '--type=merge', '-p', '{"spec":{"senderDomains":{"dnsPublish":"Allowed"}}}']);
    await eventually('DNSEndpoint back once the relay allows it', () => getEndpoint(MAIL, 'example-com-mailfleet'), 60_000);
    await op!.stop();
    op = await startOperatorProcess(cluster.operatorKubeconfig(), ['--dns-publish=false', '--dns-servers', dns!.address, '--verify-interval', '1', '--verify-grace', '3600', '--resync', '5']);
    await eventually('DNSEndpoint deleted by an operator that may not publish', async () => !(await getEndpoint(MAIL, 'example-com-mailfleet')), 60_000);
    const o = await waitCondition(MAIL, 'example-com', 'DNSPublished', (x) => x?.reason === 'PublishingNotAllowed', 'PublishingNotAllowed');
    expect(cond(o, 'DNSPublished').status).toBe('False');
  });

  it('goes with its SenderDomain (owner reference)', async () => {
    const c = cluster.get();
    await op!.stop();
    op = await startOperatorProcess(cluster.operatorKubeconfig(), ['--dns-publish=true', '--dns-servers', dns!.address, '--verify-interval', '1', '--verify-grace', '3600', '--resync', '5']);
    const ep = await eventually('DNSEndpoint written again', () => getEndpoint(MAIL, 'example-com-mailfleet'), 60_000);
    await c.kubectl(['delete', 'senderdomain', 'example-com', '-n', MAIL, '--wait=true']);
    await eventually('DNSEndpoint collected', async () => {
      const e = await getEndpoint(MAIL, 'example-com-mailfleet');
      return !e || e.metadata.uid !== ep.metadata.uid;
    }, 60_000);
    expect(await getEndpoint(MAIL, 'example-com-mailfleet')).toBeUndefined();
  });
});
