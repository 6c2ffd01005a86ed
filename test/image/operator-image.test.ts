// The operator image (localhost/mailfleet:dev) run the way the chart's Deployment runs it,
// against the test control plane: the container is made from the Deployment `helm template`
// renders (pod-runner.ts: uid/gid/fsGroup, read-only root, no capabilities, no-new-privileges,
// args, env, the /tmp emptyDir), with what a kubelet adds for its ServiceAccount (the token,
// CA and namespace files, KUBERNETES_SERVICE_HOST/PORT). It runs in a network namespace of
// the test's own, reaching the API server through api-bridge.ts. The chart's RBAC and CRDs are
// applied as rendered, so the operator works with exactly the rights the chart grants.
// It reconciles an EmailRelay and a SenderDomain to Ready, serves its probes and metrics,
// and on SIGTERM exits 0 and hands back its Lease.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clusterBinariesOrSkip, startCluster, type Cluster } from '../cluster/harness.ts';
import { chartDir, find, KUBE_VERSION, parseObjects, type K8sObject } from '../chart/helpers.ts';
import { eventually } from '../support/eventually.ts';
import { bridgeApi, type ApiBridge } from './api-bridge.ts';
import { createNetNs, type NetNs } from './netns.ts';
import { IMAGE, ensureImage, imageTierAvailable, podman, runDetached, uniqueName, type Container } from './podman.ts';
import { podRun, type PodRun } from './pod-runner.ts';

const available = imageTierAvailable('image');
const bins = available ? clusterBinariesOrSkip('image') : undefined;
const NS = 'mailfleet-system';
const APP_NS = 'mail';
const SA_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

describe.skipIf(!available || !bins)('the operator image against the test control plane', { timeout: 300_000 }, () => {
  let cluster: Cluster;
  let dir: string;
  let ns: NetNs;
  let bridge: ApiBridge;
  let objects: K8sObject[];
  let pod: PodRun;
  let op: Container | undefined;

  const getJson = async (args: string[]): Promise<any> => JSON.parse((await cluster.kubectl([...args, '-o', 'json'])).stdout);
  const tryJson = async (args: string[]): Promise<any> => {
    const r = await cluster.kubectl([...args, '-o', 'json'], { check: false });
    return r.code === 0 ? JSON.parse(r.stdout) : undefined;
  };
  const ready = (o: any) => {
    const c = (o?.status?.conditions ?? []).find((x: any) => x.type === 'Ready');
    return c?.status === 'True' && c.observedGeneration === o.metadata.generation ? o : undefined;
  };
  const http = async (p: string) => {
    const port = pod.probes.readinessProbe!.port;
    const r = await ns.exec('curl', ['-s', '-w', '\n%{http_code}', '--max-time', '5', `http://127.0.0.1:${port}${p}`]);
    const i = r.stdout.lastIndexOf('\n');
    return { status: Number(r.stdout.slice(i + 1)), body: r.stdout.slice(0, i) };
  };
  const context = () => `\n--- operator ---\n${opLogs}\n--- cluster ---\n${cluster.logs(20)}`;
  let opLogs = '';
  const refreshLogs = async () => { if (op) opLogs = (await op.logs()).split('\n').slice(-40).join('\n'); };

  beforeAll(async () => {
    ensureImage();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mailfleet-operator-image-'));
    cluster = await startCluster({ binaries: bins!, nodes: 1 });
    await cluster.kubectl(['create', 'namespace', NS]);
    await cluster.kubectl(['create', 'namespace', APP_NS]);
    const r = await cluster.helm(['template', 'mailfleet', chartDir, '-n', NS, '--kube-version', KUBE_VERSION, '--include-crds',
      '--set', `image.repository=${IMAGE.split(':')[0]}`, '--set', `image.tag=${IMAGE.split(':')[1]}`, '--set', 'image.pullPolicy=Never']);
    objects = parseObjects(r.stdout);
    // Everything the chart installs except the Deployment, whose pod this test is.
    const rest = objects.filter((o) => o.kind !== 'Deployment');
    await cluster.kubectl(['apply', '-f', '-'], { input: rest.map((o) => JSON.stringify(o)).join('\n') });
    await cluster.kubectl(['wait', '--for=condition=Established', 'crd/emailrelays.mailfleet.io', 'crd/senderdomains.mailfleet.io', '--timeout=60s']);

    const deployment = find(objects, 'Deployment');
    const spec = deployment.spec.template.spec;
    // What the kubelet mounts for automountServiceAccountToken: a bound token of the chart's ServiceAccount.
    expect(spec.automountServiceAccountToken).toBe(true);
    const saDir = path.join(dir, 'serviceaccount');
    fs.mkdirSync(saDir);
    const token = (await cluster.kubectl(['create', 'token', spec.serviceAccountName, '-n', NS, '--duration=1h'])).stdout.trim();
    const ca = /certificate-authority-data: (\S+)/.exec(fs.readFileSync(cluster.kubeconfigPath, 'utf8'))![1]!;
    fs.writeFileSync(path.join(saDir, 'token'), token);
    fs.writeFileSync(path.join(saDir, 'ca.crt'), Buffer.from(ca, 'base64'));
    fs.writeFileSync(path.join(saDir, 'namespace'), NS);
    fs.chmodSync(saDir, 0o755);

    ns = await createNetNs();
    const apiPort = new URL(cluster.server).port;
    // Same port as on the machine: the `kubernetes` Service's endpoint is 127.0.0.1:<port>.
    bridge = await bridgeApi({ nsPath: ns.path, server: cluster.server, listens: [`127.0.0.1:${apiPort}`], dir });
    const podName = 'mailfleet-operator-0';
    pod = podRun({
      workload: deployment, containerName: 'operator', objects: [], dir, podName, netns: ns.path,
      extra: ['-v', `${saDir}:${SA_DIR}:ro`, '-e', 'KUBERNETES_SERVICE_HOST=127.0.0.1', '-e', `KUBERNETES_SERVICE_PORT=${apiPort}`],
    });
  }, 400_000);

  afterAll(async () => {
    await op?.remove();
    await bridge?.close();
    await ns?.close();
    await cluster?.stop();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  it('runs hardened as the chart declares it', () => {
    expect(pod.user.uid).toBe(65532);
    expect(pod.readOnlyRoot).toBe(true);
    expect(pod.noNewPrivileges).toBe(true);
    expect(pod.capDrop).toEqual(['ALL']);
    expect(pod.args).toContain(IMAGE);
    expect(pod.args.slice(pod.args.indexOf(IMAGE) + 1)[0]).toBe('operator');
  });

  it('starts, becomes ready, and reconciles an EmailRelay and a SenderDomain', async () => {
    op = await runDetached(uniqueName('mailfleet-operator'), pod.args);
    await eventually('the operator /healthz and /readyz', async () => {
      await refreshLogs();
      return (await http('/healthz')).status === 200 && (await http('/readyz')).status === 200;
    }, 120_000, { context });
    // It leads through the chart's Lease in its own namespace.
    const lease = await eventually('the Lease held by the pod', async () => {
      const l = await tryJson(['get', 'lease', 'mailfleet', '-n', NS]);
      return l?.spec?.holderIdentity ? l : undefined;
    }, 60_000, { context });
    expect(lease.spec.holderIdentity).toContain('mailfleet-operator-0');

    await cluster.kubectl(['apply', '-n', APP_NS, '-f', '-'], { input: JSON.stringify({
      apiVersion: 'mailfleet.io/v1alpha1', kind: 'EmailRelay', metadata: { name: 'edge' },
      spec: { hostname: 'mail.example.net', replicas: 1, queue: { persistence: { enabled: false } } },
    }) });
    await cluster.kubectl(['apply', '-n', APP_NS, '-f', '-'], { input: JSON.stringify({
      apiVersion: 'mailfleet.io/v1alpha1', kind: 'SenderDomain', metadata: { name: 'sender' },
      spec: { domain: 'sender.test', relayRef: { name: 'edge' }, allowedSenders: ['noreply'] },
    }) });
    const relay = await eventually('EmailRelay edge Ready', async () => { await refreshLogs(); return ready(await tryJson(['get', 'emailrelay', 'edge', '-n', APP_NS])); }, 150_000, { context });
    const sd = await eventually('SenderDomain sender Ready', async () => { await refreshLogs(); return ready(await tryJson(['get', 'senderdomain', 'sender', '-n', APP_NS])); }, 120_000, { context });
    expect(relay.status.observedGeneration).toBe(relay.metadata.generation);
    // What it wrote: the relay's StatefulSet runs this very image (MAILFLEET_IMAGE from the chart).
    const workloads = (await getJson(['get', 'statefulsets,deployments', '-n', APP_NS])).items as any[];
    const owned = workloads.filter((w) => (w.metadata.ownerReferences ?? []).some((r: any) => r.kind === 'EmailRelay' && r.name === 'edge'));
    expect(owned).toHaveLength(1);
    expect(owned[0].spec.template.spec.containers.find((c: any) => c.name === 'relay').image).toBe(IMAGE);
    expect(sd.status.dkim.activeSelectors.length).toBeGreaterThan(0);
    const creds = await getJson(['get', 'secret', sd.status.credentialsSecret, '-n', APP_NS]);
    expect(Buffer.from(creds.data.username, 'base64').toString()).toBe('sender.test');
    // and counted it
    const metrics = await http('/metrics');
    expect(metrics.status).toBe(200);
    expect(metrics.body).toMatch(/^mailfleet_operator_\w+/m);
  });

  it('exits 0 on SIGTERM and releases its Lease', async () => {
    expect(op).toBeDefined();
    // podman stop sends the image's stop signal (SIGTERM) and waits the pod's grace period.
    const stopped = await podman(['stop', op!.name], { timeoutMs: 60_000 });
    expect(stopped.code, stopped.stderr).toBe(0);
    const code = await op!.wait();
    const logs = (await op!.logs()).split('\n').slice(-30).join('\n');
    expect(code, logs).toBe(0);
    const lease = await getJson(['get', 'lease', 'mailfleet', '-n', NS]);
    expect(lease.spec.holderIdentity ?? '', logs).toBe('');
  });
});
