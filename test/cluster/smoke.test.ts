// Smoke test of the cluster tier: the control plane the operator tests run against really
// schedules, runs (on kwok fake nodes), garbage-collects, validates CRDs, and talks to kubectl
// and helm through the written kubeconfig.
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { useCluster } from './fixture.ts';
import { pinnedVersions } from './harness.ts';
import { eventually } from '../support/eventually.ts';

const cluster = useCluster();


async function getJson(args: string[]): Promise<any> {
  return JSON.parse((await cluster.get().kubectl([...args, '-o', 'json'])).stdout);
}

const NS = 'smoke';

// each wait below is bounded (eventually: 90 s); the test budget is above that
describe.skipIf(!cluster.available)('cluster tier smoke', { timeout: 150_000 }, () => {
  it('serves the pinned version and has Ready kwok nodes (kubectl with the kubeconfig file)', async () => {
    const c = cluster.get();
    // explicit --kubeconfig, as a person would use the written file
    const version = JSON.parse(
      (await c.kubectl(['--kubeconfig', c.kubeconfigPath, 'version', '-o', 'json'])).stdout,
    );
    expect(version.serverVersion.gitVersion).toBe(pinnedVersions().K8S_VERSION);
    const nodes = await getJson(['--kubeconfig', c.kubeconfigPath, 'get', 'nodes']);
    const ready = nodes.items.filter((n: any) =>
      n.status.conditions.some((cond: any) => cond.type === 'Ready' && cond.status === 'True'),
    );
    expect(ready.map((n: any) => n.metadata.name).sort()).toEqual([...c.nodes].sort());
  });

  it('runs a Deployment: pods Running and Ready on kwok nodes, Deployment available', async () => {
    const c = cluster.get();
    await c.kubectl(['create', 'namespace', NS]);
    await c.kubectl(['apply', '-n', NS, '-f', '-'], {
      input: JSON.stringify({
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name: 'web' },
        spec: {
          replicas: 2,
          selector: { matchLabels: { app: 'web' } },
          template: {
            metadata: { labels: { app: 'web' } },
            // never pulled: kwok only pretends to run it
            spec: { containers: [{ name: 'web', image: 'registry.invalid/web:1' }] },
          },
        },
      }),
    });
    const pods = await eventually('2 Running and Ready pods', async () => {
      const list = await getJson(['get', 'pods', '-n', NS, '-l', 'app=web']);
      const ok = list.items.filter(
        (p: any) =>
          p.status.phase === 'Running' &&
          (p.status.conditions ?? []).some((cond: any) => cond.type === 'Ready' && cond.status === 'True'),
      );
      return ok.length === 2 ? ok : undefined;
    });
    for (const p of pods) expect(c.nodes).toContain(p.spec.nodeName);
    await eventually('Deployment Available', async () => {
      const d = await getJson(['get', 'deployment', 'web', '-n', NS]);
      return (
        d.status.availableReplicas === 2 &&
        d.status.conditions.some((cond: any) => cond.type === 'Available' && cond.status === 'True')
      );
    });
  });

  it('garbage-collects dependents of a deleted owner', async () => {
    const c = cluster.get();
    await c.kubectl(['create', 'configmap', 'owner', '-n', NS, '--from-literal=a=1']);
    const owner = await getJson(['get', 'configmap', 'owner', '-n', NS]);
    await c.kubectl(['apply', '-n', NS, '-f', '-'], {
      input: JSON.stringify({
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: {
          name: 'dependent',
          ownerReferences: [{ apiVersion: 'v1', kind: 'ConfigMap', name: 'owner', uid: owner.metadata.uid }],
        },
        data: { b: '2' },
      }),
    });
    await c.kubectl(['delete', 'configmap', 'owner', '-n', NS, '--wait=true']);
    await eventually('dependent ConfigMap collected', async () => {
      const r = await c.kubectl(['get', 'configmap', 'dependent', '-n', NS], { check: false });
      return r.code !== 0 && /NotFound/.test(r.stderr);
    });

    // and the real chain: Deployment -> ReplicaSet -> Pods (pods go via kwok's delete stage)
    await c.kubectl(['delete', 'deployment', 'web', '-n', NS, '--cascade=background']);
    await eventually('ReplicaSets and Pods of the Deployment collected', async () => {
      const rs = await getJson(['get', 'replicasets', '-n', NS, '-l', 'app=web']);
      const pods = await getJson(['get', 'pods', '-n', NS, '-l', 'app=web']);
      return rs.items.length === 0 && pods.items.length === 0;
    });
  });

  it('applies a CRD and refuses objects that break its schema', async () => {
    const c = cluster.get();
    await c.kubectl(['apply', '-f', '-'], {
      input: JSON.stringify({
        apiVersion: 'apiextensions.k8s.io/v1',
        kind: 'CustomResourceDefinition',
        metadata: { name: 'widgets.smoke.mailfleet.test' },
        spec: {
          group: 'smoke.mailfleet.test',
          scope: 'Namespaced',
          names: { plural: 'widgets', singular: 'widget', kind: 'Widget' },
          versions: [
            {
              name: 'v1',
              served: true,
              storage: true,
              schema: {
                openAPIV3Schema: {
                  type: 'object',
                  required: ['spec'],
                  properties: {
                    spec: {
                      type: 'object',
                      required: ['size'],
                      properties: {
                        size: { type: 'integer', minimum: 1, maximum: 10 },
                        color: { type: 'string', enum: ['red', 'blue'] },
                      },
                    },
                  },
                },
              },
            },
          ],
        },
      }),
    });
    await c.kubectl(['wait', '--for=condition=Established', '--timeout=60s', 'crd/widgets.smoke.mailfleet.test']);
    const widget = (spec: unknown) =>
      JSON.stringify({ apiVersion: 'smoke.mailfleet.test/v1', kind: 'Widget', metadata: { name: 'w' }, spec });

    // discovery of a fresh CRD can lag a moment behind Established: retry the valid create
    await eventually('valid Widget created', async () => {
      await c.kubectl(['create', '-n', NS, '-f', '-'], { input: widget({ size: 3, color: 'red' }) });
      return true;
    }, 30_000);

    for (const [bad, field] of [
      [{ size: 11 }, 'spec.size'],
      [{ size: 'big' }, 'spec.size'],
      [{ size: 2, color: 'green' }, 'spec.color'],
      [{}, 'spec.size'],
    ] as const) {
      const r = await c.kubectl(['create', '-n', NS, '-f', '-'], {
        input: widget(bad).replace('"name":"w"', '"name":"bad"'),
        check: false,
      });
      expect(r.code, `accepted invalid spec ${JSON.stringify(bad)}`).not.toBe(0);
      expect(r.stderr).toMatch(/invalid/i);
      expect(r.stderr).toContain(field);
    }
    const list = await getJson(['get', 'widgets', '-n', NS]);
    expect(list.items.map((w: any) => w.metadata.name)).toEqual(['w']);
  });

  it('helm talks to it: install, list and uninstall a local chart', async () => {
    const c = cluster.get();
    const v = await c.helm(['version', '--short']);
    expect(v.stdout).toMatch(new RegExp(`^${pinnedVersions().HELM_VERSION}`));

    const chart = path.join(c.dir, 'smoke-chart');
    fs.mkdirSync(path.join(chart, 'templates'), { recursive: true });
    fs.writeFileSync(
      path.join(chart, 'Chart.yaml'),
      'apiVersion: v2\nname: smoke\nversion: 0.1.0\nkubeVersion: ">=1.30.0-0"\n',
    );
    fs.writeFileSync(
      path.join(chart, 'templates', 'cm.yaml'),
      'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-cm\ndata:\n  k: v\n',
    );
    await c.helm(['install', 'smoke', chart, '-n', NS, '--wait', '--timeout', '60s']);
    const releases = JSON.parse((await c.helm(['list', '-A', '-o', 'json'])).stdout);
    expect(releases.map((r: any) => `${r.namespace}/${r.name}/${r.status}`)).toEqual([`${NS}/smoke/deployed`]);
    await getJson(['get', 'configmap', 'smoke-cm', '-n', NS]);
    await c.helm(['uninstall', 'smoke', '-n', NS, '--wait']);
    expect(JSON.parse((await c.helm(['list', '-A', '-o', 'json'])).stdout)).toEqual([]);
  });
});
