// Issue 11, problems 1, 3 and 6, as the attack on a real control plane. The platform runs
// EmailRelay mail/edge and serves example.com for mail/example-com. A tenant, namespace
// tenant-b with its own ServiceAccount that may only manage SenderDomains there, tries:
//   - to attach to the platform's relay before the relay admits its namespace (RelayNotAllowed;
//     a Namespace label then admits it, picked up from the Namespace watch);
//   - to claim example.com (DomainConflict, telling it nothing about the owner; the owner's
//     keys, login Secret and relay config entry stay byte-for-byte the same);
//   - to get a domain it has not proven served (nothing until the TXT challenge appears on the
//     loopback DNS server; served then; not served again once the record is gone past the
//     grace period, with an Event).
// And the platform side: an EmailRelay whose trustedNetworks name a domain nobody serves
// there (someone-else.com), and a Degraded SenderDomain (unreadable key), serve nothing for
// those domains while the relay keeps rendering for everyone else.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { startDnsServer, type TestDnsServer } from '../support/dns-server.ts';
import { eventually, getJson, readyCondition, startOperatorProcess, tryGetJson, useOperatorCluster, type OperatorProcess, waitReady, conditionOf as cond, senderDomainObject as sd } from './support.ts';

const cluster = useOperatorCluster();
const MAIL = 'mail';
const TENANT = 'tenant-b';
const GROUP = 'mailfleet.io/v1alpha1';

let op: OperatorProcess | undefined;
let dns: TestDnsServer | undefined;
let tenantKubeconfig = '';
beforeAll(async () => { dns = await startDnsServer({}); });
afterAll(async () => {
  await op?.stop();
  await dns?.close();
}, 30_000);

const admin = (obj: unknown) => cluster.get().kubectl(['apply', '-f', '-'], { input: JSON.stringify(obj) });
/** kubectl as tenant-b's ServiceAccount; check: false so a refusal can be asserted. */
const asTenant = (args: string[], input?: string) => cluster.get().kubectl(['--kubeconfig', tenantKubeconfig, ...args], { check: false, ...(input ? { input } : {}) });

async function relayConfig(relay: string): Promise<any> {
  const cm = await getJson(cluster.get(), ['get', 'configmap', `${relay}-config`, '-n', MAIL]);
  return YAML.parse(cm.data['relay.yaml']);
}
const secretData = async (ns: string, name: string) => (await getJson(cluster.get(), ['get', 'secret', name, '-n', ns])).data as Record<string, string>;
const served = (cfg: any) => (cfg.domains ?? []).map((d: any) => d.domain).sort();
const logins = (cfg: any) => (cfg.credentials ?? []).map((c: any) => c.username).sort();

/** What the owner of example.com has: keys, login, relay config entry and the files behind them. */
async function ownerState() {
  const cfg = await relayConfig('edge');
  const relaySecret = await secretData(MAIL, 'edge-secrets');
  const entry = cfg.domains.find((d: any) => d.domain === 'example.com');
  const login = cfg.credentials.find((c: any) => c.username === 'example.com');
  const files = [...entry.dkim.keys.map((k: any) => k.privateKeyFile), login.passwordHashFile].map((f: string) => path.basename(f));
  return {
    internal: await secretData(MAIL, 'example-com-mailfleet'),
    login: await secretData(MAIL, 'example-com-smtp'),
    entry, credential: login,
    files: Object.fromEntries(files.map((f) => [f, relaySecret[f]])),
  };
}

async function events(ns: string, name: string): Promise<any[]> {
  return (await getJson(cluster.get(), ['get', 'events', '-n', ns, '--field-selector', `involvedObject.name=${name}`])).items;
}

describe.skipIf(!cluster.available)('tenant isolation in the operator (real control plane, as the attack)', () => {
  it('sets up the platform relay and a tenant that may only manage SenderDomains in its namespace', async () => {
    const c = cluster.get();
    await c.kubectl(['create', 'namespace', MAIL]);
    await c.kubectl(['create', 'namespace', TENANT]);
    await c.kubectl(['create', 'serviceaccount', 'app-team', '-n', TENANT]);
    await admin({
      apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', metadata: { name: 'senderdomains', namespace: TENANT },
      rules: [{ apiGroups: ['mailfleet.io'], resources: ['senderdomains'], verbs: ['get', 'list', 'watch', 'create', 'update', 'patch', 'delete'] }],
    });
    await c.kubectl(['create', 'rolebinding', 'app-team', '-n', TENANT, '--role=senderdomains', `--serviceaccount=${TENANT}:app-team`]);
    const token = (await c.kubectl(['create', 'token', 'app-team', '-n', TENANT, '--duration=1h'])).stdout.trim();
    const ca = /certificate-authority-data: (\S+)/.exec(fs.readFileSync(c.kubeconfigPath, 'utf8'))?.[1];
    tenantKubeconfig = path.join(c.dir, 'tenant-b.kubeconfig');
    fs.writeFileSync(tenantKubeconfig, YAML.stringify({
      apiVersion: 'v1', kind: 'Config', 'current-context': 'c',
      clusters: [{ name: 'c', cluster: { server: c.server, 'certificate-authority-data': ca } }],
      users: [{ name: 'app-team', user: { token } }], contexts: [{ name: 'c', context: { cluster: 'c', user: 'app-team' } }],
    }), { mode: 0o600 });
    // the tenant's RBAC is what it claims to be: SenderDomains in tenant-b, nothing else
    expect((await asTenant(['auth', 'can-i', 'create', 'senderdomains', '-n', TENANT])).stdout.trim()).toBe('yes');
    for (const [verb, what, ns] of [['create', 'senderdomains', MAIL], ['create', 'emailrelays', TENANT], ['get', 'secrets', TENANT], ['get', 'secrets', MAIL]]) {
      expect((await asTenant(['auth', 'can-i', verb as string, what as string, '-n', ns as string])).stdout.trim(), `${verb} ${what} in ${ns}`).toBe('no');
    }

    // a short re-verification interval and grace period, so the test sees them pass
    op = await startOperatorProcess(cluster.operatorKubeconfig(), ['--dns-servers', dns!.address, '--verify-interval', '1', '--verify-grace', '4']);
    await admin({
      apiVersion: GROUP, kind: 'EmailRelay', metadata: { name: 'edge', namespace: MAIL },
      spec: {
        hostname: 'mail.example.net', replicas: 1, queue: { persistence: { enabled: false } },
        senderDomains: { namespaces: { from: 'Selector', selector: { matchLabels: { 'mailfleet.io/tenant': 'true' } } } },
      },
    });
    await admin(sd(MAIL, 'example-com', { domain: 'example.com', relayRef: { name: 'edge' } }));
    await waitReady(c, MAIL, 'senderdomain', 'example-com');
    await eventually('example.com served by edge', async () => served(await relayConfig('edge')).includes('example.com'));
  });

  it('a namespace the relay does not admit gets RelayNotAllowed and nothing rendered; a label admits it within seconds', async () => {
    const c = cluster.get();
    const created = await asTenant(['apply', '-f', '-'], JSON.stringify(sd(TENANT, 'own', { domain: 'b.test', relayRef: { name: 'edge', namespace: MAIL } })));
    expect(created.code, created.stderr).toBe(0);
    const refused = await eventually('RelayNotAllowed', async () => {
      const o = await tryGetJson(c, ['get', 'senderdomain', 'own', '-n', TENANT]);
      return cond(o, 'Degraded')?.reason === 'RelayNotAllowed' ? o : undefined;
    });
    expect(cond(refused, 'Degraded').message).toMatch(/EmailRelay mail\/edge does not admit namespace tenant-b/);
    expect(readyCondition(refused).status).toBe('False');
    expect((await getJson(c, ['get', 'secrets', '-n', TENANT])).items.map((s: any) => s.metadata.name).filter((n: string) => n.startsWith('own-'))).toEqual([]);
    expect(served(await relayConfig('edge'))).toEqual(['example.com']);

    // a relay in another namespace that does not exist reads the same as one that refuses
    await asTenant(['apply', '-f', '-'], JSON.stringify(sd(TENANT, 'probe', { domain: 'probe.test', relayRef: { name: 'no-such-relay', namespace: MAIL } })));
    const probe = await eventually('probe refused', async () => {
      const o = await tryGetJson(c, ['get', 'senderdomain', 'probe', '-n', TENANT]);
      return cond(o, 'Degraded')?.reason === 'RelayNotAllowed' ? o : undefined;
    });
    expect(cond(probe, 'Degraded').message).toMatch(/does not exist or does not admit SenderDomains from namespace tenant-b/);

    // the platform admits the namespace by label: the Namespace watch re-evaluates it
    await c.kubectl(['label', 'namespace', TENANT, 'mailfleet.io/tenant=true']);
    await eventually('own past RelayNotAllowed', async () => {
      const o = await tryGetJson(c, ['get', 'senderdomain', 'own', '-n', TENANT]);
      return readyCondition(o) && readyCondition(o).reason !== 'RelayNotAllowed' ? o : undefined;
    }, 20_000);
  });

  it("claiming the owner's domain is refused without naming the owner, and the owner's keys, login and config entry are untouched", async () => {
    const c = cluster.get();
    const before = await ownerState();
    const r = await asTenant(['apply', '-f', '-'], JSON.stringify(sd(TENANT, 'steal', { domain: 'example.com', relayRef: { name: 'edge', namespace: MAIL } })));
    expect(r.code, r.stderr).toBe(0);
    const steal = await eventually('DomainConflict', async () => {
      const o = await tryGetJson(c, ['get', 'senderdomain', 'steal', '-n', TENANT]);
      return cond(o, 'Degraded')?.reason === 'DomainConflict' && o.status.observedGeneration === o.metadata.generation ? o : undefined;
    });
    const message = cond(steal, 'Degraded').message as string;
    expect(message).toMatch(/domain example\.com is already claimed by a SenderDomain in another namespace/);
    expect(message).not.toMatch(/\bmail\b|example-com|\bedge\b/);
    // what the tenant can read of it says no more
    const seen = JSON.parse((await asTenant(['get', 'senderdomain', 'steal', '-n', TENANT, '-o', 'json'])).stdout);
    expect(JSON.stringify(seen.status)).not.toMatch(/"mail"|example-com|mail\/edge/);
    expect(await tryGetJson(c, ['get', 'secret', 'steal-mailfleet', '-n', TENANT])).toBeUndefined();
    expect(await tryGetJson(c, ['get', 'secret', 'steal-smtp', '-n', TENANT])).toBeUndefined();
    const after = await ownerState();
    expect(after).toEqual(before);
    expect(served(await relayConfig('edge'))).toEqual(['example.com']);
    expect(logins(await relayConfig('edge'))).toEqual(['example.com']);
  });

  it('an unproven domain is not served until its TXT challenge is in DNS; lost past the grace period it is not served again, with an Event', async () => {
    const c = cluster.get();
    const pending = await eventually('DomainNotVerified', async () => {
      const o = await tryGetJson(c, ['get', 'senderdomain', 'own', '-n', TENANT]);
      return readyCondition(o)?.reason === 'DomainNotVerified' && o.status.verification?.challenge ? o : undefined;
    });
    const challenge = pending.status.verification.challenge;
    expect(challenge.name).toBe('_mailfleet.b.test.');
    expect(readyCondition(pending).message).toContain(challenge.zone);
    expect(pending.status.verification).toMatchObject({ required: true, state: 'Pending' });
    expect(pending.status.credentialsSecret).toBeUndefined();
    // keys exist (their record is one way to prove control); no login, not in the relay config
    expect(await tryGetJson(c, ['get', 'secret', 'own-mailfleet', '-n', TENANT])).toBeDefined();
    expect(await tryGetJson(c, ['get', 'secret', 'own-smtp', '-n', TENANT])).toBeUndefined();
    expect(served(await relayConfig('edge'))).toEqual(['example.com']);

    dns!.setZone({ [challenge.name]: { TXT: [challenge.value] } });
    const ok = await waitReady(c, TENANT, 'senderdomain', 'own', 60_000);
    expect(ok.status.verification).toMatchObject({ state: 'Verified', method: 'challenge' });
    expect(cond(ok, 'DomainVerified')).toMatchObject({ status: 'True', reason: 'Verified' });
    await eventually('b.test served with its login', async () => {
      const cfg = await relayConfig('edge');
      return served(cfg).includes('b.test') && logins(cfg).includes('b.test');
    });
    const smtp = await secretData(TENANT, 'own-smtp');
    expect(Buffer.from(smtp.host!, 'base64').toString()).toBe(`edge.${MAIL}.svc.cluster.local`);
    expect((await events(TENANT, 'own')).map((e) => e.reason)).toContain('DomainVerified');

    // the record goes: served through the grace period, then not
    dns!.setZone({});
    const lost = await eventually('verification lost', async () => {
      const o = await tryGetJson(c, ['get', 'senderdomain', 'own', '-n', TENANT]);
      return o?.status?.verification?.state === 'Lost' ? o : undefined;
    }, 60_000);
    expect(cond(lost, 'Degraded')).toMatchObject({ status: 'True', reason: 'DomainNotVerified' });
    expect(cond(lost, 'DomainVerified')).toMatchObject({ status: 'False', reason: 'DomainNotVerified' });
    await eventually('b.test no longer served', async () => {
      const cfg = await relayConfig('edge');
      return !served(cfg).includes('b.test') && !logins(cfg).includes('b.test');
    });
    const reasons = (await events(TENANT, 'own')).map((e) => e.reason);
    expect(reasons).toContain('DomainVerificationMissing');
    expect(reasons).toContain('DomainVerificationLost');
    expect(served(await relayConfig('edge'))).toEqual(['example.com']);
  }, 120_000);

  it('trusted networks and Degraded domains: a relay serves nothing for a domain it has no servable SenderDomain for, and keeps rendering', async () => {
    const c = cluster.get();
    // problem 3: no SenderDomains at all, a trusted network naming someone else's domain
    await admin({
      apiVersion: GROUP, kind: 'EmailRelay', metadata: { name: 'lonely', namespace: MAIL },
      spec: { hostname: 'lonely.example.net', replicas: 1, queue: { persistence: { enabled: false } }, trustedNetworks: [{ cidrs: ['10.0.0.0/8'], domains: ['someone-else.com'] }] },
    });
    const lonely = await waitReady(c, MAIL, 'emailrelay', 'lonely');
    expect(lonely.status.unservedTrustedDomains).toEqual(['someone-else.com']);
    expect(cond(lonely, 'TrustedNetworksServed')).toMatchObject({ status: 'False', reason: 'TrustedDomainNotServed' });
    const cfg = await relayConfig('lonely');
    expect(cfg.trustedNetworks).toEqual([]);
    expect(cfg.domains ?? []).toEqual([]);

    // problem 6: a Degraded SenderDomain (its key Secret does not exist) is not served, and
    // naming it in a trusted network does not break the relay for the others
    await admin(sd(MAIL, 'broken', { domain: 'broken.test', relayRef: { name: 'edge' }, dkim: { secretRef: { name: 'no-such-key' } } }));
    const broken = await eventually('broken Degraded', async () => {
      const o = await tryGetJson(c, ['get', 'senderdomain', 'broken', '-n', MAIL]);
      return cond(o, 'Degraded')?.status === 'True' ? o : undefined;
    });
    expect(cond(broken, 'Degraded').message).toMatch(/no-such-key/);
    await c.kubectl(['patch', 'emailrelay', 'edge', '-n', MAIL, '--type=merge', '-p',
      JSON.stringify({ spec: { trustedNetworks: [{ cidrs: ['10.1.0.0/16'], domains: ['example.com', 'broken.test'] }] } })]);
    const edge = await eventually('edge reports broken.test unserved', async () => {
      const o = await tryGetJson(c, ['get', 'emailrelay', 'edge', '-n', MAIL]);
      return o?.status?.observedGeneration === o?.metadata.generation && o.status.unservedTrustedDomains?.includes('broken.test') ? o : undefined;
    });
    expect(cond(edge, 'Degraded')?.status).toBe('False');
    const edgeCfg = await relayConfig('edge');
    expect(served(edgeCfg)).toEqual(['example.com']);
    expect(logins(edgeCfg)).toEqual(['example.com']);
    expect(edgeCfg.trustedNetworks).toEqual([{ cidrs: ['10.1.0.0/16'], domains: ['example.com'] }]);
  }, 120_000);
});
