// The chart against a real control plane (kube-apiserver, controllers, kwok nodes): every
// rendered object passes server-side validation; install gives a Ready operator Deployment
// whose pods pass the `restricted` Pod Security Standard; upgrade with changed values rolls
// out; bad values are refused before anything is created.
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { useCluster } from '../cluster/fixture.ts';
import { type Cluster } from '../cluster/harness.ts';
import { chartDir, find, KUBE_VERSION, parseObjects } from './helpers.ts';
import { eventually } from '../support/eventually.ts';

const cluster = useCluster({ tier: 'chart', nodes: 2 });
const NS = 'mailfleet-system';


const getJson = async (c: Cluster, args: string[]): Promise<any> => JSON.parse((await c.kubectl([...args, '-o', 'json'])).stdout);

/** The Deployment rolled out: every replica updated, ready and available, on kwok nodes. */
async function rolledOut(c: Cluster, name: string, replicas: number): Promise<any> {
  return eventually(`deployment ${name} rolled out with ${replicas} ready`, async () => {
    const d = await getJson(c, ['get', 'deployment', name, '-n', NS]);
    const s = d.status ?? {};
    const done = s.observedGeneration === d.metadata.generation && s.updatedReplicas === replicas && s.readyReplicas === replicas
      && s.availableReplicas === replicas && (s.replicas ?? 0) === replicas;
    return done ? d : undefined;
  });
}

describe.skipIf(!cluster.available)('chart on a real control plane', { timeout: 240_000 }, () => {
  it('applies every rendered object with server-side dry-run (CRDs, RBAC, Deployment, ServiceMonitor)', async () => {
    const c = cluster.get();
    await c.kubectl(['create', 'namespace', NS]);
    // enforce the restricted Pod Security Standard: hardened pods or no pods
    await c.kubectl(['label', 'namespace', NS, 'pod-security.kubernetes.io/enforce=restricted']);
    await c.kubectl(['apply', '-f', path.join(import.meta.dirname, 'fixtures/servicemonitor-crd.yaml')]);
    await c.kubectl(['wait', '--for=condition=Established', 'crd/servicemonitors.monitoring.coreos.com', '--timeout=60s']);
    const r = await c.helm(['template', 'mailfleet', chartDir, '-n', NS, '--kube-version', KUBE_VERSION, '--include-crds',
      '--api-versions', 'monitoring.coreos.com/v1/ServiceMonitor', '--set', 'metrics.serviceMonitor.enabled=true']);
    const objs = parseObjects(r.stdout);
    const kinds = objs.map((o) => o.kind).sort();
    expect(kinds).toEqual(['ClusterRole', 'ClusterRoleBinding', 'CustomResourceDefinition', 'CustomResourceDefinition', 'Deployment',
      'PodDisruptionBudget', 'Role', 'RoleBinding', 'Service', 'ServiceAccount', 'ServiceMonitor',
      'ValidatingAdmissionPolicy', 'ValidatingAdmissionPolicy', 'ValidatingAdmissionPolicyBinding', 'ValidatingAdmissionPolicyBinding']);
    const out = await c.kubectl(['apply', '--dry-run=server', '--server-side', '--field-manager=chart-test', '-f', '-'], { input: r.stdout, check: false });
    expect(out.code, out.stderr).toBe(0);
    // one line per object, each accepted by the server
    expect(out.stdout.trim().split('\n').filter((l) => /serverside-applied \(server dry run\)$/.test(l))).toHaveLength(objs.length);
    // a dry run creates nothing
    expect((await getJson(c, ['get', 'deployments', '-n', NS])).items).toEqual([]);
  });

  it('install: CRDs established and a Ready 2-replica operator Deployment on kwok nodes', async () => {
    const c = cluster.get();
    const r = await c.helm(['install', 'mailfleet', chartDir, '-n', NS, '--wait', '--timeout', '180s']);
    expect(r.stdout).toContain('kind: SenderDomain'); // NOTES: the next step
    expect(r.stdout).toContain('status.credentialsSecret');
    for (const crd of ['emailrelays.mailfleet.io', 'senderdomains.mailfleet.io']) {
      const o = await getJson(c, ['get', 'crd', crd]);
      expect(o.status.conditions.find((x: any) => x.type === 'Established')?.status).toBe('True');
    }
    const d = await rolledOut(c, 'mailfleet', 2);
    expect(d.spec.template.spec.containers[0].image).toMatch(/^ghcr\.io\/mailfleet\/mailfleet:/);
    const pods = await getJson(c, ['get', 'pods', '-n', NS, '-l', 'app.kubernetes.io/instance=mailfleet,app.kubernetes.io/component=operator']);
    const running = pods.items.filter((p: any) => p.status.phase === 'Running' && c.nodes.includes(p.spec.nodeName));
    expect(running).toHaveLength(2);
    const sa = await getJson(c, ['get', 'serviceaccount', 'mailfleet', '-n', NS]);
    expect(sa.metadata.name).toBe(pods.items[0].spec.serviceAccountName);
    // the ServiceAccount may do what the operator needs, and no more than the manifest says
    const can = async (verb: string, res: string, ns?: string) => {
      const [resource, sub] = res.split('/') as [string, string | undefined];
      return (await c.kubectl(['auth', 'can-i', verb, resource, ...(sub ? [`--subresource=${sub}`] : []),
        `--as=system:serviceaccount:${NS}:mailfleet`, ...(ns ? ['-n', ns] : ['--all-namespaces'])], { check: false })).stdout.trim();
    };
    expect(await can('watch', 'emailrelays.mailfleet.io')).toBe('yes');
    expect(await can('patch', 'senderdomains.mailfleet.io/status')).toBe('yes');
    expect(await can('create', 'statefulsets.apps')).toBe('yes');
    expect(await can('update', 'leases.coordination.k8s.io', NS)).toBe('yes');
    expect(await can('update', 'leases.coordination.k8s.io', 'default')).toBe('no');
    expect(await can('delete', 'emailrelays.mailfleet.io')).toBe('no');
    // patch only for the finalizer mailfleet.io/drain-queue (docs/operator.md); create/delete stay with users
    expect(await can('patch', 'emailrelays.mailfleet.io')).toBe('yes');
    expect(await can('update', 'emailrelays.mailfleet.io')).toBe('no');
    expect(await can('get', 'pods/proxy')).toBe('yes');
    expect(await can('delete', 'pods')).toBe('no');
  });

  it('upgrade with changed values rolls out the new pod template', async () => {
    const c = cluster.get();
    await c.helm(['upgrade', 'mailfleet', chartDir, '-n', NS, '--wait', '--timeout', '180s', '--reuse-values',
      '--set', 'replicaCount=3,operator.logLevel=debug,image.tag=0.2.0-rc.1,podDisruptionBudget.minAvailable=2']);
    const d = await rolledOut(c, 'mailfleet', 3);
    const ctr = d.spec.template.spec.containers[0];
    expect(ctr.image).toBe('ghcr.io/mailfleet/mailfleet:0.2.0-rc.1');
    const env = Object.fromEntries(ctr.env.filter((e: any) => e.value).map((e: any) => [e.name, e.value]));
    expect(env).toMatchObject({ MAILFLEET_LOG_LEVEL: 'debug', MAILFLEET_IMAGE: 'ghcr.io/mailfleet/mailfleet:0.2.0-rc.1' });
    const pods = await getJson(c, ['get', 'pods', '-n', NS, '-l', 'app.kubernetes.io/instance=mailfleet']);
    const current = pods.items.filter((p: any) => !p.metadata.deletionTimestamp && p.spec.containers[0].image.endsWith(':0.2.0-rc.1'));
    expect(current.length).toBeGreaterThanOrEqual(3);
    expect((await getJson(c, ['get', 'pdb', 'mailfleet', '-n', NS])).spec.minAvailable).toBe(2);
    const history = JSON.parse((await c.helm(['history', 'mailfleet', '-n', NS, '-o', 'json'])).stdout);
    expect(history.map((h: any) => h.status)).toEqual(['superseded', 'deployed']);

    // the ServiceMonitor appears now that the cluster serves the kind (capability detected live)
    await c.helm(['upgrade', 'mailfleet', chartDir, '-n', NS, '--reuse-values', '--set', 'metrics.serviceMonitor.enabled=true']);
    const sm = await getJson(c, ['get', 'servicemonitor', 'mailfleet', '-n', NS]);
    expect(sm.spec.endpoints[0].port).toBe('http-metrics');
  });

  it('refuses bad values at install and upgrade with a readable message, changing nothing', async () => {
    const c = cluster.get();
    const bad = await c.helm(['install', 'broken', chartDir, '-n', NS, '--set', 'operator.logLevel=loud'], { check: false });
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/values don't meet the specifications of the schema/);
    expect(bad.stderr).toMatch(/at '\/operator\/logLevel': value must be one of 'trace', 'debug', 'info', 'warn', 'error', 'fatal'/);
    const up = await c.helm(['upgrade', 'mailfleet', chartDir, '-n', NS, '--reuse-values', '--set', 'replicaCount=many'], { check: false });
    expect(up.code).not.toBe(0);
    expect(up.stderr).toMatch(/at '\/replicaCount': got string, want integer/);
    const releases = JSON.parse((await c.helm(['list', '-n', NS, '-o', 'json'])).stdout);
    expect(releases.map((x: any) => `${x.name}:${x.revision}:${x.status}`)).toEqual(['mailfleet:3:deployed']);
    expect((await getJson(c, ['get', 'deployment', 'mailfleet', '-n', NS])).spec.replicas).toBe(3);
  });

  it('uninstall removes the operator and keeps the CRDs (and so every EmailRelay)', async () => {
    const c = cluster.get();
    await c.helm(['uninstall', 'mailfleet', '-n', NS, '--wait', '--timeout', '120s']);
    const left = await c.kubectl(['get', 'deployment', 'mailfleet', '-n', NS], { check: false });
    expect(left.stderr).toMatch(/NotFound/);
    expect((await c.kubectl(['get', 'clusterrole', 'mailfleet'], { check: false })).stderr).toMatch(/NotFound/);
    await getJson(c, ['get', 'crd', 'emailrelays.mailfleet.io']);
  });
});
