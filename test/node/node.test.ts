// The node tier's first step: a real node (node.ts: containerd, runc, CNI bridge, kubelet)
// joins the test control plane, a pod runs on it as a real container, and everything goes
// away again, leaving the machine's sysctls, iptables, links, mounts and cgroups as found.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, type Cluster } from '../cluster/harness.ts';
import { eventually } from '../support/eventually.ts';
import { podmanEnv } from '../image/podman.ts';
import { machineState, type MachineState } from './machine-state.ts';
import { NODE_IP, pidsInNetns, startNode, type RealNode } from './node.ts';
import { nodeTier } from './tier.ts';
import fs from 'node:fs';

const tier = nodeTier();

describe.skipIf(!tier)('a real node', { timeout: 300_000 }, () => {
  let cluster: Cluster;
  let node: RealNode | undefined;
  let before: MachineState;

  beforeAll(async () => {
    before = machineState();
    cluster = await startCluster({ binaries: tier!.binaries, nodes: 0 });
    node = await startNode({ cluster, kubelet: tier!.kubelet, images: [], podmanEnv: podmanEnv() });
  }, 300_000);
  afterAll(async () => {
    await node?.close();
    await cluster?.stop();
  }, 60_000);

  it('registers Ready and runs a pod as a real container', async () => {
    const n = (await cluster.request('GET', `/api/v1/nodes/${node!.name}`)).body;
    expect(n.status.addresses).toContainEqual({ type: 'InternalIP', address: NODE_IP });
    expect(n.status.nodeInfo.containerRuntimeVersion).toMatch(/^containerd:\/\//);
    await cluster.kubectl(['apply', '-f', '-'], { input: JSON.stringify({
      apiVersion: 'v1', kind: 'Pod', metadata: { name: 'hello', namespace: 'default' },
      spec: {
        automountServiceAccountToken: false,
        containers: [{ name: 'c', image: 'localhost/pause:local', imagePullPolicy: 'Never',
          command: ['/bin/busybox', 'sh', '-c', 'echo hello from $(/bin/busybox hostname); exec /bin/busybox sleep 3600'],
          securityContext: { runAsUser: 65532, runAsNonRoot: true, readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } } }],
      },
    }) });
    const pod = await eventually('pod hello Running', async () => {
      const p = (await cluster.request('GET', '/api/v1/namespaces/default/pods/hello')).body;
      return p?.status?.phase === 'Running' ? p : undefined;
    }, 120_000, { context: () => node!.logs() });
    expect(pod.status.podIP).toMatch(/^10\.244\.0\./);
    // a real process: its log through the API server, which dials the kubelet
    const log = await eventually('the pod log', async () => (await cluster.kubectl(['logs', 'hello', '-n', 'default'])).stdout, 30_000);
    expect(log).toContain('hello from hello');
    // reachable from the node: ping is not in busybox's rights here; a TCP connect is enough later
    await cluster.kubectl(['delete', 'pod', 'hello', '-n', 'default', '--grace-period=1', '--wait=true'], { timeoutMs: 90_000 });
  });

  it('leaves the machine as found', async () => {
    const link = fs.readlinkSync(node!.netns);
    await node!.close();
    node = undefined;
    expect(pidsInNetns(link)).toEqual([]);
    expect(machineState()).toEqual(before);
  });
});
