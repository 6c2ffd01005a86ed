// An EmailRelay with a persistent queue, end to end on a real control plane: the test plays
// the storage admin (no dynamic provisioner runs here) and creates static PersistentVolumes
// of the claim's class; the PV binder binds the StatefulSet's claims, the scheduler places the
// pods on kwok nodes, and the EmailRelay reports them Ready, before and after kubectl scale.
import { afterAll, describe, expect, it } from 'vitest';
import { eventually, getJson, readyCondition, startOperatorProcess, useOperatorCluster, waitReady, type OperatorProcess } from './support.ts';

const cluster = useOperatorCluster();
const NS = 'persist';
const CLASS = 'manual';
let op: OperatorProcess | undefined;
afterAll(async () => { await op?.stop(); }, 30_000);

const apply = (obj: unknown) => cluster.get().kubectl(['apply', '-f', '-'], { input: JSON.stringify(obj) });

/** A static volume only a claim of our class, size and access mode can bind. */
const volume = (name: string) => ({
  apiVersion: 'v1', kind: 'PersistentVolume', metadata: { name },
  spec: {
    capacity: { storage: '2Gi' }, accessModes: ['ReadWriteOnce'], storageClassName: CLASS,
    persistentVolumeReclaimPolicy: 'Retain', hostPath: { path: `/tmp/mailfleet-${name}` },
  },
});

async function claims(): Promise<any[]> {
  return (await getJson(cluster.get(), ['get', 'pvc', '-n', NS, '-l', 'app.kubernetes.io/instance=queue'])).items;
}

async function runningPods(): Promise<any[]> {
  const c = cluster.get();
  const pods = await getJson(c, ['get', 'pods', '-n', NS, '-l', 'app.kubernetes.io/instance=queue']);
  return pods.items.filter((p: any) => p.status.phase === 'Running' && c.nodes.includes(p.spec.nodeName)
    && (p.status.conditions ?? []).some((x: any) => x.type === 'Ready' && x.status === 'True'));
}

describe.skipIf(!cluster.available)('EmailRelay with persistent queue volumes (real control plane, static PVs)', () => {
  it('binds a claim per pod to a static PV; pods run on kwok nodes; Ready with observedGeneration', async () => {
    const c = cluster.get();
    await c.kubectl(['create', 'namespace', NS]);
    // Immediate binding, no provisioner: the claims bind as soon as a fitting PV exists.
    await apply({ apiVersion: 'storage.k8s.io/v1', kind: 'StorageClass', metadata: { name: CLASS }, provisioner: 'kubernetes.io/no-provisioner', volumeBindingMode: 'Immediate' });
    await apply(volume('queue-pv-0'));
    op = await startOperatorProcess(cluster.operatorKubeconfig());
    await apply({
      apiVersion: 'mailfleet.io/v1alpha1', kind: 'EmailRelay', metadata: { name: 'queue', namespace: NS },
      spec: { hostname: 'mail.example.net', replicas: 1, queue: { persistence: { enabled: true, size: '1Gi', storageClassName: CLASS } } },
    });

    const er = await waitReady(c, NS, 'emailrelay', 'queue');
    expect(er.status).toMatchObject({ replicas: 1, readyReplicas: 1 });
    expect(readyCondition(er)).toMatchObject({ status: 'True', observedGeneration: er.metadata.generation });
    const sts = await getJson(c, ['get', 'statefulset', 'queue', '-n', NS]);
    expect(sts.spec.volumeClaimTemplates[0].spec).toMatchObject({ storageClassName: CLASS, accessModes: ['ReadWriteOnce'] });
    const [pvc, ...more] = await claims();
    expect(more).toEqual([]);
    expect(pvc).toMatchObject({ metadata: { name: 'data-queue-0' }, spec: { volumeName: 'queue-pv-0' }, status: { phase: 'Bound' } });
    const pods = await runningPods();
    expect(pods.map((p: any) => p.metadata.name)).toEqual(['queue-0']);
    expect(pods[0].spec.volumes).toContainEqual({ name: 'data', persistentVolumeClaim: { claimName: 'data-queue-0' } });
  });

  it('kubectl scale: the second pod waits for a volume, then binds a second PV and becomes Ready', async () => {
    const c = cluster.get();
    await c.kubectl(['scale', 'emailrelay', 'queue', '-n', NS, '--replicas=2']);
    // No second PV yet: the new claim stays Pending, so the relay must not claim to be Ready.
    const pending = await eventually('second claim created, Pending', async () => {
      const pvc = (await claims()).find((p) => p.metadata.name === 'data-queue-1');
      return pvc?.status?.phase === 'Pending' ? pvc : undefined;
    });
    expect(pending.spec.volumeName ?? '').toBe('');
    const waiting = await eventually('relay Progressing while a claim waits', async () => {
      const o = await getJson(c, ['get', 'emailrelay', 'queue', '-n', NS]);
      return o.status.observedGeneration === o.metadata.generation && readyCondition(o)?.status === 'False' ? o : undefined;
    });
    expect(waiting.status.readyReplicas).toBe(1);
    expect(waiting.status.conditions.find((x: any) => x.type === 'Progressing')).toMatchObject({ status: 'True', reason: 'PodsNotReady' });

    await apply(volume('queue-pv-1'));
    const er = await eventually('2/2 ready', async () => {
      const o = await getJson(c, ['get', 'emailrelay', 'queue', '-n', NS]);
      const r = readyCondition(o);
      return o.status.readyReplicas === 2 && r?.status === 'True' && r.observedGeneration === o.metadata.generation
        && o.status.observedGeneration === o.metadata.generation ? o : undefined;
    }, 120_000);
    expect(er.status.replicas).toBe(2);
    const bound = Object.fromEntries((await claims()).map((p) => [p.metadata.name, [p.status.phase, p.spec.volumeName]]));
    expect(bound).toEqual({ 'data-queue-0': ['Bound', 'queue-pv-0'], 'data-queue-1': ['Bound', 'queue-pv-1'] });
    expect((await runningPods()).map((p: any) => p.metadata.name).sort()).toEqual(['queue-0', 'queue-1']);
  });
});
