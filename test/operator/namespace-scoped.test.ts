// Least privilege on the real control plane (issue 11, problem 7), written as the attack:
// the operator runs under the chart's namespace-scoped RBAC (helm template with
// watchNamespaces, the ServiceAccount's own token), reconciles in its namespace and never
// sees or touches another; the chart's ValidatingAdmissionPolicy refuses the operator's
// ServiceAccount any write to a tenant's unlabelled Secret or Deployment even where RBAC
// allows it, while normal reconciliation passes; spec.image is refused unless the operator
// runs with --allow-image-override.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it, afterAll } from 'vitest';
import { findBinaries } from '../cluster/harness.ts';
import { chartDir, KUBE_VERSION, parseObjects } from '../chart/helpers.ts';
import { inCI } from '../support/tools.ts';
import {
  eventually, getJson, repoRoot, serviceAccountKubeconfig, startOperatorProcess, tryGetJson, useOperatorCluster, waitReady, type OperatorProcess, conditionOf as cond,
} from './support.ts';

const cluster = useOperatorCluster();
// helm renders the RBAC under test; without it (outside CI) there is nothing to test
const helmMissing = !inCI && !findBinaries().binaries;
const SYS = 'mf-system';
const A = 'team-a'; // watched
const B = 'team-b'; // not watched
const SA = 'mf-mailfleet'; // the chart's ServiceAccount for release "mf"
const USER = `system:serviceaccount:${SYS}:${SA}`;
const MANAGED = 'app.kubernetes.io/managed-by=mailfleet-operator';

let op: OperatorProcess | undefined;
afterAll(async () => { await op?.stop(); }, 30_000);

const relay = (ns: string, name: string, spec: Record<string, unknown> = {}) => ({
  apiVersion: 'mailfleet.io/v1alpha1', kind: 'EmailRelay', metadata: { name, namespace: ns },
  spec: { hostname: 'mail.example.net', replicas: 1, queue: { persistence: { enabled: false } }, ...spec },
});
const domain = (ns: string, name: string, fqdn: string) => ({
  apiVersion: 'mailfleet.io/v1alpha1', kind: 'SenderDomain', metadata: { name, namespace: ns },
  spec: { domain: fqdn, relayRef: { name: 'edge' }, allowedSenders: ['noreply'] },
});
const apply = (obj: unknown) => cluster.get().kubectl(['apply', '-f', '-'], { input: JSON.stringify(obj) });
/** kubectl as the operator's ServiceAccount (impersonation: the admin may impersonate). */
const asOperator = (args: string[], input?: string) => cluster.get().kubectl([...args, `--as=${USER}`], { check: false, ...(input ? { input } : {}) });
const canI = async (verb: string, resource: string, ns?: string) =>
  (await cluster.get().kubectl(['auth', 'can-i', verb, resource, `--as=${USER}`, ...(ns ? ['-n', ns] : ['--all-namespaces'])], { check: false })).stdout.trim();
const DENIED = /denied request: the MailFleet operator may only (write|change or delete) /;

describe.skipIf(!cluster.available || helmMissing)('least privilege: namespace-scoped install and the admission policy (real control plane)', { timeout: 300_000 }, () => {
  it('a typo in --watch-namespaces stops the operator with an error naming the flag', async () => {
    for (const bad of ['team-a,', 'Team-A', '']) {
      const child = spawn(process.execPath, [path.join(repoRoot, 'operator/main.ts'), '--kubeconfig', cluster.operatorKubeconfig(), '--http', '127.0.0.1:0', `--watch-namespaces=${bad}`], { stdio: ['ignore', 'pipe', 'pipe'] });
      let err = '';
      child.stderr.on('data', (c: Buffer) => { err += c.toString(); });
      const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
      expect(code, bad).toBe(1);
      expect(err, bad).toMatch(/--watch-namespaces: /);
    }
  });

  it("the chart's namespace-scoped RBAC grants the operator its namespaces and nothing cluster-wide", async () => {
    const c = cluster.get();
    for (const ns of [SYS, A, B]) await c.kubectl(['create', 'namespace', ns]);
    const r = await c.helm(['template', 'mf', chartDir, '-n', SYS, '--kube-version', KUBE_VERSION, '--set', `watchNamespaces={${A}}`]);
    // what the chart installs for the operator's identity; the operator itself runs here as a process
    const objs = parseObjects(r.stdout).filter((o) => ['ServiceAccount', 'Role', 'RoleBinding', 'ClusterRole', 'ClusterRoleBinding', 'ValidatingAdmissionPolicy', 'ValidatingAdmissionPolicyBinding'].includes(o.kind));
    expect(objs.map((o) => o.kind).sort()).toEqual(['Role', 'Role', 'RoleBinding', 'RoleBinding', 'ServiceAccount',
      'ValidatingAdmissionPolicy', 'ValidatingAdmissionPolicy', 'ValidatingAdmissionPolicyBinding', 'ValidatingAdmissionPolicyBinding']);
    await c.kubectl(['apply', '--server-side', '-f', '-'], { input: objs.map((o) => JSON.stringify(o)).join('\n---\n') });
    const policy = await getJson(c, ['get', 'validatingadmissionpolicy', 'mf-mailfleet-managed-objects-only']);
    expect(policy.spec.failurePolicy).toBe('Fail');

    expect(await canI('list', 'emailrelays.mailfleet.io', A)).toBe('yes');
    expect(await canI('watch', 'secrets', A)).toBe('yes');
    expect(await canI('patch', 'deployments.apps', A)).toBe('yes');
    expect(await canI('update', 'leases.coordination.k8s.io', SYS)).toBe('yes');
    for (const [verb, res] of [['list', 'emailrelays.mailfleet.io'], ['get', 'secrets'], ['create', 'deployments.apps'], ['create', 'events']]) {
      expect(await canI(verb!, res!, B), `${verb} ${res} in ${B}`).toBe('no');
      expect(await canI(verb!, res!), `${verb} ${res} cluster-wide`).toBe('no');
    }
    // its custom resources: status, and the EmailRelay's drain finalizer (patch); never created, replaced or deleted
    for (const verb of ['create', 'update', 'delete']) expect(await canI(verb, 'emailrelays.mailfleet.io', A), verb).toBe('no');
    expect(await canI('patch', 'senderdomains.mailfleet.io', A)).toBe('no');
  });

  it("the admission policy refuses the operator's ServiceAccount every write to a tenant's unlabelled Secret and Deployment, though RBAC allows it", async () => {
    const c = cluster.get();
    // the tenant: its own ServiceAccount with a Role on its Secrets and Deployments
    await c.kubectl(['create', 'serviceaccount', 'app', '-n', A]);
    await c.kubectl(['create', 'role', 'app', '-n', A, '--verb=get,create,patch,update,delete', '--resource=secrets,deployments.apps']);
    await c.kubectl(['create', 'rolebinding', 'app', '-n', A, '--role=app', `--serviceaccount=${A}:app`]);
    const tenant = `--as=system:serviceaccount:${A}:app`;
    await c.kubectl(['create', 'secret', 'generic', 'db', '-n', A, '--from-literal=password=s3cret', tenant]);
    await c.kubectl(['create', 'deployment', 'web', '-n', A, '--image=registry.invalid/web:1', tenant]);
    const dbBefore = await getJson(c, ['get', 'secret', 'db', '-n', A]);

    // the policy takes effect once the API server has loaded it: probe with dry runs
    await eventually('the policy refuses the operator an unlabelled Secret', async () => {
      const r = await asOperator(['create', 'secret', 'generic', 'probe', '-n', A, '--from-literal=x=y', '--dry-run=server']);
      return r.code !== 0 && DENIED.test(r.stderr);
    }, 60_000);

    const attempts: [string, string[], string?][] = [
      ['overwrite the tenant Secret', ['patch', 'secret', 'db', '-n', A, '--type=merge', '-p', '{"stringData":{"password":"owned"}}']],
      ['claim it by adding the label', ['label', 'secret', 'db', '-n', A, MANAGED]],
      ['delete it', ['delete', 'secret', 'db', '-n', A, '--wait=false']],
      ['change the tenant Deployment', ['set', 'image', 'deployment/web', '-n', A, 'web=registry.invalid/evil:1']],
      ['delete it', ['delete', 'deployment', 'web', '-n', A, '--wait=false']],
      ['create an unlabelled Deployment', ['create', 'deployment', 'miner', '-n', A, '--image=registry.invalid/miner:1']],
      ['server-side apply over the tenant Secret', ['apply', '--server-side', '--force-conflicts', '--field-manager=mailfleet-operator', '-f', '-'],
        JSON.stringify({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'db', namespace: A, labels: { 'app.kubernetes.io/managed-by': 'mailfleet-operator' } }, stringData: { password: 'owned' } })],
    ];
    for (const [what, args, input] of attempts) {
      const r = await asOperator(args, input);
      expect(r.code, `${what}: ${r.stdout}`).not.toBe(0);
      expect(r.stderr, what).toMatch(DENIED);
    }
    // RBAC alone would have allowed it: the policy is what refused
    expect(await canI('patch', 'secrets', A)).toBe('yes');
    expect(await canI('delete', 'deployments.apps', A)).toBe('yes');
    const dbAfter = await getJson(c, ['get', 'secret', 'db', '-n', A]);
    expect(dbAfter.data).toEqual(dbBefore.data);
    expect(dbAfter.metadata.labels ?? {}).toEqual({});
    expect((await getJson(c, ['get', 'deployment', 'web', '-n', A])).spec.template.spec.containers[0].image).toBe('registry.invalid/web:1');
    expect(await tryGetJson(c, ['get', 'deployment', 'miner', '-n', A])).toBeUndefined();

    // what the operator does write passes: a labelled object, created, changed and deleted
    const cm = (data: string) => JSON.stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'ok', namespace: A, labels: { 'app.kubernetes.io/managed-by': 'mailfleet-operator' } }, data: { k: data } });
    for (const [args, input] of [[['apply', '--server-side', '--field-manager=mailfleet-operator', '-f', '-'], cm('1')], [['apply', '--server-side', '--field-manager=mailfleet-operator', '-f', '-'], cm('2')], [['delete', 'configmap', 'ok', '-n', A]]] as [string[], string?][]) {
      const r = await asOperator(args, input);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(0);
    }
    // and people are not held to it: the tenant still manages its own Secret
    await c.kubectl(['patch', 'secret', 'db', '-n', A, '--type=merge', '-p', '{"stringData":{"rotated":"yes"}}', tenant]);
  });

  it("cluster mode: the chart's ClusterRole reaches every namespace, and the same policy still keeps its ServiceAccount off a tenant's objects", async () => {
    const c = cluster.get();
    const sys = 'mfc-system';
    const user = `system:serviceaccount:${sys}:mfc-mailfleet`;
    await c.kubectl(['create', 'namespace', sys]);
    const r = await c.helm(['template', 'mfc', chartDir, '-n', sys, '--kube-version', KUBE_VERSION]);
    const objs = parseObjects(r.stdout).filter((o) => ['ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'ValidatingAdmissionPolicy', 'ValidatingAdmissionPolicyBinding'].includes(o.kind));
    expect(objs).toHaveLength(7);
    await c.kubectl(['apply', '--server-side', '-f', '-'], { input: objs.map((o) => JSON.stringify(o)).join('\n---\n') });
    await c.kubectl(['create', 'secret', 'generic', 'db', '-n', B, '--from-literal=password=b-secret']);
    const as = (args: string[]) => c.kubectl([...args, `--as=${user}`], { check: false });
    expect((await as(['auth', 'can-i', 'patch', 'secrets', '-n', B])).stdout.trim()).toBe('yes');
    await eventually('the cluster-mode policy refuses an unlabelled Secret', async () => {
      const x = await as(['create', 'secret', 'generic', 'probe', '-n', B, '--from-literal=x=y', '--dry-run=server']);
      return x.code !== 0 && DENIED.test(x.stderr);
    }, 60_000);
    for (const args of [['patch', 'secret', 'db', '-n', B, '--type=merge', '-p', '{"stringData":{"password":"owned"}}'], ['delete', 'secret', 'db', '-n', B, '--wait=false']]) {
      const x = await as(args);
      expect(x.code, args.join(' ')).not.toBe(0);
      expect(x.stderr, args.join(' ')).toMatch(DENIED);
    }
    expect(Buffer.from((await getJson(c, ['get', 'secret', 'db', '-n', B])).data.password, 'base64').toString()).toBe('b-secret');
  });

  it('the operator under that RBAC and policy reconciles an EmailRelay and a SenderDomain in its namespace and never sees or touches another', async () => {
    const c = cluster.get();
    // a tenant's object in the unwatched namespace with the name the operator would render
    await c.kubectl(['create', 'configmap', 'edge-config', '-n', B, '--from-literal=relay.yaml=mine']);
    const kubeconfig = await serviceAccountKubeconfig(c, SYS, SA);
    op = await startOperatorProcess(kubeconfig, ['--watch-namespaces', A, '--lease-namespace', SYS, '--lease-name', 'mf-mailfleet']);
    for (const ns of [A, B]) {
      await apply(relay(ns, 'edge'));
      await apply(domain(ns, 'example', `${ns}.example`));
    }
    await waitReady(c, A, 'emailrelay', 'edge');
    const sd = await waitReady(c, A, 'senderdomain', 'example');
    const creds = await getJson(c, ['get', 'secret', sd.status.credentialsSecret, '-n', A]);
    expect(creds.metadata.labels['app.kubernetes.io/managed-by']).toBe('mailfleet-operator');
    const cfg = await eventually('the domain in the relay config', async () => {
      const cm = await getJson(c, ['get', 'configmap', 'edge-config', '-n', A]);
      return cm.data['relay.yaml'].includes(`${A}.example`) ? cm : undefined;
    });
    expect(cfg.metadata.labels['app.kubernetes.io/managed-by']).toBe('mailfleet-operator');
    expect(await getJson(c, ['get', 'lease', 'mf-mailfleet', '-n', SYS])).toMatchObject({ spec: { holderIdentity: expect.any(String) } });
    expect((await op.get('/readyz')).status).toBe(200);

    // its EmailRelay patch is for the drain finalizer: a spec change is refused
    const spec = await asOperator(['patch', 'emailrelay', 'edge', '-n', A, '--type=merge', '-p', '{"spec":{"replicas":5}}', '--dry-run=server']);
    expect(spec.code).not.toBe(0);
    expect(spec.stderr).toMatch(/denied request: the MailFleet operator may not change the spec of emailrelays team-a\/edge/);
    const fin = await asOperator(['patch', 'emailrelay', 'edge', '-n', A, '--type=merge', '-p', '{"metadata":{"finalizers":["mailfleet.io/drain-queue"]}}', '--dry-run=server']);
    expect(fin.code, fin.stderr).toBe(0);

    // the scale-down drain request (a pod annotation) passes on a relay pod, not on a tenant's pod
    const pod = async (selector: string) => (await getJson(c, ['get', 'pods', '-n', A, '-l', selector])).items[0]?.metadata.name as string;
    const relayPod = await eventually('a relay pod', () => pod('app.kubernetes.io/instance=edge'));
    const tenantPod = await eventually('a tenant pod', () => pod('app=web'));
    const drain = (name: string) => asOperator(['annotate', 'pod', name, '-n', A, 'mailfleet.io/drain-requested=probe', '--dry-run=server']);
    const ok = await drain(relayPod);
    expect(ok.code, ok.stderr).toBe(0);
    const refused = await drain(tenantPod);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(DENIED);

    // under the policy it still repairs what it controls: a label someone removed is put back
    await c.kubectl(['label', 'secret', sd.status.credentialsSecret, '-n', A, 'app.kubernetes.io/managed-by-']);
    await eventually('the label restored', async () =>
      (await getJson(c, ['get', 'secret', sd.status.credentialsSecret, '-n', A])).metadata.labels?.['app.kubernetes.io/managed-by'] === 'mailfleet-operator');

    // the confused deputy: a SenderDomain naming the tenant's database Secret as the one to write its login to
    await apply({ ...domain(A, 'deputy', `deputy.${A}.example`), spec: { ...domain(A, 'deputy', `deputy.${A}.example`).spec, credentials: { secretName: 'db' } } });
    const deputy = await eventually('deputy refused', async () => {
      const o = await tryGetJson(c, ['get', 'senderdomain', 'deputy', '-n', A]);
      return cond(o, 'Degraded')?.status === 'True' ? o : undefined;
    });
    expect(cond(deputy, 'Degraded').reason).toBe('OwnershipConflict');
    const db = await getJson(c, ['get', 'secret', 'db', '-n', A]);
    expect(Object.keys(db.data).sort()).toEqual(['password', 'rotated']);
    expect(db.metadata.labels ?? {}).toEqual({});
    await c.kubectl(['delete', 'senderdomain', 'deputy', '-n', A]);

    // a resync later (--resync 20), team-b is as its tenant left it
    await new Promise((r) => setTimeout(r, 25_000));
    for (const kind of ['emailrelay/edge', 'senderdomain/example']) {
      expect((await getJson(c, ['get', kind, '-n', B])).status, `${B} ${kind}`).toBeUndefined();
    }
    expect((await getJson(c, ['get', 'configmap', 'edge-config', '-n', B])).data).toEqual({ 'relay.yaml': 'mine' });
    for (const kind of ['deployments', 'services', 'secrets', 'poddisruptionbudgets']) {
      const items = (await getJson(c, ['get', kind, '-n', B, '-l', MANAGED])).items;
      expect(items, `${kind} in ${B}`).toEqual([]);
    }
    // it never even asked: no request refused by RBAC or by the policy
    expect(op.logs()).not.toMatch(/forbidden|denied request/i);
    expect(op.logs()).not.toContain(B);
  });

  it('spec.image is refused by default (Degraded ImageOverrideNotAllowed, nothing rendered) and honoured with --allow-image-override', async () => {
    const c = cluster.get();
    const IMAGE = 'registry.example/custom-relay:1';
    await apply(relay(A, 'custom', { image: IMAGE }));
    const refused = await eventually('custom refused', async () => {
      const o = await tryGetJson(c, ['get', 'emailrelay', 'custom', '-n', A]);
      return cond(o, 'Degraded')?.status === 'True' ? o : undefined;
    });
    expect(cond(refused, 'Degraded')).toMatchObject({ reason: 'ImageOverrideNotAllowed', message: expect.stringMatching(/spec\.image is set .*--allow-image-override=true \(chart value allowImageOverride: true\)/) });
    expect(cond(refused, 'Ready')?.status).toBe('False');
    expect(await tryGetJson(c, ['get', 'deployment', 'custom', '-n', A])).toBeUndefined();
    expect(await tryGetJson(c, ['get', 'configmap', 'custom-config', '-n', A])).toBeUndefined();
    const events = await getJson(c, ['get', 'events', '-n', A, '--field-selector', 'involvedObject.name=custom']);
    expect(events.items.map((e: any) => e.reason)).toContain('ImageOverrideNotAllowed');

    await op!.stop();
    op = await startOperatorProcess(await serviceAccountKubeconfig(c, SYS, SA), ['--watch-namespaces', A, '--lease-namespace', SYS, '--lease-name', 'mf-mailfleet', '--allow-image-override=true']);
    const dep = await eventually('custom rendered with its image', async () => {
      const d = await tryGetJson(c, ['get', 'deployment', 'custom', '-n', A]);
      return d ? d : undefined;
    });
    expect(dep.spec.template.spec.containers.find((x: any) => x.name === 'relay').image).toBe(IMAGE);
    const ok = await eventually('custom no longer Degraded', async () => {
      const o = await tryGetJson(c, ['get', 'emailrelay', 'custom', '-n', A]);
      return cond(o, 'Degraded')?.status !== 'True' ? o : undefined;
    });
    expect(cond(ok, 'Degraded')?.reason).not.toBe('ImageOverrideNotAllowed');
  });
});
