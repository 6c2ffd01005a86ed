// Scale-down 3→1 and deletion with mail queued, on a real control plane with real relay
// processes. Pods here are kwok's (scheduled, "Running", no containers), so the test plays
// the kubelet for them: it runs one relay process per pod with the config the operator
// rendered (ConfigMap and Secret, moved onto loopback: ports, data dir, peer addresses),
// writes each pod's annotations into that relay's downward-API file when they change, and
// tells the operator where each pod's HTTP port is (--test-only-pod-status-urls: the one
// seam, instead of the API server's pods/proxy, which refuses loopback pod addresses).
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { eventually, getJson, startOperatorProcess, tryGetJson, useOperatorCluster, type OperatorProcess } from './support.ts';
import { kubeletAnnotations, relayStatus, sendTo, subjects, writeLoopbackPodConfig } from './relay-pods.ts';
import { startSink, type Sink } from '../support/sink.ts';
import { spawnRelay, tempDir, type ChildRelay } from '../support/relay-harness.ts';
import { freePort } from '../support/ports.ts';

const cluster = useOperatorCluster();
const NS = 'drain';
const CLASS = 'manual';
const NAME = 'queue';
const cleanup: Array<() => unknown> = [];
let op: OperatorProcess | undefined;
afterAll(async () => {
  for (const f of cleanup.reverse()) await f();
  await op?.stop();
}, 60_000);

const apply = (obj: unknown) => cluster.get().kubectl(['apply', '-f', '-'], { input: JSON.stringify(obj) });
const volume = (name: string) => ({
  apiVersion: 'v1', kind: 'PersistentVolume', metadata: { name },
  spec: { capacity: { storage: '2Gi' }, accessModes: ['ReadWriteOnce'], storageClassName: CLASS, persistentVolumeReclaimPolicy: 'Retain', hostPath: { path: `/tmp/mailfleet-${name}` } },
});

interface Pod {
  ordinal: number;
  dir: string;
  smtpPort: number;
  httpPort: number;
  handoffPort: number;
  configFile: string;
  relay?: ChildRelay;
}

const status = (p: Pod) => relayStatus(p.httpPort);
const send = (p: Pod, subject: string) => sendTo(p.smtpPort, subject);

describe.skipIf(!cluster.available)('scale-down and deletion hand the queue over (real control plane, real relay processes)', () => {
  let sink: Sink;
  let accept = false;
  const pods: Pod[] = [];
  beforeEach(({ onTestFailed }) => onTestFailed(() => {
    const tail = (s: string) => s.split('\n').filter((l) => /drain|hand|finalizer|volume|error|warn/i.test(l)).slice(-40).join('\n');
    console.error(`===== operator =====\n${tail(op?.logs() ?? '')}`);
    for (const p of pods) console.error(`===== relay ${p.ordinal} =====\n${tail(p.relay?.output() ?? '')}`);
  }));
  const urlsFile = path.join(tempDir(), 'pod-status-urls.json');

  it('3→1: the leaving pods drain into pod 0; the StatefulSet shrinks and their volumes go only once their queues are empty; nothing lost', { timeout: 400_000 }, async () => {
    const c = cluster.get();
    sink = await startSink({ host: '127.0.0.23', tls: 'none', rcptReply: () => (accept ? undefined : { code: 451, message: '4.3.0 not yet' }) });
    cleanup.push(() => sink.close());
    await c.kubectl(['create', 'namespace', NS]);
    await apply({ apiVersion: 'storage.k8s.io/v1', kind: 'StorageClass', metadata: { name: CLASS }, provisioner: 'kubernetes.io/no-provisioner', volumeBindingMode: 'Immediate' });
    for (let i = 0; i < 3; i++) await apply(volume(`drain-pv-${i}`));
    for (let i = 0; i < 3; i++) {
      const dir = tempDir();
      pods.push({ ordinal: i, dir, smtpPort: await freePort(), httpPort: await freePort(), handoffPort: await freePort(), configFile: path.join(dir, 'relay.yaml') });
    }
    fs.writeFileSync(urlsFile, JSON.stringify(Object.fromEntries(pods.map((p) => [`${NS}/${NAME}-${p.ordinal}`, `http://127.0.0.1:${p.httpPort}`]))));
    op = await startOperatorProcess(cluster.operatorKubeconfig(), ['--test-only-pod-status-urls', urlsFile]);
    await apply({
      apiVersion: 'mailfleet.io/v1alpha1', kind: 'EmailRelay', metadata: { name: NAME, namespace: NS },
      spec: { replicas: 3, hostname: 'mail.drain.test', queue: { persistence: { enabled: true, size: '1Gi', storageClassName: CLASS } } },
    });
    await eventually('3 pods running, 3 claims bound', async () => {
      const list = await getJson(c, ['get', 'pods', '-n', NS, '-l', `app.kubernetes.io/instance=${NAME}`]);
      const pvcs = await getJson(c, ['get', 'pvc', '-n', NS]);
      return list.items.filter((p: any) => p.status.phase === 'Running').length === 3 && pvcs.items.filter((p: any) => p.status.phase === 'Bound').length === 3;
    }, 180_000);
    const er = await getJson(c, ['get', 'emailrelay', NAME, '-n', NS]);
    expect(er.metadata.finalizers).toContain('mailfleet.io/drain-queue');

    // What the kubelet would mount: the rendered config and the relay's Secret.
    const rendered = YAML.parse((await getJson(c, ['get', 'configmap', `${NAME}-config`, '-n', NS])).data['relay.yaml']);
    const secret = await getJson(c, ['get', 'secret', `${NAME}-secrets`, '-n', NS]);
    const token = Buffer.from(secret.data['fleet.token'], 'base64').toString();
    expect(rendered.handoff.peers).toEqual([0, 1, 2].map((i) => `${NAME}-${i}.${NAME}-headless.${NS}.svc:2526`));
    // On loopback: each pod's ports, data dir and files; the peers' DNS names resolved to their loopback ports.
    const peerAddress = (peer: string) => `127.0.0.1:${pods[Number(/-(\d+)\./.exec(peer)![1])]!.handoffPort}`;
    for (const p of pods) writeLoopbackPodConfig(rendered, token, p, sink, { peers: rendered.handoff.peers.map(peerAddress) });
    // The kubelet's part for the annotations: each pod's, into its relay's downward-API file.
    cleanup.push(kubeletAnnotations(c, NS, () => pods.map((p) => ({ pod: `${NAME}-${p.ordinal}`, dir: p.dir }))));
    const run = async (p: Pod) => {
      p.relay = await spawnRelay(p.configFile, { MAILFLEET_WATCH_INTERVAL_MS: '200' });
      cleanup.push(() => p.relay?.child.kill('SIGKILL'));
    };
    // Pods 1 and 2 run and take mail; pod 0 is not up yet, so nothing can be handed over for now.
    await run(pods[1]!);
    await run(pods[2]!);
    for (let i = 0; i < 10; i++) { await send(pods[1]!, `one-${i}`); await send(pods[2]!, `two-${i}`); }
    await eventually('20 messages queued on pods 1 and 2', async () => (await status(pods[1]!))?.queued === 10 && (await status(pods[2]!))?.queued === 10);

    await c.kubectl(['scale', 'emailrelay', NAME, '-n', NS, '--replicas=1']);
    // Each pod sees its annotation when its kubelet writes it: one that has not yet may take
    // a hand-off from one that has (as between real kubelets); both end up draining.
    await eventually('pods 1 and 2 draining', async () => (await status(pods[1]!))?.draining && (await status(pods[2]!))?.draining, 60_000);
    const waiting = await eventually('DrainingPods with the counts', async () => {
      const o = await getJson(c, ['get', 'emailrelay', NAME, '-n', NS]);
      const p = o.status?.conditions?.find((x: any) => x.type === 'Progressing');
      return p?.reason === 'DrainingPods' && /20 messages still queued/.test(p.message) ? p : undefined;
    }, 120_000);
    expect(waiting.message).toMatch(new RegExp(`^scale-down 3→1: [01]/2 leaving pods drained; 20 messages still queued on ${NAME}-[12] \\(\\d+\\)(, ${NAME}-2 \\(\\d+\\))?$`));
    // A hand-off between the two (one saw its request before the other) is counted on both
    // sides for the moment between the receiver's commit and the sender's removal: wait it out.
    await eventually('the 20 messages on pods 1 and 2', async () => ((await status(pods[1]!))?.queued ?? 0) + ((await status(pods[2]!))?.queued ?? 0) === 20, 30_000);
    expect((await fetch(`http://127.0.0.1:${pods[1]!.httpPort}/readyz`)).status).toBe(503);
    // The leaving pods still hold mail: the StatefulSet keeps them, their volumes stay.
    expect((await getJson(c, ['get', 'statefulset', NAME, '-n', NS])).spec.replicas).toBe(3);
    const claims = await getJson(c, ['get', 'pvc', '-n', NS]);
    expect(claims.items.filter((p: any) => !p.metadata.deletionTimestamp).map((p: any) => p.metadata.name).sort()).toEqual([`data-${NAME}-0`, `data-${NAME}-1`, `data-${NAME}-2`]);

    // Watch the volumes while pod 0 comes up and takes the queues: a leaving pod's claim may
    // start going only when that pod reports an empty queue.
    const violations: string[] = [];
    let watching = true;
    const watcher = (async () => {
      while (watching) {
        const list = await getJson(c, ['get', 'pvc', '-n', NS]);
        for (const i of [1, 2]) {
          const claim = list.items.find((p: any) => p.metadata.name === `data-${NAME}-${i}`);
          if (claim && !claim.metadata.deletionTimestamp) continue;
          const s = await status(pods[i]!);
          if (s && s.queued > 0) violations.push(`claim ${i} going while pod ${i} holds ${s.queued}`);
        }
        await new Promise((r) => setTimeout(r, 200));
      }
    })();
    await run(pods[0]!);
    await eventually('StatefulSet at 1, claims 1 and 2 gone', async () => {
      const sts = await getJson(c, ['get', 'statefulset', NAME, '-n', NS]);
      const names = (await getJson(c, ['get', 'pvc', '-n', NS])).items.map((p: any) => p.metadata.name);
      return sts.spec.replicas === 1 && !names.includes(`data-${NAME}-1`) && !names.includes(`data-${NAME}-2`);
    }, 180_000);
    watching = false;
    await watcher;
    expect(violations).toEqual([]);
    expect(await status(pods[0]!)).toMatchObject({ draining: false, queued: 20 });
    expect(await tryGetJson(c, ['get', 'pvc', `data-${NAME}-0`, '-n', NS])).toBeDefined();
    // The kubelet stops the processes of pods that are gone.
    for (const i of [1, 2]) pods[i]!.relay!.child.kill('SIGTERM');

    accept = true;
    await eventually('every message delivered', () => new Set(subjects(sink)).size === 20, 120_000);
    const got = subjects(sink);
    expect([...new Set(got)].sort()).toEqual([...Array.from({ length: 10 }, (_, i) => `one-${i}`), ...Array.from({ length: 10 }, (_, i) => `two-${i}`)].sort());
    // at-least-once: a copy twice only after a lost 250, which nothing here provokes
    expect(got).toHaveLength(20);
    const ready = await eventually('Ready at 1/1', async () => {
      const o = await getJson(c, ['get', 'emailrelay', NAME, '-n', NS]);
      return o.status?.conditions?.find((x: any) => x.type === 'Ready')?.status === 'True' ? o : undefined;
    }, 120_000);
    expect(ready.status.replicas).toBe(1);
  });

  it('deletion with mail queued waits (DrainingPods) until the queue is delivered, then the finalizer and the emptied volume go', { timeout: 240_000 }, async () => {
    const c = cluster.get();
    const p0 = pods[0]!;
    await eventually('pod 0 delivered everything', async () => (await status(p0))?.queued === 0, 60_000);
    accept = false;
    for (let i = 0; i < 3; i++) await send(p0, `late-${i}`);
    await eventually('3 queued on pod 0', async () => (await status(p0))?.queued === 3);

    await c.kubectl(['delete', 'emailrelay', NAME, '-n', NS, '--wait=false']);
    const held = await eventually('deletion waits: DrainingPods', async () => {
      const o = await tryGetJson(c, ['get', 'emailrelay', NAME, '-n', NS]);
      const p = o?.status?.conditions?.find((x: any) => x.type === 'Progressing');
      return o?.metadata.deletionTimestamp && p?.reason === 'DrainingPods' && /3 messages still queued/.test(p.message) ? p : undefined;
    }, 120_000);
    expect(held.message).toBe(`deletion: 0/1 leaving pods drained; 3 messages still queued on ${NAME}-0 (3)`);
    // the last pod stops taking mail, and delivers what it has itself (there is no one left to hand it to)
    await eventually('pod 0 draining (once its kubelet wrote the annotation)', async () => (await status(p0))?.draining, 30_000);
    expect(await status(p0)).toMatchObject({ draining: true, queued: 3 });
    expect(await tryGetJson(c, ['get', 'statefulset', NAME, '-n', NS])).toBeDefined();

    // The queue empties by delivery: the finalizer lets the deletion go, and the emptied volume goes too.
    accept = true;
    await eventually('EmailRelay gone once pod 0 delivered', async () => !(await tryGetJson(c, ['get', 'emailrelay', NAME, '-n', NS])), 120_000);
    expect(subjects(sink).filter((x) => x.startsWith('late-')).sort()).toEqual(['late-0', 'late-1', 'late-2']);
    expect((await status(p0))?.queued).toBe(0);
    await eventually('the emptied volume going', async () => {
      const claim = await tryGetJson(c, ['get', 'pvc', `data-${NAME}-0`, '-n', NS]);
      return !claim || !!claim.metadata.deletionTimestamp;
    }, 120_000);
  });

  it('deletion of a relay whose pod cannot be asked waits; mailfleet.io/skip-drain lets it through and keeps the volume', { timeout: 240_000 }, async () => {
    const c = cluster.get();
    await apply(volume('drain-pv-3'));
    await apply({
      apiVersion: 'mailfleet.io/v1alpha1', kind: 'EmailRelay', metadata: { name: 'keep', namespace: NS },
      spec: { replicas: 1, hostname: 'keep.drain.test', queue: { persistence: { enabled: true, size: '1Gi', storageClassName: CLASS } } },
    });
    await eventually('keep-0 running with its claim bound and the finalizer set', async () => {
      const pod = await tryGetJson(c, ['get', 'pod', 'keep-0', '-n', NS]);
      const claim = await tryGetJson(c, ['get', 'pvc', 'data-keep-0', '-n', NS]);
      const er = await tryGetJson(c, ['get', 'emailrelay', 'keep', '-n', NS]);
      return pod?.status?.phase === 'Running' && claim?.status?.phase === 'Bound' && er?.metadata?.finalizers?.includes('mailfleet.io/drain-queue');
    }, 180_000);
    // No relay process answers for keep-0 (as for a pod that crashes): its queue is unknown, so the deletion waits.
    await c.kubectl(['delete', 'emailrelay', 'keep', '-n', NS, '--wait=false']);
    const held = await eventually('deletion waits: no progress from keep-0', async () => {
      const o = await tryGetJson(c, ['get', 'emailrelay', 'keep', '-n', NS]);
      const p = o?.status?.conditions?.find((x: any) => x.type === 'Progressing');
      return p?.reason === 'DrainingPods' && /no progress from keep-0/.test(p.message) ? p : undefined;
    }, 120_000);
    expect(held.message).toMatch(/^deletion: 0\/1 leaving pods drained; no progress from keep-0/);
    expect((await getJson(c, ['get', 'pod', 'keep-0', '-n', NS])).metadata.annotations?.['mailfleet.io/drain-requested']).toBeTruthy();

    await c.kubectl(['annotate', 'emailrelay', 'keep', '-n', NS, 'mailfleet.io/skip-drain=true']);
    await eventually('EmailRelay keep gone', async () => !(await tryGetJson(c, ['get', 'emailrelay', 'keep', '-n', NS])), 120_000);
    const claim = await getJson(c, ['get', 'pvc', 'data-keep-0', '-n', NS]);
    expect(claim.metadata.deletionTimestamp).toBeUndefined(); // kept, for `mailfleet queue import`
  });
});
