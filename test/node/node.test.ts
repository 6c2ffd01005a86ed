// Real pods: a real node (node.ts: containerd, runc, the CNI bridge, a kubelet, in namespaces
// of the test's own) joins the test control plane; the chart's operator Deployment and an
// EmailRelay's StatefulSet run as real containers from localhost/mailfleet:dev (imported from
// podman storage into the node's containerd, never pulled); kube-proxy (iptables mode, inside
// the node's network namespace) serves the Services.
//
// End to end: helm install, an EmailRelay and a SenderDomain reconciled, the relay pod Ready by
// its probes on a PersistentVolume (its process as declared: uid, no capabilities,
// no-new-privileges, seccomp, read-only root), SMTP with STARTTLS+AUTH through the relay Service's
// ClusterIP, delivered DKIM-signed to a sink on the node, metrics scraped from the
// pod, a pod deleted with mail queued and that mail delivered by its successor from the same
// volume. Then everything goes away, and the machine's sysctls, iptables, links, mounts and
// cgroups are as they were (machine-state.ts).
//
// One file on purpose: one kubelet at a time owns the machine's top-level kubepods cgroups.
import fs from 'node:fs';
import path from 'node:path';
import { dkimVerify } from 'mailauth';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startCluster, type Cluster } from '../cluster/harness.ts';
import { chartDir } from '../chart/helpers.ts';
import { eventually } from '../support/eventually.ts';
import { metricValue } from '../support/relay-harness.ts';
import { IMAGE, ensureImage, podmanEnv } from '../image/podman.ts';
import { machineState, type MachineState } from './machine-state.ts';
import { NODE_IP, pidsInNetns, startNode, type RealNode } from './node.ts';
import { nodeTier } from './tier.ts';

const tier = nodeTier();
const OP_NS = 'mailfleet-system';
const NS = 'mail';
const DOMAIN = 'sender.test';
const SINK_PORT = 2525;

describe.skipIf(!tier)('real pods on a real node', { timeout: 300_000 }, () => {
  let cluster: Cluster;
  let node: RealNode | undefined;
  let before: MachineState;
  let sink: ReturnType<RealNode['spawn']> | undefined;
  let sinkDir: string;
  let pvDir: string;

  const json = async (args: string[]): Promise<any> => JSON.parse((await cluster.kubectl([...args, '-o', 'json'])).stdout);
  const tryJson = async (args: string[]): Promise<any> => {
    const r = await cluster.kubectl([...args, '-o', 'json'], { check: false });
    return r.code === 0 ? JSON.parse(r.stdout) : undefined;
  };
  const apply = (obj: unknown, ns?: string) => cluster.kubectl(['apply', ...(ns ? ['-n', ns] : []), '-f', '-'], { input: JSON.stringify(obj) });
  const podReady = (p: any) => (p?.status?.conditions ?? []).some((c: any) => c.type === 'Ready' && c.status === 'True');
  const context = () => `\n${node?.logs(30) ?? ''}\n${cluster.logs(10)}`;

  const startSink = async () => {
    sink = node!.spawn('smtp-sink', ['-u', 'nobody', '-d', `${sinkDir}/msg.`, `${NODE_IP}:${SINK_PORT}`, '16']);
    await eventually('the sink to listen', async () => (await node!.exec('bash', ['-c', `exec 3<>/dev/tcp/${NODE_IP}/${SINK_PORT}`])).code === 0, 20_000);
  };
  const stopSink = async () => {
    if (!sink || sink.exitCode !== null || sink.signalCode !== null) { sink = undefined; return; }
    const gone = new Promise((r) => sink!.once('exit', r));
    sink.kill('SIGKILL');
    await gone;
    sink = undefined;
  };
  const sinkFiles = () => fs.readdirSync(sinkDir).filter((f) => f.startsWith('msg.')).map((f) => fs.readFileSync(path.join(sinkDir, f)));

  beforeAll(async () => {
    ensureImage();
    before = machineState();
    cluster = await startCluster({ binaries: tier!.binaries, nodes: 0 });
    node = await startNode({ cluster, kubelet: tier!.kubelet, kubeProxy: tier!.kubeProxy, images: [IMAGE], podmanEnv: podmanEnv() });
    console.log(`[node] start-up phases (s): ${JSON.stringify(node.timings)}`);
    sinkDir = path.join(node.dir, 'sink');
    fs.mkdirSync(sinkDir, { mode: 0o777 });
    fs.chmodSync(sinkDir, 0o777); // the sink writes as nobody
    pvDir = path.join(node.dir, 'pv', 'data-edge-0');
    await startSink();
  }, 15 * 60_000);
  afterAll(async () => {
    await stopSink();
    await node?.close();
    await cluster?.stop();
  }, 120_000);
  beforeEach(({ onTestFailed }) => onTestFailed(() => console.error(context())));

  it('the node registers Ready and runs a pod as a real container', async () => {
    const n = (await cluster.request('GET', `/api/v1/nodes/${node!.name}`)).body;
    expect(n.status.addresses).toContainEqual({ type: 'InternalIP', address: NODE_IP });
    expect(n.status.nodeInfo.containerRuntimeVersion).toMatch(/^containerd:\/\//);
    await apply({
      apiVersion: 'v1', kind: 'Pod', metadata: { name: 'hello' },
      spec: {
        automountServiceAccountToken: false,
        containers: [{ name: 'c', image: 'localhost/pause:local', imagePullPolicy: 'Never',
          command: ['/bin/busybox', 'sh', '-c', 'echo hello from $(/bin/busybox hostname); exec /bin/busybox sleep 3600'],
          securityContext: { runAsUser: 65532, runAsNonRoot: true, readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } } }],
      },
    }, 'default');
    const pod = await eventually('pod hello Running', async () => {
      const p = await tryJson(['get', 'pod', 'hello', '-n', 'default']);
      return p?.status?.phase === 'Running' ? p : undefined;
    }, 120_000);
    expect(pod.status.podIP).toMatch(/^10\.244\.0\./);
    // a real process: its output through the API server, which dials the kubelet
    const log = await eventually('the pod log', async () => (await cluster.kubectl(['logs', 'hello', '-n', 'default'])).stdout, 30_000);
    expect(log).toContain('hello from hello');
    await cluster.kubectl(['delete', 'pod', 'hello', '-n', 'default', '--grace-period=1', '--wait=true'], { timeoutMs: 90_000 });
  });

  it('helm install: the operator Deployment runs as a real container and becomes Ready by its probes', async () => {
    await cluster.kubectl(['create', 'namespace', OP_NS]);
    const r = await cluster.helm(['install', 'mailfleet', chartDir, '-n', OP_NS, '--set', `image.repository=${IMAGE.split(':')[0]}`,
      '--set', `image.tag=${IMAGE.split(':')[1]}`, '--set', 'image.pullPolicy=Never', '--set', 'replicaCount=1', '--wait', '--timeout', '240s'], { timeoutMs: 300_000 });
    expect(r.code).toBe(0);
    const pods = (await json(['get', 'pods', '-n', OP_NS, '-l', 'app.kubernetes.io/component=operator'])).items as any[];
    expect(pods).toHaveLength(1);
    const op = pods[0];
    expect(op.spec.nodeName).toBe(node!.name);
    expect(podReady(op)).toBe(true);
    const cs = op.status.containerStatuses[0];
    expect(cs.ready).toBe(true);
    expect(cs.started).toBe(true);
    expect(cs.imageID).toMatch(/sha256:/);
    expect(cs.state.running).toBeDefined();
    // it talks to the API server from inside the pod (ServiceAccount token, the `kubernetes` Service)
    const lease = await eventually('the operator to hold its Lease', async () => {
      const l = await tryJson(['get', 'lease', 'mailfleet', '-n', OP_NS]);
      return l?.spec?.holderIdentity ? l : undefined;
    }, 60_000);
    expect(lease.spec.holderIdentity).toContain(op.metadata.name);
  }, 400_000);

  it('an EmailRelay runs Ready on its volume; SMTP through its Service is delivered DKIM-signed; metrics from the pod', async () => {
    await cluster.kubectl(['create', 'namespace', NS]);
    // a hand-made PersistentVolume for the claim (the cluster has no provisioner), as a
    // local-path provisioner would make it: a directory on the node, open to the pod's user
    fs.mkdirSync(pvDir, { recursive: true, mode: 0o777 });
    fs.chmodSync(pvDir, 0o777);
    await apply({
      apiVersion: 'v1', kind: 'PersistentVolume', metadata: { name: 'mail-data-edge-0' },
      spec: {
        capacity: { storage: '1Gi' }, accessModes: ['ReadWriteOnce'], persistentVolumeReclaimPolicy: 'Retain', storageClassName: '',
        claimRef: { namespace: NS, name: 'data-edge-0' }, hostPath: { path: pvDir, type: 'Directory' },
      },
    });
    await apply({
      apiVersion: 'mailfleet.io/v1alpha1', kind: 'EmailRelay', metadata: { name: 'edge' },
      spec: {
        replicas: 1,
        queue: { persistence: { enabled: true, size: '1Gi' }, retrySchedule: ['2s'] },
        drainTimeout: '5s',
        delivery: { mode: 'smarthost', smarthosts: [{ name: 'sink', host: NODE_IP, port: SINK_PORT, tls: 'none', requireTls: false }] },
      },
    }, NS);
    await apply({
      apiVersion: 'mailfleet.io/v1alpha1', kind: 'SenderDomain', metadata: { name: 'sender' },
      spec: { domain: DOMAIN, relayRef: { name: 'edge' }, allowedSenders: ['noreply'] },
    }, NS);
    const pod = await eventually('relay pod edge-0 Ready', async () => {
      const p = await tryJson(['get', 'pod', 'edge-0', '-n', NS]);
      return podReady(p) ? p : undefined;
    }, 240_000);
    expect(pod.spec.nodeName).toBe(node!.name);
    // The relay process as the kubelet and runc started it from the StatefulSet's pod template.
    const declared = pod.spec.containers.find((c: any) => c.name === 'relay');
    const uid = String(declared.securityContext?.runAsUser ?? pod.spec.securityContext.runAsUser);
    const cid = pod.status.containerStatuses.find((c: any) => c.name === 'relay').containerID.replace(/^containerd:\/\//, '');
    const task = (await node!.ctr(['tasks', 'ls'])).split('\n').find((l) => l.startsWith(cid));
    const pid = Number(task?.split(/\s+/)[1]);
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const field = (k: string) => new RegExp(`^${k}:\\s*(.*)$`, 'm').exec(status)?.[1]?.split(/\s+/) ?? [];
    expect(field('Uid')).toEqual(Array(4).fill(uid));
    expect(field('CapEff')).toEqual(['0000000000000000']);
    expect(field('NoNewPrivs')).toEqual(['1']);
    expect(field('Seccomp')).toEqual(['2']);
    const root = fs.readFileSync(`/proc/${pid}/mountinfo`, 'utf8').split('\n').map((l) => l.split(' ')).find((f) => f[4] === '/');
    expect(root?.[5]?.split(',')).toContain('ro');
    const relay = await eventually('EmailRelay Ready', async () => {
      const o = await tryJson(['get', 'emailrelay', 'edge', '-n', NS]);
      return (o?.status?.conditions ?? []).some((c: any) => c.type === 'Ready' && c.status === 'True') ? o : undefined;
    }, 120_000);
    expect(relay.metadata.name).toBe('edge');
    expect((await json(['get', 'pvc', 'data-edge-0', '-n', NS])).status.phase).toBe('Bound');

    const sd = await eventually('SenderDomain Ready', async () => {
      const o = await tryJson(['get', 'senderdomain', 'sender', '-n', NS]);
      return (o?.status?.conditions ?? []).some((c: any) => c.type === 'Ready' && c.status === 'True') ? o : undefined;
    }, 120_000);
    const secret = await json(['get', 'secret', sd.status.credentialsSecret, '-n', NS]);
    const creds = Object.fromEntries(Object.entries(secret.data as Record<string, string>).map(([k, v]) => [k, Buffer.from(v, 'base64').toString()]));

    // The relay Service selects the pod: its EndpointSlice lists the pod's address, ready.
    const svc = await json(['get', 'service', 'edge', '-n', NS]);
    const submission = svc.spec.ports.find((p: any) => p.port === Number(creds.port));
    expect(submission).toBeDefined();
    const slices = (await json(['get', 'endpointslices', '-n', NS, '-l', 'kubernetes.io/service-name=edge'])).items as any[];
    const endpoints = slices.flatMap((s) => (s.endpoints ?? []).map((e: any) => ({ ...e, ports: s.ports })));
    const ep = endpoints.find((e) => e.addresses.includes(pod.status.podIP));
    expect(ep?.conditions?.ready).toBe(true);
    expect(svc.spec.clusterIP).toMatch(/^10\.0\.0\./);

    // through the Service: its ClusterIP, which kube-proxy's rules (in the node's namespace) send to the pod
    const swaks = (subject: string) => node!.exec('swaks', [
      '--server', svc.spec.clusterIP, '--port', String(submission.port), '--helo', 'client.test',
      '--from', `noreply@${DOMAIN}`, '--to', 'someone@dest.test', '--header', `Subject: ${subject}`, '--body', `body of ${subject}\n`,
      '--tls', '--auth', 'PLAIN', '--auth-user', creds.username!, '--auth-password', creds.password!, '--timeout', '30',
    ], { timeoutMs: 60_000 });
    const sent = await swaks('through the node');
    expect(sent.code, sent.stdout + sent.stderr).toBe(0);
    const msg = await eventually('the message at the sink', () => sinkFiles().find((b) => b.includes('body of through the node')), 90_000);
    const records = Object.fromEntries((sd.status.dnsRecords as any[]).filter((r) => r.purpose === 'dkim').map((r) => [r.name.replace(/\.$/, ''), r.value]));
    const verdict = await dkimVerify(msg, {
      resolver: async (name: string) => {
        const v = records[name];
        if (!v) throw Object.assign(new Error(`no TXT for ${name}`), { code: 'ENOTFOUND' });
        return [[v]];
      },
    });
    expect(verdict.results.map((x) => [x.signingDomain, x.status?.result])).toEqual([[DOMAIN, 'pass']]);

    // metrics, scraped from the pod's metrics port as Prometheus would
    const port = pod.spec.containers.find((c: any) => c.name === 'relay').ports.find((p: any) => p.name === 'metrics').containerPort;
    const metrics = (await node!.exec('curl', ['-s', '--max-time', '5', `http://${pod.status.podIP}:${port}/metrics`])).stdout;
    expect(metricValue(metrics, 'mailfleet_messages_delivered_total')).toBeGreaterThanOrEqual(1);
    expect(metricValue(metrics, 'mailfleet_auth_successes_total')).toBeGreaterThanOrEqual(1);
  }, 600_000);

  it('a relay pod deleted with mail queued: its successor delivers that mail from the same volume', async () => {
    await stopSink();
    const pod = await json(['get', 'pod', 'edge-0', '-n', NS]);
    const secretName = (await json(['get', 'senderdomain', 'sender', '-n', NS])).status.credentialsSecret;
    const secret = await json(['get', 'secret', secretName, '-n', NS]);
    const creds = Object.fromEntries(Object.entries(secret.data as Record<string, string>).map(([k, v]) => [k, Buffer.from(v, 'base64').toString()]));
    const svc = await json(['get', 'service', 'edge', '-n', NS]);
    const sent = await node!.exec('swaks', [
      '--server', svc.spec.clusterIP, '--port', creds.port!, '--helo', 'client.test', '--from', `noreply@${DOMAIN}`, '--to', 'someone@dest.test',
      '--header', 'Subject: queued', '--body', 'body of queued\n', '--tls', '--auth', 'PLAIN', '--auth-user', creds.username!, '--auth-password', creds.password!,
    ], { timeoutMs: 60_000 });
    expect(sent.code, sent.stdout + sent.stderr).toBe(0);
    // the queue is on the volume: the committed message is a file under the PV's directory
    const msgDir = path.join(pvDir, 'queue', 'msg');
    const queued = () => (fs.existsSync(msgDir) ? fs.readdirSync(msgDir) : []);
    await eventually('the message queued on the volume', () => queued().length > 0, 30_000);

    await cluster.kubectl(['delete', 'pod', 'edge-0', '-n', NS, '--wait=true'], { timeoutMs: 120_000 });
    expect(queued().length).toBeGreaterThan(0);
    await startSink();
    const next = await eventually('a new edge-0 Ready', async () => {
      const p = await tryJson(['get', 'pod', 'edge-0', '-n', NS]);
      return p && p.metadata.uid !== pod.metadata.uid && podReady(p) ? p : undefined;
    }, 240_000);
    expect(next.spec.volumes.find((v: any) => v.name === 'data').persistentVolumeClaim.claimName).toBe('data-edge-0');
    await eventually('the queued message delivered by the new pod', () => sinkFiles().some((b) => b.includes('body of queued')), 120_000);
    await eventually('the queue on the volume empty', () => queued().length === 0, 60_000);
  }, 600_000);

  it('leaves the machine as found', async () => {
    await stopSink();
    const link = fs.readlinkSync(node!.netns);
    await node!.close();
    console.log(`[node] close phases (s): ${JSON.stringify(node!.closeTimings)}`);
    node = undefined;
    expect(pidsInNetns(link)).toEqual([]);
    expect(machineState()).toEqual(before);
  });
});
