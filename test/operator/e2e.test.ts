// End to end: what the operator writes on a real control plane is what a relay needs to send
// signed mail. An EmailRelay and a SenderDomain (generated RSA-2048 DKIM key, generated
// login) become Ready; the rendered ConfigMap and Secrets are read back and mounted into a
// temp dir exactly as the pod would see them (only paths, listen addresses and the delivery
// target are rewritten); a relay started from them accepts an authenticated message and
// delivers it, DKIM-signed, to a sink found through MX, and mailauth verifies the signature
// against the TXT record exactly as status.dnsRecords gives it.
//
// No real DNS anywhere: the relay, the verifier and the operator all ask the loopback server.
import { createPublicKey } from 'node:crypto';
import { Resolver } from 'node:dns/promises';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { dkimVerify } from 'mailauth';
import nodemailer from 'nodemailer';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import YAML from 'yaml';
import type { RelayConfigInput } from '../../relay/config/schema.ts';
import { startDnsServer, type TestDnsServer } from '../support/dns-server.ts';
import { startRelay, tempDir, type TestRelay } from '../support/relay-harness.ts';
import { startSink, type Sink } from '../support/sink.ts';
import { testCert } from '../support/certs.ts';
import { eventually, getJson, handoffOnLoopback, readyCondition, startOperatorProcess, tryGetJson, useOperatorCluster, type OperatorProcess, waitReady as waitReadyIn } from './support.ts';

const cluster = useOperatorCluster();
const NS = 'e2e';
const DOMAIN = 'sender.test';
const SECRETS_DIR = '/var/run/mailfleet/secrets';
const TLS_DIR = '/var/run/mailfleet/tls';

let op: OperatorProcess | undefined;
let dns: TestDnsServer | undefined;
let sink: Sink | undefined;
const relays: TestRelay[] = [];
beforeAll(async () => {
  dns = await startDnsServer({});
  sink = await startSink({ host: '127.0.0.2' });
});
afterAll(async () => {
  for (const r of relays) await r.stop();
  await op?.stop();
  await sink?.close();
  await dns?.close();
}, 60_000);

const apply = (obj: unknown) => cluster.get().kubectl(['apply', '-f', '-'], { input: JSON.stringify(obj) });
const b64 = (s: string) => Buffer.from(s, 'base64').toString('utf8');
const secretData = async (name: string): Promise<Record<string, string>> =>
  Object.fromEntries(Object.entries((await getJson(cluster.get(), ['get', 'secret', name, '-n', NS])).data ?? {}).map(([k, v]) => [k, b64(v as string)]));

const waitReady = (kind: string, name: string): Promise<any> => waitReadyIn(cluster.get(), NS, kind, name);

/** The rendered relay config as written to the cluster. */
async function renderedConfig(relay: string): Promise<RelayConfigInput> {
  const cm = await getJson(cluster.get(), ['get', 'configmap', `${relay}-config`, '-n', NS]);
  return YAML.parse(cm.data['relay.yaml']) as RelayConfigInput;
}

/** Rewrites every string under `from` (a mount path) to the same file under `to`. */
function remount<T>(v: T, from: string, to: string): T {
  return JSON.parse(JSON.stringify(v), (_k, x) => (typeof x === 'string' && x.startsWith(`${from}/`) ? path.join(to, x.slice(from.length + 1)) : x)) as T;
}

/**
 * Mounts what the operator wrote (ConfigMap, relay Secret, TLS Secret) into a temp dir the
 * way the pod's volumes would, and starts a relay on loopback from it.
 */
async function relayFromCluster(relay: string): Promise<{ relay: TestRelay; config: RelayConfigInput }> {
  const dir = tempDir('mailfleet-e2e-');
  const secrets = path.join(dir, 'secrets');
  const tls = path.join(dir, 'tls');
  fs.mkdirSync(secrets);
  fs.mkdirSync(tls);
  for (const [k, v] of Object.entries(await secretData(`${relay}-secrets`))) fs.writeFileSync(path.join(secrets, k), v, { mode: 0o600 });
  for (const [k, v] of Object.entries(await secretData(`${relay}-tls`))) fs.writeFileSync(path.join(tls, k), v, { mode: 0o600 });
  let config = await renderedConfig(relay);
  config = remount(remount(config, SECRETS_DIR, secrets), TLS_DIR, tls);
  config = {
    ...handoffOnLoopback(config),
    dataDir: path.join(dir, 'data'),
    listeners: config.listeners.map((l) => ({ ...l, host: '127.0.0.1', port: 0 })),
    http: { host: '127.0.0.1', port: 0 },
    delivery: { ...config.delivery, mx: { ...config.delivery?.mx, port: sink!.port, dnsServers: [dns!.address] } },
  };
  const started = await startRelay(config, { dir });
  relays.push(started);
  return { relay: started, config };
}

async function send(relay: TestRelay, user: string, pass: string, subject: string): Promise<void> {
  const transport = nodemailer.createTransport({
    host: '127.0.0.1', port: relay.port('submission'), secure: false, requireTLS: true,
    tls: { rejectUnauthorized: false }, auth: { user, pass },
  });
  try {
    await transport.sendMail({ from: `noreply@${DOMAIN}`, to: 'someone@dest.test', subject, text: `hello from ${DOMAIN}\n` });
  } finally {
    transport.close();
  }
}

async function verify(message: Buffer) {
  const resolver = new Resolver();
  resolver.setServers([dns!.address]);
  return dkimVerify(message, { resolver: (name: string, rr: string) => resolver.resolve(name, rr) as Promise<string[][]> });
}

/** The zone: the recipient's MX on 127.0.0.2 and every DKIM record exactly as status lists it. */
function publish(status: any): void {
  const zone: Parameters<TestDnsServer['setZone']>[0] = {
    'dest.test': { MX: [{ preference: 10, exchange: 'mx.dest.test' }] },
    'mx.dest.test': { A: ['127.0.0.2'] },
  };
  for (const r of status.dnsRecords as { type: string; name: string; value: string; purpose: string }[]) {
    if (r.purpose !== 'dkim') continue;
    expect(r.type).toBe('TXT');
    zone[r.name] = { TXT: [r.value] };
  }
  dns!.setZone(zone);
}

describe.skipIf(!cluster.available)('operator end to end: rendered config and secrets send DKIM-signed mail', { timeout: 300_000 }, () => {
  let creds: Record<string, string> = {};

  it('a relay built from what the operator wrote delivers mail signed with the generated key', async () => {
    const c = cluster.get();
    await c.kubectl(['create', 'namespace', NS]);
    // the TLS Secret the EmailRelay names, as an admin would create it, labelled for MailFleet
    const cert = testCert();
    await c.kubectl(['create', 'secret', 'tls', 'edge-tls', '-n', NS, `--cert=${cert.certPath}`, `--key=${cert.keyPath}`]);
    await c.kubectl(['label', 'secret', 'edge-tls', '-n', NS, 'mailfleet.io/use=true']); // the owner's consent
    op = await startOperatorProcess(cluster.operatorKubeconfig(), ['--dns-servers', dns!.address]);
    await apply({ apiVersion: 'mailfleet.io/v1alpha1', kind: 'EmailRelay', metadata: { name: 'edge', namespace: NS },
      spec: { hostname: 'mail.example.net', replicas: 1, queue: { persistence: { enabled: false } }, tls: { secretName: 'edge-tls' } } });
    await apply({ apiVersion: 'mailfleet.io/v1alpha1', kind: 'SenderDomain', metadata: { name: 'sender', namespace: NS },
      spec: { domain: DOMAIN, relayRef: { name: 'edge' }, allowedSenders: ['noreply'], dkim: { rotationDelay: '20s', retireAfter: '20s', publishWithin: '10s' } } });
    await waitReady('emailrelay', 'edge');
    const sd = await waitReady('senderdomain', 'sender');
    expect(sd.status.dkim.activeSelectors).toEqual(['mailfleet']);
    const record = sd.status.dnsRecords.find((r: any) => r.purpose === 'dkim');
    expect(record.name).toBe(`mailfleet._domainkey.${DOMAIN}.`);
    expect(record.values.join('')).toBe(record.value);
    // RSA-2048 by default
    const p = /(?:^|;\s*)p=([A-Za-z0-9+/=]+)/.exec(record.value)?.[1];
    expect(record.value).toMatch(/k=rsa/);
    expect(createPublicKey({ key: Buffer.from(p!, 'base64'), format: 'der', type: 'spki' }).asymmetricKeyDetails?.modulusLength).toBe(2048);

    creds = await secretData(sd.status.credentialsSecret);
    expect(creds).toMatchObject({ host: `edge.${NS}.svc.cluster.local`, port: '587', username: DOMAIN });
    const cfg = await eventually('the domain in the relay config', async () => {
      const x = await renderedConfig('edge');
      return x.domains?.some((d) => d.domain === DOMAIN) && x.credentials?.length ? x : undefined;
    });
    expect(cfg.tls).toEqual({ certFile: `${TLS_DIR}/tls.crt`, keyFile: `${TLS_DIR}/tls.key` });

    // `mailfleet dns` prints the same records as zone lines, read through a kubeconfig
    const snippet = execFileSync(process.execPath, [path.resolve(import.meta.dirname, '../../bin/mailfleet.ts'), 'dns', `${NS}/sender`, '--kubeconfig', cluster.get().kubeconfigPath], { encoding: 'utf8' });
    for (const r of sd.status.dnsRecords) expect(snippet).toContain(r.zone);

    publish(sd.status);
    const { relay } = await relayFromCluster('edge');
    await send(relay, creds.username!, creds.password!, 'first');
    const [msg] = await sink!.waitFor(1, 60_000);
    expect(msg!.to).toEqual(['someone@dest.test']);
    const res = await verify(msg!.data!);
    expect(res.results.map((r) => [r.signingDomain, r.selector, r.status?.result])).toEqual([[DOMAIN, 'mailfleet', 'pass']]);

    // the check can fail: a wrong password is refused, a tampered message does not verify
    await expect(send(relay, creds.username!, `${creds.password}x`, 'bad')).rejects.toThrow(/535|auth/i);
    const tampered = Buffer.from(msg!.data!.toString().replace('Subject: first', 'Subject: FIRST'));
    expect((await verify(tampered)).results[0]?.status?.result).not.toBe('pass');
  });

  it('rotates the key: new selector published first, signing switches only once its record is in DNS, old selector retired after', async () => {
    const c = cluster.get();
    await c.kubectl(['annotate', 'senderdomain', 'sender', '-n', NS, 'mailfleet.io/rotate-dkim=1', '--overwrite']);
    const published = await eventually('mailfleet-2 published', async () => {
      const o = await getJson(c, ['get', 'senderdomain', 'sender', '-n', NS]);
      return o.status.dkim.selectors.some((s: any) => s.selector === 'mailfleet-2' && s.state === 'published') ? o : undefined;
    }, 30_000);
    // published in DNS records at once, while the old key still signs
    expect(published.status.dkim.activeSelectors).toEqual(['mailfleet']);
    expect(published.status.dnsRecords.filter((r: any) => r.purpose === 'dkim').map((r: any) => r.name).sort())
      .toEqual([`mailfleet-2._domainkey.${DOMAIN}.`, `mailfleet._domainkey.${DOMAIN}.`]);
    const before = await renderedConfig('edge');
    expect(before.domains?.find((d) => d.domain === DOMAIN)?.dkim?.keys.map((k) => k.selector)).toEqual(['mailfleet']);

    // the record is late: past publishWithin (10s) the rotation is reported blocked, and past
    // rotationDelay (20s) signing has still not switched to the unpublished selector
    const blocked = await eventually('DKIMRotationBlocked', async () => {
      const o = await getJson(c, ['get', 'senderdomain', 'sender', '-n', NS]);
      return o.status.conditions.find((x: any) => x.type === 'DKIMRotationBlocked' && x.status === 'True') ? o : undefined;
    }, 60_000);
    expect(blocked.status.conditions.find((x: any) => x.type === 'DKIMRotationBlocked').message).toContain(`mailfleet-2._domainkey.${DOMAIN}. 3600 IN TXT`);
    await new Promise((r) => setTimeout(r, 25_000));
    const stillOld = await renderedConfig('edge');
    expect(stillOld.domains?.find((d) => d.domain === DOMAIN)?.dkim?.keys.map((k) => k.selector)).toEqual(['mailfleet']);
    expect((await getJson(c, ['get', 'senderdomain', 'sender', '-n', NS])).status.dkim.activeSelectors).toEqual(['mailfleet']);
    const warned = await getJson(c, ['get', 'events', '-n', NS, '--field-selector', 'involvedObject.name=sender,reason=DKIMRotationBlocked']);
    expect(warned.items.length).toBeGreaterThan(0);
    publish(published.status);

    // rotationDelay (20s) after the record appeared, the relay config signs with the new selector; the old one is retiring
    const switched = await eventually('signing with mailfleet-2', async () => {
      const x = await renderedConfig('edge');
      return x.domains?.find((d) => d.domain === DOMAIN)?.dkim?.keys.map((k) => k.selector).join() === 'mailfleet-2' ? x : undefined;
    }, 90_000);
    expect(switched).toBeTruthy();
    const rotated = await eventually('status: mailfleet-2 active, mailfleet retiring', async () => {
      const o = await getJson(c, ['get', 'senderdomain', 'sender', '-n', NS]);
      const st = Object.fromEntries(o.status.dkim.selectors.map((s: any) => [s.selector, s.state]));
      return st['mailfleet-2'] === 'active' && st.mailfleet === 'retiring' ? o : undefined;
    }, 30_000);
    expect(rotated.status.dkim.activeSelectors).toEqual(['mailfleet-2']);

    // mail now carries the new signature (a relay started from the re-rendered config)
    const { relay } = await relayFromCluster('edge');
    await send(relay, creds.username!, creds.password!, 'second');
    const msgs = await sink!.waitFor(2, 60_000);
    const res = await verify(msgs[1]!.data!);
    expect(res.results.map((r) => [r.selector, r.status?.result])).toEqual([['mailfleet-2', 'pass']]);

    // after retireAfter (20s) the old selector leaves status and DNS records
    const retired = await eventually('mailfleet retired', async () => {
      const o = await getJson(c, ['get', 'senderdomain', 'sender', '-n', NS]);
      return o.status.dkim.selectors.length === 1 ? o : undefined;
    }, 90_000);
    expect(retired.status.dkim.selectors.map((s: any) => [s.selector, s.state])).toEqual([['mailfleet-2', 'active']]);
    expect(retired.status.dnsRecords.filter((r: any) => r.purpose === 'dkim').map((r: any) => r.name)).toEqual([`mailfleet-2._domainkey.${DOMAIN}.`]);
    const events = await getJson(c, ['get', 'events', '-n', NS, '--field-selector', 'involvedObject.name=sender']);
    expect(events.items.map((e: any) => e.reason)).toEqual(expect.arrayContaining(['DKIMKeyGenerated', 'DKIMRotationStarted', 'DKIMRotated', 'DKIMKeyRetired']));
  });
});
