// examples/k8s/ against the real CRDs: every file server-side applied to a control plane with
// crds/ installed (so a field the CRD lacks, or a broken CEL rule, fails here), then reconciled
// by the operator running under the chart's own ServiceAccount, and the real status read the
// way Argo CD (health Lua) and Flux (kstatus) read it.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { emailRelaySpec } from '../../operator/api/emailrelay.ts';
import { senderDomainSpec } from '../../operator/api/senderdomain.ts';
import { useCluster } from '../cluster/fixture.ts';
import { freePorts, type Cluster } from '../cluster/harness.ts';
import { haveTools } from '../support/tools.ts';
import { argoHealth, kstatus } from './gitops.ts';
import { eventually as eventuallyBase } from '../support/eventually.ts';

const repoRoot = path.resolve(import.meta.dirname, '../..');
const exampleDir = path.join(repoRoot, 'examples/k8s');
const files = fs.readdirSync(exampleDir).filter((f) => f.endsWith('.yaml')).sort();
const docs = (f: string): any[] => YAML.parseAllDocuments(fs.readFileSync(path.join(exampleDir, f), 'utf8')).map((d) => d.toJS()).filter(Boolean);

const NS = 'mail';
const OP_NS = 'mailfleet-system';
const cluster = useCluster({ tier: 'examples', nodes: 2 });
const haveLua = haveTools('gitops-lua', ['lua5.4']);
let operator: ChildProcess | undefined;
let operatorLog = '';
afterAll(async () => {
  if (!operator || operator.exitCode !== null) return;
  const exited = new Promise((r) => operator!.once('exit', r));
  operator.kill('SIGTERM');
  await Promise.race([exited, new Promise((r) => setTimeout(r, 15_000))]);
  if (operator.exitCode === null && operator.signalCode === null) operator.kill('SIGKILL');
}, 30_000);

const eventually = <T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs = 150_000): Promise<T> =>
  eventuallyBase(what, fn, timeoutMs, { everyMs: 500, context: () => `--- operator log tail ---\n${operatorLog.slice(-4000)}` });
const getJson = async (c: Cluster, args: string[]): Promise<any> => JSON.parse((await c.kubectl([...args, '-o', 'json'])).stdout);
const cond = (o: any, type: string) => (o.status?.conditions ?? []).find((x: any) => x.type === type);

describe('examples/k8s (static)', () => {
  it('are Kubernetes manifests whose MailFleet specs parse with the operator schemas', () => {
    expect(files).toEqual(expect.arrayContaining(['app-deployment.yaml', 'relay-mx.yaml', 'relay-smarthost.yaml',
      'senderdomain-existing-key.yaml', 'senderdomain-generated.yaml']));
    const kinds = new Map<string, number>();
    for (const f of files) {
      for (const d of docs(f)) {
        expect(d.apiVersion, f).toBeTruthy();
        expect(d.metadata?.name, f).toBeTruthy();
        expect(d.metadata.namespace, `${f}: examples apply to any namespace`).toBeUndefined();
        kinds.set(d.kind, (kinds.get(d.kind) ?? 0) + 1);
        if (d.kind === 'EmailRelay') emailRelaySpec.parse(d.spec);
        if (d.kind === 'SenderDomain') senderDomainSpec.parse(d.spec);
      }
    }
    expect(Object.fromEntries(kinds)).toMatchObject({ EmailRelay: 3, SenderDomain: 2, Secret: 3, Deployment: 1 });
    // the operator reads a Secret only with its owner's consent (docs/tenancy.md): every example Secret gives it
    for (const f of files) for (const d of docs(f).filter((x) => x.kind === 'Secret')) expect(d.metadata.labels?.['mailfleet.io/use'], `${f}: Secret ${d.metadata.name}`).toBe('true');
    const relay = docs('relay-smarthost.yaml').find((d) => d.kind === 'EmailRelay');
    expect(relay.spec.delivery.smarthosts).toHaveLength(2); // a provider and its backup
    const key = docs('senderdomain-existing-key.yaml').find((d) => d.kind === 'Secret');
    expect(key.stringData['private.key']).toMatch(/^-----BEGIN PRIVATE KEY-----\n[\s\S]+\n-----END PRIVATE KEY-----\n$/);
    const app = docs('app-deployment.yaml')[0];
    const gen = docs('senderdomain-generated.yaml')[0];
    expect(app.spec.template.spec.containers[0].envFrom[0].secretRef.name).toBe(gen.spec.credentials.secretName);
  });
});

describe.skipIf(!cluster.available)('examples/k8s on a real control plane', { timeout: 300_000 }, () => {
  it('every example server-side applies against the CRDs of crds/', async () => {
    const c = cluster.get();
    for (const f of fs.readdirSync(path.join(repoRoot, 'crds'))) await c.kubectl(['apply', '--server-side', '-f', path.join(repoRoot, 'crds', f)]);
    await c.kubectl(['wait', '--for=condition=Established', 'crd/emailrelays.mailfleet.io', 'crd/senderdomains.mailfleet.io', '--timeout=60s']);
    await c.kubectl(['create', 'namespace', NS]);
    for (const f of files) {
      const r = await c.kubectl(['apply', '--server-side', '--field-manager=examples', '-n', NS, '-f', path.join(exampleDir, f)], { check: false });
      expect(r.code, `${f}: ${r.stderr}`).toBe(0);
    }
    const relays = await getJson(c, ['get', 'emailrelays', '-n', NS]);
    expect(relays.items.map((o: any) => o.metadata.name).sort()).toEqual(['outbound', 'smtp-public', 'via-provider']);
    // the server applied the CRD defaults: proof the objects went through the real schema
    const via = relays.items.find((o: any) => o.metadata.name === 'via-provider');
    expect(via.spec.queue.maxLifetime).toBe('5d');
    expect(via.spec.delivery.smarthosts[0].credentialsSecretRef).toMatchObject({ usernameKey: 'username', passwordKey: 'password' });

    // and the same server refuses a broken variant of an example (the check can fail)
    const broken = docs('relay-smarthost.yaml').find((d) => d.kind === 'EmailRelay');
    delete broken.spec.delivery.smarthosts;
    broken.metadata.name = 'broken';
    const r = await c.kubectl(['apply', '--server-side', '--dry-run=server', '-n', NS, '-f', '-'], { input: JSON.stringify(broken), check: false });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('delivery.smarthosts must list at least one smarthost when mode is smarthost');
  });

  it("the operator, under the chart's ServiceAccount, reconciles them: Argo CD and kstatus read the real status", async () => {
    const c = cluster.get();
    // RBAC and ServiceAccount from the chart; no operator pods (this test runs the operator itself)
    await c.helm(['install', 'mailfleet', path.join(repoRoot, 'charts/mailfleet'), '-n', OP_NS, '--create-namespace', '--skip-crds',
      '--set', 'replicaCount=0', '--wait', '--timeout', '120s']);
    // the StatefulSets' claims bind to volumes made here (the test cluster has no provisioner)
    for (let i = 0; i < 4; i++) {
      await c.kubectl(['apply', '-f', '-'], { input: JSON.stringify({
        apiVersion: 'v1', kind: 'PersistentVolume', metadata: { name: `queue-${i}` },
        spec: { capacity: { storage: '2Gi' }, accessModes: ['ReadWriteOnce'], persistentVolumeReclaimPolicy: 'Delete', hostPath: { path: `/tmp/queue-${i}` } },
      }) });
    }
    const token = (await c.kubectl(['create', 'token', 'mailfleet', '-n', OP_NS, '--duration=1h'])).stdout.trim();
    const ca = /certificate-authority-data: (\S+)/.exec(fs.readFileSync(c.kubeconfigPath, 'utf8'))?.[1];
    const kubeconfig = path.join(c.dir, 'chart-sa.kubeconfig');
    fs.writeFileSync(kubeconfig, YAML.stringify({
      apiVersion: 'v1', kind: 'Config', 'current-context': 'c',
      clusters: [{ name: 'c', cluster: { server: c.server, 'certificate-authority-data': ca } }],
      users: [{ name: 'sa', user: { token } }], contexts: [{ name: 'c', context: { cluster: 'c', user: 'sa' } }],
    }), { mode: 0o600 });
    const [httpPort, deadDns] = await freePorts(2) as [number, number];
    operator = spawn(process.execPath, [path.join(repoRoot, 'operator/main.ts'), '--kubeconfig', kubeconfig, '--http', `127.0.0.1:${httpPort}`,
      '--lease-namespace', OP_NS, '--lease-name', 'mailfleet', '--resync', '20',
      // nothing answers there: DNS verification of example.com fails fast and deterministically
      '--dns-servers', `127.0.0.1:${deadDns}`], { env: { ...process.env, MAILFLEET_LOG_LEVEL: 'info' }, stdio: ['ignore', 'pipe', 'pipe'] });
    const collect = (b: Buffer) => { operatorLog = (operatorLog + b.toString()).slice(-200_000); };
    operator.stdout?.on('data', collect);
    operator.stderr?.on('data', collect);

    const ready = (kind: string, name: string) => eventually(`${kind} ${name} Ready`, async () => {
      const o = await getJson(c, ['get', kind, name, '-n', NS]);
      const r = cond(o, 'Ready');
      return r?.status === 'True' && r.observedGeneration === o.metadata.generation && o.status.observedGeneration === o.metadata.generation ? o : undefined;
    });
    const outbound = await ready('emailrelay', 'outbound');
    const via = await ready('emailrelay', 'via-provider');
    const shop = await ready('senderdomain', 'shop-example');
    // example.com's first key waits for its DKIM record (nothing in DNS here): not served yet, so
    // the relay serves no domain (mail would otherwise leave unsigned)
    expect(outbound.status).toMatchObject({ replicas: 2, readyReplicas: 2, domains: 0 });
    expect(shop.status.dkim.activeSelectors).toEqual(['s2024']);

    // example.com: key made and login written, but not Ready until its DKIM record is in DNS
    const example = await eventually('example-com DKIM key and credentials', async () => {
      const o = await getJson(c, ['get', 'senderdomain', 'example-com', '-n', NS]);
      return o.status?.dkim?.selectors?.length && o.status.credentialsSecret && o.status.observedGeneration === o.metadata.generation ? o : undefined;
    });
    // with dnsVerification the first key waits for its record before it signs (nothing in DNS here)
    expect(cond(example, 'DKIMKeyReady')).toMatchObject({ status: 'False', reason: 'KeyAwaitingDNS' });
    expect(cond(example, 'Ready')).toMatchObject({ status: 'False', message: 'DNS records not verified' });
    // SPF follows each route: the MX example's egress addresses, the provider example's includes
    const spf = (o: any) => o.status.dnsRecords.find((r: any) => r.purpose === 'spf');
    expect(spf(example)).toMatchObject({ name: 'example.com.', value: 'v=spf1 ip4:203.0.113.25 ip6:2001:db8::25 ~all' });
    expect(cond(example, 'SPFRecordComplete')).toMatchObject({ status: 'True', reason: 'RouteKnown' });
    expect(spf(shop).value).toBe('v=spf1 include:amazonses.com include:sendgrid.net ~all');
    // the MX example's PTR check asks the operator's resolver, which is down here: a warning that leaves Ready alone
    expect(cond(outbound, 'EgressIdentityVerified')).toMatchObject({ status: 'False', reason: 'LookupFailed' });
    expect(cond(via, 'EgressIdentityVerified')).toBeUndefined();
    const creds = await getJson(c, ['get', 'secret', example.status.credentialsSecret, '-n', NS]);
    expect(Object.keys(creds.data).sort()).toEqual(['host', 'password', 'port', 'username']);
    expect(Buffer.from(creds.data.host, 'base64').toString()).toBe(`outbound.${NS}.svc.cluster.local`);
    // the app mounts exactly that Secret: its Deployment becomes available
    await eventually('billing app available', async () => (await getJson(c, ['get', 'deployment', 'billing', '-n', NS])).status?.availableReplicas === 1);

    // relays run the operator's default image (no spec.image, no MAILFLEET_IMAGE here)
    const sts = await getJson(c, ['get', 'statefulset', 'outbound', '-n', NS]);
    expect(sts.spec.template.spec.containers[0].image).toMatch(/^ghcr\.io\/mailfleet\/mailfleet:/);

    // cert-manager is not installed: the TLS example is Degraded with the reason
    const tls = await eventually('smtp-public Degraded', async () => {
      const o = await getJson(c, ['get', 'emailrelay', 'smtp-public', '-n', NS]);
      return cond(o, 'Degraded')?.status === 'True' && o.status.observedGeneration === o.metadata.generation ? o : undefined;
    });
    expect(cond(tls, 'Degraded').message).toContain('cert-manager');

    for (const o of [outbound, via, shop]) expect(kstatus(o), `${o.kind}/${o.metadata.name}`).toBe('Current');
    if (haveLua) {
      for (const o of [outbound, via, shop]) expect(argoHealth(o).status, `${o.kind}/${o.metadata.name}`).toBe('Healthy');
      expect(argoHealth(example)).toEqual({ status: 'Progressing', message: 'DNS records not verified' });
      expect(argoHealth(tls).status).toBe('Degraded');
    }

    // a spec change: until the operator observes it, both readers say "not done"
    await c.kubectl(['patch', 'emailrelay', 'outbound', '-n', NS, '--type=merge', '-p', '{"spec":{"replicas":3}}']);
    const changed = await getJson(c, ['get', 'emailrelay', 'outbound', '-n', NS]);
    const stale = { ...changed, status: outbound.status }; // the status as it was before the operator saw the change
    expect(kstatus(stale)).toBe('InProgress');
    if (haveLua) expect(argoHealth(stale).status).toBe('Progressing');
  });

  // While pods roll out the operator writes Progressing=True and kstatus' Reconciling=True
  // beside it, so Flux waits instead of calling an observed-but-unfinished relay Current.
  it('kstatus is not Current while an observed relay is still rolling out', async () => {
    const c = cluster.get();
    // 3 replicas, 2 queue volumes left over after via-provider: outbound-2 stays Pending
    const o = await eventually('outbound observed generation 2, pods not all ready', async () => {
      const x = await getJson(c, ['get', 'emailrelay', 'outbound', '-n', NS]);
      return x.status.observedGeneration === x.metadata.generation && cond(x, 'Ready')?.status === 'False' ? x : undefined;
    }, 60_000);
    expect(kstatus(o)).toBe('InProgress');
    expect(cond(o, 'Reconciling')).toMatchObject({ status: 'True', observedGeneration: o.metadata.generation });
  });
});
