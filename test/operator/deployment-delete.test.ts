// Deleting an EmailRelay without a persistent queue (a Deployment, emptyDir queues), on a
// real control plane with a real relay process: every pod goes at once, with no peer left
// to hand a queue to, so the operator asks each pod to drain (the annotation), holds the
// finalizer — and with it the Deployment and its pods — until each reports an empty queue
// on /status, then lets the deletion go. skip-drain lets it go at once (the mail is lost).
// As in scale-down.test.ts the test plays the kubelet: it runs the pod's relay process from
// the rendered config on loopback, writes the pod's annotations into its downward-API file,
// and tells the operator where the pod's /status is (--test-only-pod-status-urls).
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { eventually, getJson, startOperatorProcess, tryGetJson, useOperatorCluster, type OperatorProcess } from './support.ts';
import { kubeletAnnotations, relayStatus, sendTo, subjects, writeLoopbackPodConfig } from './relay-pods.ts';
import { startSink } from '../support/sink.ts';
import { spawnRelay, tempDir, type ChildRelay } from '../support/relay-harness.ts';
import { freePort } from '../support/ports.ts';

const cluster = useOperatorCluster();
const NS = 'deploy-delete';
const cleanup: Array<() => unknown> = [];
let op: OperatorProcess | undefined;
let relay: ChildRelay | undefined;
afterAll(async () => {
  for (const f of cleanup.reverse()) await f();
  await op?.stop();
}, 60_000);

const apply = (obj: unknown) => cluster.get().kubectl(['apply', '-f', '-'], { input: JSON.stringify(obj) });
const emailRelay = (name: string) => ({
  apiVersion: 'mailfleet.io/v1alpha1', kind: 'EmailRelay', metadata: { name, namespace: NS },
  spec: { replicas: 1, hostname: `${name}.deploy-delete.test`, queue: { persistence: { enabled: false } } },
});
const progressing = async (name: string) => (await tryGetJson(cluster.get(), ['get', 'emailrelay', name, '-n', NS]))?.status?.conditions?.find((x: any) => x.type === 'Progressing');

/** The relay's one running pod (its name comes from the ReplicaSet), once the finalizer is on. */
async function runningPod(name: string): Promise<any> {
  const c = cluster.get();
  return eventually(`${name}: one pod running, finalizer set`, async () => {
    const er = await tryGetJson(c, ['get', 'emailrelay', name, '-n', NS]);
    const pods = (await getJson(c, ['get', 'pods', '-n', NS, '-l', `app.kubernetes.io/instance=${name}`])).items.filter((p: any) => p.status.phase === 'Running' && !p.metadata.deletionTimestamp);
    return er?.metadata?.finalizers?.includes('mailfleet.io/drain-queue') && pods.length === 1 ? pods[0] : undefined;
  }, 180_000);
}

describe.skipIf(!cluster.available)('deleting a Deployment EmailRelay waits for its pods\' queues (real control plane, real relay process)', () => {
  beforeEach(({ onTestFailed }) => onTestFailed(() => {
    const tail = (s: string) => s.split('\n').filter((l) => /drain|finalizer|error|warn/i.test(l)).slice(-40).join('\n');
    console.error(`===== operator =====\n${tail(op?.logs() ?? '')}\n===== relay =====\n${tail(relay?.output() ?? '')}`);
  }));
  const urlsFile = path.join(tempDir(), 'pod-status-urls.json');

  it('held by the finalizer (Deployment and pod stay, the pod asked to drain) while the pod reports mail queued; goes once it reports empty', { timeout: 400_000 }, async () => {
    const c = cluster.get();
    let accept = false;
    const sink = await startSink({ host: '127.0.0.24', tls: 'none', rcptReply: () => (accept ? undefined : { code: 451, message: '4.3.0 not yet' }) });
    cleanup.push(() => sink.close());
    await c.kubectl(['create', 'namespace', NS]);
    fs.writeFileSync(urlsFile, '{}');
    op = await startOperatorProcess(cluster.operatorKubeconfig(), ['--test-only-pod-status-urls', urlsFile]);
    await apply(emailRelay('web'));
    const pod = await runningPod('web');
    const podName: string = pod.metadata.name;
    expect(pod.metadata.ownerReferences[0]).toMatchObject({ kind: 'ReplicaSet' });

    // What the kubelet would mount: the rendered config (the annotations file in it) and the Secret.
    const rendered = YAML.parse((await getJson(c, ['get', 'configmap', 'web-config', '-n', NS])).data['relay.yaml']);
    expect(rendered.handoff).toMatchObject({ annotationsFile: '/var/run/mailfleet/podinfo/annotations', onShutdown: true });
    const dep = await getJson(c, ['get', 'deployment', 'web', '-n', NS]);
    expect(dep.spec.template.spec.containers[0].volumeMounts).toContainEqual({ name: 'podinfo', mountPath: '/var/run/mailfleet/podinfo', readOnly: true });
    const token = Buffer.from((await getJson(c, ['get', 'secret', 'web-secrets', '-n', NS])).data['fleet.token'], 'base64').toString();
    const dir = tempDir();
    const [smtpPort, httpPort, handoffPort] = [await freePort(), await freePort(), await freePort()];
    // the only pod: no peer (the headless Service's name would resolve to nobody ready)
    const configFile = writeLoopbackPodConfig(rendered, token, { dir, smtpPort, httpPort, handoffPort }, sink, { peers: [], onShutdown: false });
    fs.writeFileSync(urlsFile, JSON.stringify({ [`${NS}/${podName}`]: `http://127.0.0.1:${httpPort}` }));
    cleanup.push(kubeletAnnotations(c, NS, () => [{ pod: podName, dir }]));
    relay = await spawnRelay(configFile, { MAILFLEET_WATCH_INTERVAL_MS: '200' });
    cleanup.push(() => relay?.child.kill('SIGKILL'));
    for (let i = 0; i < 3; i++) await sendTo(smtpPort, `web-${i}`);
    await eventually('3 queued on the pod', async () => (await relayStatus(httpPort))?.queued === 3);

    await c.kubectl(['delete', 'emailrelay', 'web', '-n', NS, '--wait=false']);
    const held = await eventually('deletion waits: DrainingPods with the pod\'s queue', async () => {
      const p = await progressing('web');
      return p?.reason === 'DrainingPods' && /3 messages still queued/.test(p.message) ? p : undefined;
    }, 120_000);
    expect(held.message).toBe(`deletion: 0/1 leaving pods drained; 3 messages still queued on ${podName} (3)`);
    const asked = await getJson(c, ['get', 'pod', podName, '-n', NS]);
    expect(asked.metadata.annotations?.['mailfleet.io/drain-requested']).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    expect(asked.metadata.deletionTimestamp).toBeUndefined();
    // the pod stops taking mail and keeps its queue, delivering it itself
    await eventually('the pod draining (once its kubelet wrote the annotation)', async () => (await relayStatus(httpPort))?.draining === true, 30_000);
    expect(await relayStatus(httpPort)).toMatchObject({ draining: true, queued: 3 });
    const er = await getJson(c, ['get', 'emailrelay', 'web', '-n', NS]);
    expect(er.metadata.deletionTimestamp).toBeDefined();
    expect(er.metadata.finalizers).toContain('mailfleet.io/drain-queue');
    const stays = await getJson(c, ['get', 'deployment', 'web', '-n', NS]);
    expect(stays.metadata.deletionTimestamp).toBeUndefined();

    // The queue empties by delivery: the finalizer goes, and the Deployment with the EmailRelay.
    accept = true;
    await eventually('EmailRelay gone once the pod delivered', async () => !(await tryGetJson(c, ['get', 'emailrelay', 'web', '-n', NS])), 120_000);
    expect(subjects(sink).sort()).toEqual(['web-0', 'web-1', 'web-2']);
    expect(await relayStatus(httpPort)).toMatchObject({ draining: true, queued: 0 });
    await eventually('the Deployment garbage-collected', async () => {
      const d = await tryGetJson(c, ['get', 'deployment', 'web', '-n', NS]);
      return !d || !!d.metadata.deletionTimestamp;
    }, 120_000);
    expect(op!.logs()).toContain('finalizer removed');
  });

  it('a pod that cannot be asked holds the deletion; mailfleet.io/skip-drain lets it go at once, and the Event says the queued mail is lost', { timeout: 300_000 }, async () => {
    const c = cluster.get();
    await apply(emailRelay('lost'));
    const pod = await runningPod('lost');
    // a pod someone else labelled like the relay's (no ReplicaSet of its Deployment controls it): neither asked nor waited for
    await apply({
      apiVersion: 'v1', kind: 'Pod', metadata: { name: 'impostor', namespace: NS, labels: { 'app.kubernetes.io/name': 'mailfleet-relay', 'app.kubernetes.io/instance': 'lost', 'pod-template-hash': 'x' } },
      spec: { containers: [{ name: 'c', image: 'example.invalid/none' }] },
    });
    // no relay process answers for the relay's pod (as for one that crashed): its queue is unknown
    await c.kubectl(['delete', 'emailrelay', 'lost', '-n', NS, '--wait=false']);
    const held = await eventually('deletion waits: no progress', async () => {
      const p = await progressing('lost');
      return p?.reason === 'DrainingPods' && p.message.includes('no progress from') ? p : undefined;
    }, 120_000);
    expect(held.message).toBe(`deletion: 0/1 leaving pods drained; no progress from ${pod.metadata.name}`);
    expect((await getJson(c, ['get', 'pod', pod.metadata.name, '-n', NS])).metadata.annotations?.['mailfleet.io/drain-requested']).toBeTruthy();
    expect(await tryGetJson(c, ['get', 'deployment', 'lost', '-n', NS])).toBeDefined();
    expect((await getJson(c, ['get', 'pod', 'impostor', '-n', NS])).metadata.annotations?.['mailfleet.io/drain-requested']).toBeUndefined();

    await c.kubectl(['annotate', 'emailrelay', 'lost', '-n', NS, 'mailfleet.io/skip-drain=true']);
    await eventually('EmailRelay lost gone', async () => !(await tryGetJson(c, ['get', 'emailrelay', 'lost', '-n', NS])), 120_000);
    const events = await getJson(c, ['get', 'events', '-n', NS, '--field-selector', 'involvedObject.name=lost,reason=DrainSkipped']);
    expect(events.items).toHaveLength(1);
    expect(events.items[0]).toMatchObject({ type: 'Warning', involvedObject: { kind: 'EmailRelay', name: 'lost' } });
    expect(events.items[0].message).toContain('mail still queued on them is lost with their emptyDir volumes');
  });
});
