// The relay's Secret on a real control plane, as the attacks. One Secret holds the files of
// every tenant a relay serves (DKIM keys, login hashes, smarthost logins) next to the
// platform's own; the platform's relay mail/edge admits SenderDomains from any namespace, and
// tenant namespace x has its own ServiceAccount that may manage SenderDomains and Secrets
// there only.
//  - file names that used to collide: SenderDomain x.y in mail and y in x (both `x.y` once).
//    Both are served; a relay started from what the operator rendered lets each login in
//    with its own password only, and each domain's key file is its own, byte for byte;
//  - a SenderDomain named 0 with a smarthost of its own: the relay's smarthosts[0] keeps
//    the platform's password, the domain's smarthost its own;
//  - a tenant whose smarthost Secret lacks the password: that SenderDomain alone is left out
//    (Degraded SecretUnusable, a Warning Event); another tenant's new domain is served
//    meanwhile, and the fix brings the broken one in;
//  - a DKIM key of a tenant's own that the relay would refuse (RSA-512): that tenant alone is
//    left out, and the rendered config still loads;
//  - a SenderDomain whose name cannot label its Secrets (over 63 characters) is refused whole
//    and claims nothing.
// The naming rules as pure functions: test/operator/relay-secret-keys.test.ts.
import { generateKeyPairSync } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import nodemailer from 'nodemailer';
import { afterAll, describe, expect, it } from 'vitest';
import YAML from 'yaml';
import type { RelayConfigInput } from '../../relay/config/schema.ts';
import { DOMAIN_FILES_MAX } from '../../operator/render/relay-domains.ts';
import { OBJECT_DATA_MAX } from '../../operator/render/relay-secret-files.ts';
import { startRelay, tempDir, type TestRelay } from '../support/relay-harness.ts';
import { eventually, getJson, handoffOnLoopback, startOperatorProcess, tryGetJson, useOperatorCluster, waitReady as waitReadyIn, type OperatorProcess, senderDomainObject as sd } from './support.ts';

const cluster = useOperatorCluster();
const MAIL = 'mail';
const TENANT = 'x';
const AS_TENANT = `--as=system:serviceaccount:${TENANT}:app`;
const GROUP = 'mailfleet.io/v1alpha1';
const SECRETS_DIR = '/var/run/mailfleet/secrets';

let op: OperatorProcess | undefined;
const relays: TestRelay[] = [];
afterAll(async () => {
  for (const r of relays) await r.stop();
  await op?.stop();
}, 60_000);

const admin = (obj: unknown) => cluster.get().kubectl(['apply', '-f', '-'], { input: JSON.stringify(obj) });
const tenantApply = async (obj: unknown) => {
  const r = await cluster.get().kubectl(['apply', '-f', '-', AS_TENANT], { input: JSON.stringify(obj), check: false });
  expect(r.code, r.stderr).toBe(0);
};
const secret = (ns: string, name: string, data: Record<string, string>) => ({
  apiVersion: 'v1', kind: 'Secret', metadata: { name, namespace: ns, labels: { 'mailfleet.io/use': 'true' } }, stringData: data,
});
const cond = (o: any, type: string) => (o?.status?.conditions ?? []).find((c: any) => c.type === type);
const decoded = async (ns: string, name: string): Promise<Record<string, string>> =>
  Object.fromEntries(Object.entries((await getJson(cluster.get(), ['get', 'secret', name, '-n', ns])).data ?? {}).map(([k, v]) => [k, Buffer.from(v as string, 'base64').toString('utf8')]));
const relayConfig = async (): Promise<RelayConfigInput> => YAML.parse((await getJson(cluster.get(), ['get', 'configmap', 'edge-config', '-n', MAIL])).data['relay.yaml']);
const served = (cfg: RelayConfigInput) => (cfg.domains ?? []).map((d) => d.domain).sort();
const logins = (cfg: RelayConfigInput) => (cfg.credentials ?? []).map((c) => c.username).sort();
/** A file of the relay's Secret, by the path the config names. */
const fileOf = (data: Record<string, string>, p: string | undefined) => data[path.basename(p ?? '')];

/** Mounts the rendered ConfigMap and Secret the way the pod would, and starts a relay on loopback from them. */
async function relayFromCluster(): Promise<TestRelay> {
  const dir = tempDir('mailfleet-tenant-files-');
  const secrets = path.join(dir, 'secrets');
  fs.mkdirSync(secrets);
  for (const [k, v] of Object.entries(await decoded(MAIL, 'edge-secrets'))) fs.writeFileSync(path.join(secrets, k), v, { mode: 0o600 });
  const cfg = await relayConfig();
  const config = JSON.parse(JSON.stringify(cfg), (_k, v) => (typeof v === 'string' && v.startsWith(`${SECRETS_DIR}/`) ? path.join(secrets, v.slice(SECRETS_DIR.length + 1)) : v)) as RelayConfigInput;
  const started = await startRelay({
    ...handoffOnLoopback(config), dataDir: path.join(dir, 'data'),
    listeners: config.listeners.map((l) => ({ ...l, host: '127.0.0.1', port: 0 })),
    http: { host: '127.0.0.1', port: 0 },
  }, { dir });
  relays.push(started);
  return started;
}

/** Whether the relay accepts this login (STARTTLS, then AUTH). */
async function logsIn(relay: TestRelay, user: string, pass: string): Promise<boolean> {
  const t = nodemailer.createTransport({ host: '127.0.0.1', port: relay.port('submission'), secure: false, requireTLS: true, tls: { rejectUnauthorized: false }, auth: { user, pass } });
  try {
    return await t.verify();
  } catch (e) {
    if (/535/.test((e as Error).message)) return false;
    throw e;
  } finally {
    t.close();
  }
}

describe.skipIf(!cluster.available)("tenants' files in the relay's Secret (real control plane, as the attack)", { timeout: 300_000 }, () => {
  it('setup: the platform relay admitting every namespace, and tenant x that may manage only SenderDomains and Secrets in x', async () => {
    const c = cluster.get();
    for (const ns of [MAIL, TENANT]) await c.kubectl(['create', 'namespace', ns]);
    await c.kubectl(['create', 'serviceaccount', 'app', '-n', TENANT]);
    await c.kubectl(['create', 'role', 'app-team', '-n', TENANT, '--verb=get,list,watch,create,update,patch,delete', '--resource=senderdomains.mailfleet.io,secrets']);
    await c.kubectl(['create', 'rolebinding', 'app-team', '-n', TENANT, '--role=app-team', `--serviceaccount=${TENANT}:app`]);
    for (const [verb, what, ns] of [['create', 'senderdomains', MAIL], ['get', 'secrets', MAIL], ['create', 'emailrelays', TENANT]]) {
      expect((await c.kubectl(['auth', 'can-i', verb!, what!, '-n', ns!, AS_TENANT], { check: false })).stdout.trim(), `${verb} ${what} in ${ns}`).toBe('no');
    }
    await admin(secret(MAIL, 'platform-login', { username: 'platform', password: 'platform-pw' }));
    op = await startOperatorProcess(cluster.operatorKubeconfig(), ['--resync', '3600']);
    await admin({
      apiVersion: GROUP, kind: 'EmailRelay', metadata: { name: 'edge', namespace: MAIL },
      spec: {
        hostname: 'mail.example.net', replicas: 1, queue: { persistence: { enabled: false } },
        senderDomains: { namespaces: { from: 'All' }, requireVerification: false },
        delivery: { mode: 'smarthost', smarthosts: [{ host: 'smtp.platform.example', credentialsSecretRef: { name: 'platform-login' } }] },
      },
    });
  });

  it('mail/x.y and x/y (both `x.y` in the old file names) each log in with their own password only, and sign with their own key', async () => {
    const c = cluster.get();
    await admin(sd(MAIL, 'x.y', { domain: 'owner.test', relayRef: { name: 'edge' }, dkim: { algorithm: 'ed25519' } }));
    await tenantApply(sd(TENANT, 'y', { domain: 'tenant.test', relayRef: { name: 'edge', namespace: MAIL }, dkim: { algorithm: 'ed25519' } }));
    await waitReadyIn(c, MAIL, 'senderdomain', 'x.y');
    await waitReadyIn(c, TENANT, 'senderdomain', 'y');
    const cfg = await eventually('both served with their logins', async () => {
      const x = await relayConfig();
      return served(x).join() === 'owner.test,tenant.test' && logins(x).join() === 'owner.test,tenant.test' ? x : undefined;
    });
    const owner = await decoded(MAIL, 'x.y-smtp');
    const tenant = await decoded(TENANT, 'y-smtp');
    expect(owner.password).not.toBe(tenant.password);

    // the key files: each domain's own, byte for byte, and not the other's
    const data = await decoded(MAIL, 'edge-secrets');
    const keyFile = (domain: string) => fileOf(data, cfg.domains!.find((d) => d.domain === domain)!.dkim!.keys[0]!.privateKeyFile);
    const ownerKey = (await decoded(MAIL, 'x.y-mailfleet'))['dkim.mailfleet.pem'];
    const tenantKey = (await decoded(TENANT, 'y-mailfleet'))['dkim.mailfleet.pem'];
    expect(ownerKey).toBeTruthy();
    expect(ownerKey).not.toBe(tenantKey);
    expect(keyFile('owner.test')).toBe(ownerKey);
    expect(keyFile('tenant.test')).toBe(tenantKey);
    const hashFiles = cfg.credentials!.map((l) => l.passwordHashFile);
    expect(new Set(hashFiles).size).toBe(2);

    // a relay built from what the operator wrote: each login with its own password only
    const relay = await relayFromCluster();
    expect(await logsIn(relay, 'owner.test', owner.password!)).toBe(true);
    expect(await logsIn(relay, 'tenant.test', tenant.password!)).toBe(true);
    expect(await logsIn(relay, 'owner.test', tenant.password!)).toBe(false);
    expect(await logsIn(relay, 'tenant.test', owner.password!)).toBe(false);
  });

  it("a SenderDomain named 0 with its own smarthost never replaces the relay's smarthosts[0] login", async () => {
    await admin(secret(MAIL, 'zero-login', { username: 'zero', password: 'zero-pw' }));
    await admin(sd(MAIL, '0', { domain: 'zero.test', relayRef: { name: 'edge' }, dkim: { algorithm: 'ed25519' }, smarthost: { host: 'smtp.zero.example', port: 587, credentialsSecretRef: { name: 'zero-login' } } }));
    const cfg = await eventually('zero.test served', async () => {
      const x = await relayConfig();
      return served(x).includes('zero.test') ? x : undefined;
    });
    const data = await decoded(MAIL, 'edge-secrets');
    const platformFile = (cfg.delivery!.smarthosts![0]!.auth as { passwordFile: string }).passwordFile;
    const zeroFile = (cfg.domains!.find((d) => d.domain === 'zero.test')!.smarthost!.auth as { passwordFile: string }).passwordFile;
    expect(platformFile).not.toBe(zeroFile);
    expect(fileOf(data, platformFile)).toBe('platform-pw');
    expect(fileOf(data, zeroFile)).toBe('zero-pw');
  });

  it("a tenant's smarthost Secret without its password leaves out that tenant alone; another tenant's new domain is served meanwhile", async () => {
    const c = cluster.get();
    await tenantApply(secret(TENANT, 'half', { username: 'broken' }));
    await tenantApply(sd(TENANT, 'broken', {
      domain: 'broken.test', relayRef: { name: 'edge', namespace: MAIL }, dkim: { algorithm: 'ed25519' },
      smarthost: { host: 'smtp.broken.example', port: 587, credentialsSecretRef: { name: 'half' } },
    }));
    const broken = await eventually('broken Degraded SecretUnusable', async () => {
      const o = await tryGetJson(c, ['get', 'senderdomain', 'broken', '-n', TENANT]);
      return cond(o, 'Degraded')?.reason === 'SecretUnusable' ? o : undefined;
    });
    expect(cond(broken, 'Degraded').message).toBe('not served: SenderDomain broken smarthost credentials: Secret half has no key password');
    await eventually('a Warning Event SecretUnusable on broken', async () =>
      (await getJson(c, ['get', 'events', '-n', TENANT, '--field-selector', 'involvedObject.name=broken'])).items.some((e: any) => e.type === 'Warning' && e.reason === 'SecretUnusable'));

    // the platform adds a domain: served although the broken tenant is still broken
    await admin(sd(MAIL, 'late', { domain: 'late.test', relayRef: { name: 'edge' }, dkim: { algorithm: 'ed25519' } }));
    const cfg = await eventually('late.test served', async () => {
      const x = await relayConfig();
      return served(x).includes('late.test') ? x : undefined;
    });
    expect(served(cfg)).toEqual(['late.test', 'owner.test', 'tenant.test', 'zero.test']);
    expect(Object.keys(await decoded(MAIL, 'edge-secrets')).filter((k) => k.includes('broken'))).toEqual([]);
    const edge = await eventually('edge status counts the served domains and lists the one left out', async () => {
      const o = await tryGetJson(c, ['get', 'emailrelay', 'edge', '-n', MAIL]);
      return o?.status?.domains === 4 && o.status.unservedSenderDomains?.join() === 'x/broken' ? o : undefined;
    });
    expect(cond(edge, 'Degraded')?.status).not.toBe('True');

    // the tenant fixes its Secret: picked up by the watch (resync is an hour), served
    await tenantApply(secret(TENANT, 'half', { username: 'broken', password: 'broken-pw' }));
    await waitReadyIn(c, TENANT, 'senderdomain', 'broken', 60_000);
    const fixed = await eventually('broken.test served', async () => {
      const x = await relayConfig();
      return served(x).includes('broken.test') ? x : undefined;
    }, 30_000);
    const file = (fixed.domains!.find((d) => d.domain === 'broken.test')!.smarthost!.auth as { passwordFile: string }).passwordFile;
    expect(fileOf(await decoded(MAIL, 'edge-secrets'), file)).toBe('broken-pw');
    await eventually('edge lists nothing left out', async () => {
      const o = await tryGetJson(c, ['get', 'emailrelay', 'edge', '-n', MAIL]);
      return o?.status?.domains === 5 && o.status.unservedSenderDomains === undefined;
    });
  });

  it('a DKIM key of its own that the relay would refuse (RSA-512) leaves out that tenant, and the rendered config still loads', async () => {
    const c = cluster.get();
    const weak = generateKeyPairSync('rsa', { modulusLength: 512 }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
    await tenantApply(secret(TENANT, 'weak-key', { 'private.key': weak }));
    await tenantApply(sd(TENANT, 'weak', { domain: 'weak.test', relayRef: { name: 'edge', namespace: MAIL }, dkim: { secretRef: { name: 'weak-key' } } }));
    const o = await eventually('weak Degraded', async () => {
      const x = await tryGetJson(c, ['get', 'senderdomain', 'weak', '-n', TENANT]);
      return cond(x, 'Degraded')?.status === 'True' ? x : undefined;
    });
    expect(cond(o, 'DKIMKeyReady')).toMatchObject({ status: 'False', reason: 'KeyUnreadable' });
    expect(cond(o, 'DKIMKeyReady').message).toMatch(/RSA key of 512 bits is too short; RFC 8301 requires at least 1024/);
    // the platform's next change renders, without the weak domain, and a relay loads it
    await admin(sd(MAIL, 'after-weak', { domain: 'after-weak.test', relayRef: { name: 'edge' }, dkim: { algorithm: 'ed25519' } }));
    await eventually('after-weak.test served', async () => served(await relayConfig()).includes('after-weak.test'));
    expect(served(await relayConfig())).not.toContain('weak.test');
    const relay = await relayFromCluster();
    expect(await logsIn(relay, 'owner.test', (await decoded(MAIL, 'x.y-smtp')).password!)).toBe(true);
  });

  it('a SenderDomain name too long to label its Secrets is refused whole, with an Event, and claims nothing', async () => {
    const c = cluster.get();
    const long = `${'l'.repeat(60)}-too`;
    await tenantApply(sd(TENANT, long, { domain: 'long.test', relayRef: { name: 'edge', namespace: MAIL }, dkim: { algorithm: 'ed25519' } }));
    const o = await eventually('long-named Degraded', async () => {
      const x = await tryGetJson(c, ['get', 'senderdomain', long, '-n', TENANT]);
      return cond(x, 'Degraded')?.reason === 'InvalidSpec' ? x : undefined;
    });
    expect(cond(o, 'Degraded').message).toMatch(/^metadata\.name: .*at most 63 characters \(this one has 64\)/);
    await eventually('its Warning Event', async () =>
      (await getJson(c, ['get', 'events', '-n', TENANT, '--field-selector', `involvedObject.name=${long}`])).items.some((e: any) => e.reason === 'InvalidSpec'));
    expect((await getJson(c, ['get', 'secrets', '-n', TENANT])).items.map((x: any) => x.metadata.name).filter((n: string) => n.startsWith('lll'))).toEqual([]);
    // the same domain under a valid name is served: the refused one claimed nothing
    await tenantApply(sd(TENANT, 'long', { domain: 'long.test', relayRef: { name: 'edge', namespace: MAIL }, dkim: { algorithm: 'ed25519' } }));
    await waitReadyIn(c, TENANT, 'senderdomain', 'long', 60_000);
    await eventually('long.test served', async () => served(await relayConfig()).includes('long.test'), 30_000);
  });

  it("what the render fills the relay's Secret up to is what the API server stores (server-side apply, as the operator writes)", async () => {
    const c = cluster.get();
    const filled = (total: number) => {
      const data: Record<string, string> = {};
      for (let i = 0, left = total; left > 0; i++) {
        const k = `sd_ns_name${i}_smarthost.password`;
        const v = 'p'.repeat(Math.min(DOMAIN_FILES_MAX - k.length, left - k.length));
        data[k] = Buffer.from(v).toString('base64');
        left -= k.length + v.length;
      }
      return { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'budget', namespace: MAIL }, data };
    };
    const ssa = (obj: unknown) => c.kubectl(['apply', '--server-side', '--field-manager=budget-test', '-f', '-'], { input: JSON.stringify(obj), check: false });
    const ok = await ssa(filled(OBJECT_DATA_MAX));
    expect(ok.code, ok.stderr).toBe(0);
    const over = await ssa(filled(1024 * 1024 + 64 * 1024));
    expect(over.code).not.toBe(0);
    expect(over.stderr).toMatch(/Too long|too long|1048576/);
  });
});
