// The chart without a cluster: lint, what it renders (hardening, image, RBAC from the one
// manifest), the values schema refusing bad input with a readable message, and the README's
// values table covering every value.
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { clusterBinariesOrSkip } from '../cluster/harness.ts';
import { chartDir, find, helm, KUBE_VERSION, parseObjects, repoRoot, type K8sObject } from './helpers.ts';
import { FIELD_MANAGER, MANAGED_BY } from '../../operator/render/objects.ts';
import { RESOURCES } from '../../operator/runtime/resources.ts';

const bins = clusterBinariesOrSkip('chart');
const appVersion = (YAML.parse(fs.readFileSync(path.join(chartDir, 'Chart.yaml'), 'utf8')) as { appVersion: string }).appVersion;

async function render(args: string[] = []): Promise<K8sObject[]> {
  const r = await helm(bins!.helm, ['template', 'mf', chartDir, '-n', 'mailfleet-system', '--kube-version', KUBE_VERSION, ...args]);
  if (r.code !== 0) throw new Error(`helm template ${args.join(' ')} failed: ${r.stderr}`);
  return parseObjects(r.stdout);
}

/** Leaf keys of values.yaml as dotted paths; maps that default to {} and lists are leaves. */
function leafKeys(v: unknown, prefix = ''): string[] {
  if (v && typeof v === 'object' && !Array.isArray(v) && Object.keys(v).length > 0) {
    return Object.entries(v).flatMap(([k, x]) => leafKeys(x, prefix ? `${prefix}.${k}` : k));
  }
  return [prefix];
}

describe.skipIf(!bins)('chart (helm, no cluster)', () => {
  it('passes helm lint --strict', async () => {
    const r = await helm(bins!.helm, ['lint', '--strict', chartDir, '--kube-version', KUBE_VERSION]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).not.toMatch(/\[(WARNING|ERROR)\]/);
    expect(r.stdout).toContain('0 chart(s) failed');
  });

  it('renders a hardened, leader-elected operator that hands its own image to relays', async () => {
    const objs = await render();
    const dep = find(objs, 'Deployment', 'mf-mailfleet');
    expect(dep.spec.replicas).toBe(2);
    const pod = dep.spec.template.spec;
    const [c] = pod.containers;
    expect(c.image).toBe(`ghcr.io/mailfleet/mailfleet:${appVersion}`);
    expect(c.args[0]).toBe('operator');
    expect(c.args).toEqual(expect.arrayContaining(['--leader-elect=true', '--lease-name=mf-mailfleet', '--http=0.0.0.0:8080']));
    const env = Object.fromEntries(c.env.map((e: any) => [e.name, e.value ?? e.valueFrom.fieldRef.fieldPath]));
    expect(env).toMatchObject({ MAILFLEET_IMAGE: c.image, POD_NAME: 'metadata.name', POD_NAMESPACE: 'metadata.namespace' });
    expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } });
    expect(c.securityContext).toMatchObject({
      runAsNonRoot: true, readOnlyRootFilesystem: true, allowPrivilegeEscalation: false,
      capabilities: { drop: ['ALL'] }, seccompProfile: { type: 'RuntimeDefault' },
    });
    expect(c.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'http-metrics' });
    expect(pod.serviceAccountName).toBe(find(objs, 'ServiceAccount').metadata.name);
    expect(find(objs, 'Service', 'mf-mailfleet-metrics').spec.ports[0]).toMatchObject({ port: 8080, targetPort: 'http-metrics' });
    expect(find(objs, 'PodDisruptionBudget').spec.minAvailable).toBe(1);
    expect(objs.some((o) => o.kind === 'ServiceMonitor')).toBe(false);
  });

  it('takes the image from image.repository/tag/digest; operator.relayImage overrides the relay default', async () => {
    const tagged = find(await render(['--set', 'image.repository=registry.example/mf,image.tag=1.2.3']), 'Deployment');
    const c = tagged.spec.template.spec.containers[0];
    expect(c.image).toBe('registry.example/mf:1.2.3');
    expect(c.env.find((e: any) => e.name === 'MAILFLEET_IMAGE').value).toBe('registry.example/mf:1.2.3');
    const digest = `sha256:${'a'.repeat(64)}`;
    const pinned = find(await render(['--set', `image.digest=${digest},operator.relayImage=relay.example/r:9`]), 'Deployment');
    const p = pinned.spec.template.spec.containers[0];
    expect(p.image).toBe(`ghcr.io/mailfleet/mailfleet@${digest}`);
    expect(p.env.find((e: any) => e.name === 'MAILFLEET_IMAGE').value).toBe('relay.example/r:9');
  });

  it("takes the RBAC rules from the operator's own manifest (deploy/rbac.yaml)", async () => {
    const docs = parseObjects(fs.readFileSync(path.join(repoRoot, 'deploy/rbac.yaml'), 'utf8'));
    const objs = await render();
    expect(find(objs, 'ClusterRole').rules).toEqual(find(docs, 'ClusterRole').rules);
    expect(find(objs, 'Role').rules).toEqual(find(docs, 'Role').rules);
    expect(find(objs, 'Role').metadata.namespace).toBe('mailfleet-system');
    const sa = find(objs, 'ServiceAccount').metadata.name;
    for (const kind of ['ClusterRoleBinding', 'RoleBinding']) {
      expect(find(objs, kind).subjects).toEqual([{ kind: 'ServiceAccount', name: sa, namespace: 'mailfleet-system' }]);
    }
    expect((await render(['--set', 'rbac.create=false'])).filter((o) => /Role/.test(o.kind))).toEqual([]);
  });

  it('watchNamespaces: a Role and RoleBinding per namespace, no cluster-wide grant, and the operator told the same namespaces', async () => {
    const docs = parseObjects(fs.readFileSync(path.join(repoRoot, 'deploy/rbac.yaml'), 'utf8'));
    const objs = await render(['--set', 'watchNamespaces={team-b,team-a}']);
    expect(objs.filter((o) => o.kind.startsWith('Cluster'))).toEqual([]);
    const sa = find(objs, 'ServiceAccount').metadata.name;
    // the ClusterRole's rules, less the cluster-scoped resources a Role cannot grant
    const namespaced = (res: string) => RESOURCES.find((r) => r.plural === res.split('/')[0])?.namespaced ?? true;
    const want = (find(docs, 'ClusterRole').rules as { resources: string[] }[])
      .map((r) => ({ ...r, resources: r.resources.filter(namespaced) })).filter((r) => r.resources.length > 0);
    for (const ns of ['team-a', 'team-b']) {
      const role = objs.find((o) => o.kind === 'Role' && o.metadata.namespace === ns);
      expect(role?.rules, ns).toEqual(want);
      const binding = objs.find((o) => o.kind === 'RoleBinding' && o.metadata.namespace === ns);
      expect(binding?.roleRef).toEqual({ apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: role!.metadata.name });
      expect(binding?.subjects).toEqual([{ kind: 'ServiceAccount', name: sa, namespace: 'mailfleet-system' }]);
    }
    // the Lease Role stays in the release namespace; nothing else is granted anywhere
    expect(objs.filter((o) => o.kind === 'Role').map((o) => o.metadata.namespace).sort()).toEqual(['mailfleet-system', 'team-a', 'team-b']);
    const args: string[] = find(objs, 'Deployment').spec.template.spec.containers[0].args;
    expect(args).toContain('--watch-namespaces=team-b,team-a');
    expect(find(await render(), 'Deployment').spec.template.spec.containers[0].args.some((a: string) => a.startsWith('--watch-namespaces'))).toBe(false);
  });

  it('ships a ValidatingAdmissionPolicy holding the operator to objects labelled as its own, in both install modes', async () => {
    const rbac = find(parseObjects(fs.readFileSync(path.join(repoRoot, 'deploy/rbac.yaml'), 'utf8')), 'ClusterRole').rules as { apiGroups: string[]; resources: string[]; verbs: string[] }[];
    for (const args of [[], ['--set', 'watchNamespaces={team-a}']]) {
      const objs = await render(args);
      const vap = find(objs, 'ValidatingAdmissionPolicy', 'mf-mailfleet-managed-objects-only');
      expect(vap.apiVersion).toBe('admissionregistration.k8s.io/v1');
      expect(vap.spec.failurePolicy).toBe('Fail');
      expect(vap.spec.matchConditions).toEqual([{ name: 'is-the-operator', expression: `request.userInfo.username == "system:serviceaccount:mailfleet-system:${find(objs, 'ServiceAccount').metadata.name}"` }]);
      // every resource the operator may write is covered, except its own CRs' status, Events and its Lease
      const covered = (vap.spec.resourceRules ?? vap.spec.matchConstraints.resourceRules) as { apiGroups: string[]; resources: string[]; operations: string[] }[];
      const writable = rbac.filter((r) => r.verbs.some((v) => ['create', 'patch', 'update', 'delete'].includes(v)));
      for (const r of writable) for (const res of r.resources) {
        const hit = covered.some((c) => c.apiGroups.includes(r.apiGroups[0]!) && c.resources.includes(res) && ['CREATE', 'UPDATE', 'DELETE'].every((op) => c.operations.includes(op)));
        expect(hit, `${r.apiGroups[0] || 'core'}/${res}`).toBe(!(r.apiGroups.includes('mailfleet.io') || res === 'events'));
      }
      // the label the render puts on what it owns
      const text = JSON.stringify(vap.spec.validations) + JSON.stringify(vap.spec.variables);
      expect(text).toContain(MANAGED_BY);
      expect(text).toContain(`'${FIELD_MANAGER}'`);
      const binding = find(objs, 'ValidatingAdmissionPolicyBinding', vap.metadata.name);
      expect(binding.spec).toEqual({ policyName: vap.metadata.name, validationActions: ['Deny'] });
      // its own custom resources: the spec is never changed (the EmailRelay patch is for the drain finalizer)
      const crs = find(objs, 'ValidatingAdmissionPolicy', 'mf-mailfleet-custom-resources-spec-unchanged');
      expect(crs.spec.matchConstraints.resourceRules).toEqual([{ apiGroups: ['mailfleet.io'], apiVersions: ['*'], resources: ['emailrelays', 'senderdomains'], operations: ['UPDATE'] }]);
      expect(crs.spec.matchConditions).toEqual(vap.spec.matchConditions);
      expect(crs.spec.validations[0].expression).toBe('object.spec == oldObject.spec');
      expect(find(objs, 'ValidatingAdmissionPolicyBinding', crs.metadata.name).spec).toEqual({ policyName: crs.metadata.name, validationActions: ['Deny'] });
    }
    expect((await render(['--set', 'admissionPolicy.enabled=false'])).filter((o) => o.kind.startsWith('ValidatingAdmission'))).toEqual([]);
  });

  it('deploy/admission-policy.yaml (the kubectl install) is what the chart renders for deploy/rbac.yaml\'s ServiceAccount', async () => {
    const file = parseObjects(fs.readFileSync(path.join(repoRoot, 'deploy/admission-policy.yaml'), 'utf8'));
    const sa = find(parseObjects(fs.readFileSync(path.join(repoRoot, 'deploy/rbac.yaml'), 'utf8')), 'ServiceAccount').metadata;
    const r = await helm(bins!.helm, ['template', 'mailfleet', chartDir, '-n', sa.namespace!, '--kube-version', KUBE_VERSION,
      '--set', `serviceAccount.create=false,serviceAccount.name=${sa.name}`, '--show-only', 'templates/admission-policy.yaml']);
    const rendered = parseObjects(r.stdout);
    expect(file.map((o) => [o.kind, o.metadata.name])).toEqual(rendered.map((o) => [o.kind, o.metadata.name]));
    for (const [i, o] of file.entries()) expect(o.spec, `${o.kind} (regenerate it: see the file's header)`).toEqual(rendered[i]!.spec);
  });

  it('allowImageOverride is off unless set', async () => {
    const arg = async (args: string[]) => (find(await render(args), 'Deployment').spec.template.spec.containers[0].args as string[]).filter((a) => a.startsWith('--allow-image-override'));
    expect(await arg([])).toEqual(['--allow-image-override=false']);
    expect(await arg(['--set', 'allowImageOverride=true'])).toEqual(['--allow-image-override=true']);
  });

  it('dnsPublish is off unless set', async () => {
    const arg = async (args: string[]) => (find(await render(args), 'Deployment').spec.template.spec.containers[0].args as string[]).filter((a) => a.startsWith('--dns-publish'));
    expect(await arg([])).toEqual(['--dns-publish=false']);
    expect(await arg(['--set', 'dnsPublish=true'])).toEqual(['--dns-publish=true']);
  });

  it('grants DNSEndpoints in both install modes and holds them to the admission policy', async () => {
    type Rule = { apiGroups: string[]; resources: string[]; verbs?: string[] };
    const dnsEndpoints = (rules: Rule[]) => rules.find((r) => r.apiGroups.includes('externaldns.k8s.io') && r.resources.includes('dnsendpoints'));
    for (const args of [[], ['--set', 'watchNamespaces={team-a}']]) {
      const objs = await render(args);
      const role = find(objs, args.length ? 'Role' : 'ClusterRole') as unknown as { rules: Rule[] };
      expect([...dnsEndpoints(role.rules)?.verbs ?? []].sort(), args.join(' ')).toEqual(['create', 'delete', 'get', 'patch']);
      const policy = objs.find((o) => o.kind === 'ValidatingAdmissionPolicy' && String(o.metadata.name).endsWith('managed-objects-only')) as unknown as { spec: { matchConstraints: { resourceRules: Rule[] } } };
      expect(dnsEndpoints(policy.spec.matchConstraints.resourceRules), args.join(' ')).toBeDefined();
    }
  });

  it('refuses bad values with a message that names the value', async () => {
    const cases: [string[], RegExp][] = [
      [['--set', 'replicaCount=two'], /at '\/replicaCount': got string, want integer/],
      [['--set', 'image.pullPolicy=Sometimes'], /at '\/image\/pullPolicy': value must be one of/],
      [['--set', 'operator.logLevel=loud'], /at '\/operator\/logLevel': value must be one of 'trace'/],
      [['--set', 'replicaCount=-1'], /at '\/replicaCount'.*minimum/],
      [['--set', 'metrics.port=80'], /at '\/metrics\/port'.*minimum/],
      [['--set', 'image.digest=sha256:nothex'], /at '\/image\/digest'/],
      [['--set', 'operater.workers=2'], /additional properties 'operater' not allowed/],
      [['--set', 'replicaCount=3', '--set', 'leaderElection.enabled=false'], /replicaCount is 3 but leaderElection.enabled is false/],
      [['--set', 'metrics.serviceMonitor.enabled=true'], /no monitoring.coreos.com\/v1 ServiceMonitor/],
      [['--set', 'serviceAccount.create=false'], /serviceAccount.name is required/],
      [['--set', 'watchNamespaces={Team_A}'], /at '\/watchNamespaces\/0'/],
      [['--set', 'watchNamespaces={a,a}'], /at '\/watchNamespaces': items at 0 and 1 are equal/],
      [['--set', 'allowImageOverride=yes'], /at '\/allowImageOverride': got string, want boolean/],
      [['--set', 'admissionPolicy.enabeld=false'], /additional properties 'enabeld' not allowed/],
    ];
    for (const [args, message] of cases) {
      const r = await helm(bins!.helm, ['template', 'mf', chartDir, '--kube-version', KUBE_VERSION, ...args]);
      expect(r.code, `accepted ${args.join(' ')}`).not.toBe(0);
      expect(r.stderr, args.join(' ')).toMatch(message);
    }
  });

  it('renders a ServiceMonitor when asked and the API exists; no PDB for a single replica', async () => {
    const objs = await render(['--api-versions', 'monitoring.coreos.com/v1/ServiceMonitor',
      '--set', 'metrics.serviceMonitor.enabled=true,metrics.serviceMonitor.interval=30s,metrics.serviceMonitor.labels.release=prom']);
    const sm = find(objs, 'ServiceMonitor');
    expect(sm.metadata.labels?.release).toBe('prom');
    expect(sm.spec.endpoints).toEqual([{ port: 'http-metrics', path: '/metrics', interval: '30s' }]);
    expect(sm.spec.selector.matchLabels).toEqual(find(objs, 'Service').spec.selector);
    const single = await render(['--set', 'replicaCount=1,leaderElection.enabled=false']);
    expect(single.some((o) => o.kind === 'PodDisruptionBudget')).toBe(false);
    expect(find(single, 'Deployment').spec.template.spec.containers[0].args).toContain('--leader-elect=false');
  });

  it('documents every value in the README table', () => {
    const values = YAML.parse(fs.readFileSync(path.join(chartDir, 'values.yaml'), 'utf8'));
    const readme = fs.readFileSync(path.join(chartDir, 'README.md'), 'utf8');
    const documented = new Set([...readme.matchAll(/^\| `([^`]+)` \|/gm)].map((m) => m[1]));
    // security contexts and resources are documented as whole objects
    const wholes = ['podSecurityContext', 'securityContext', 'resources.requests', 'resources.limits'];
    const keys = leafKeys(values).map((k) => wholes.find((w) => k.startsWith(`${w}.`)) ?? k);
    const missing = [...new Set(keys)].filter((k) => !documented.has(k));
    expect(missing).toEqual([]);
    const schema = JSON.parse(fs.readFileSync(path.join(chartDir, 'values.schema.json'), 'utf8'));
    const notInSchema = Object.keys(values).filter((k) => !(k in schema.properties));
    expect(notInSchema).toEqual([]);
  });
});
