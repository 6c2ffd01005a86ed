// Cluster-test helpers: a control plane (test/cluster/harness.ts), the CRDs and RBAC
// applied, and the operator as a child process running under the RBAC ServiceAccount.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, beforeEach } from 'vitest';
import { cacheBinDir, CLUSTER_BINARIES, findBinaries, clusterBinariesOrSkip, freePorts, startCluster, type Binaries, type Cluster } from '../cluster/harness.ts';
import { inCI } from '../support/tools.ts';
import { eventually } from '../support/eventually.ts';

export const repoRoot = path.resolve(import.meta.dirname, '../..');

/** The operator tests need no helm: accept a cluster cache that lacks only helm. */
function binaries(): Binaries | undefined {
  const found = findBinaries();
  if (found.binaries) return found.binaries;
  if (!inCI && found.missing.every((m) => m.name === 'helm')) {
    const b = Object.fromEntries(CLUSTER_BINARIES.map((n) => [n, path.join(cacheBinDir(), n)])) as Binaries;
    b.helm = '/bin/false';
    return b;
  }
  return clusterBinariesOrSkip('operator');
}

export interface OperatorCluster {
  available: boolean;
  get(): Cluster;
  /** kubeconfig of the mailfleet-operator ServiceAccount (deploy/rbac.yaml only). */
  operatorKubeconfig(): string;
}

/**
 * A rendered relay config as a test on the host runs it: the hand-off listener on loopback
 * (a free port, not 0.0.0.0:2526) and no peers (their names are the cluster's DNS).
 */
export function handoffOnLoopback<T extends { handoff?: { host?: string; port: number; peers?: string[]; onShutdown?: boolean } }>(config: T): T {
  return config.handoff ? { ...config, handoff: { ...config.handoff, host: '127.0.0.1', port: 0, peers: [], onShutdown: false } } : config;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export { eventually };

export function useOperatorCluster(): OperatorCluster {
  const bins = binaries();
  let cluster: Cluster | undefined;
  let kubeconfig = '';
  if (bins) {
    beforeAll(async () => {
      cluster = await startCluster({ binaries: bins, nodes: 2 });
      for (const f of fs.readdirSync(path.join(repoRoot, 'crds'))) await cluster.kubectl(['apply', '-f', path.join(repoRoot, 'crds', f)]);
      await cluster.kubectl(['create', 'namespace', 'mailfleet-system']);
      await cluster.kubectl(['apply', '-f', path.join(repoRoot, 'deploy/rbac.yaml')]);
      await cluster.kubectl(['wait', '--for=condition=Established', 'crd/emailrelays.mailfleet.io', 'crd/senderdomains.mailfleet.io', '--timeout=60s']);
      kubeconfig = await serviceAccountKubeconfig(cluster, 'mailfleet-system', 'mailfleet-operator');
    }, 240_000);
    afterAll(async () => { await cluster?.stop(); }, 30_000);
    beforeEach(({ onTestFailed }) => {
      onTestFailed(() => { if (cluster) console.error(`\n===== cluster logs =====\n${cluster.logs(30)}\n`); });
    });
  }
  return {
    available: !!bins,
    get() { if (!cluster) throw new Error('cluster not started'); return cluster; },
    operatorKubeconfig() { return kubeconfig; },
  };
}

/** A kubeconfig that authenticates as a ServiceAccount (a token from the API server), written into the cluster dir. */
export async function serviceAccountKubeconfig(cluster: Cluster, namespace: string, name: string): Promise<string> {
  const token = (await cluster.kubectl(['create', 'token', name, '-n', namespace, '--duration=2h'])).stdout.trim();
  const admin = fs.readFileSync(cluster.kubeconfigPath, 'utf8');
  const ca = /certificate-authority-data: (\S+)/.exec(admin)?.[1];
  const file = path.join(cluster.dir, `${namespace}.${name}.kubeconfig`);
  fs.writeFileSync(file, `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: '${cluster.server}', certificate-authority-data: ${ca}}}]
users: [{name: ${name}, user: {token: ${token}}}]
contexts: [{name: c, context: {cluster: c, user: ${name}}}]
current-context: c
`, { mode: 0o600 });
  return file;
}

export interface OperatorProcess {
  proc: ChildProcess;
  port: number;
  logs(): string;
  get(p: string): Promise<{ status: number; text: string }>;
  writes(): Promise<number>;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

export async function startOperatorProcess(kubeconfig: string, extra: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<OperatorProcess> {
  const [port] = await freePorts(1) as [number];
  const proc = spawn(process.execPath, [path.join(repoRoot, 'operator/main.ts'), '--kubeconfig', kubeconfig, '--http', `127.0.0.1:${port}`,
    '--lease-namespace', 'mailfleet-system', '--resync', '20', ...extra], {
    env: { ...process.env, MAILFLEET_LOG_LEVEL: 'info', ...env }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  proc.stdout?.on('data', (c: Buffer) => { out += c.toString(); if (out.length > 2_000_000) out = out.slice(-1_000_000); });
  proc.stderr?.on('data', (c: Buffer) => { out += c.toString(); });
  const get = async (p: string) => {
    const r = await fetch(`http://127.0.0.1:${port}${p}`);
    return { status: r.status, text: await r.text() };
  };
  await eventually('operator /healthz', async () => (await get('/healthz')).status === 200, 30_000);
  return {
    proc, port, get,
    logs: () => out,
    async writes() { return (JSON.parse((await get('/debug/writes')).text) as { writes: number }).writes; },
    async stop(signal = 'SIGTERM') {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      const exited = new Promise<void>((r) => proc.once('exit', () => r()));
      proc.kill(signal);
      await Promise.race([exited, sleep(15_000)]);
      if (proc.exitCode === null && proc.signalCode === null) { proc.kill('SIGKILL'); await exited; }
    },
  };
}

export async function getJson(c: Cluster, args: string[]): Promise<any> {
  return JSON.parse((await c.kubectl([...args, '-o', 'json'])).stdout);
}

export async function tryGetJson(c: Cluster, args: string[]): Promise<any | undefined> {
  const r = await c.kubectl([...args, '-o', 'json'], { check: false });
  return r.code === 0 ? JSON.parse(r.stdout) : undefined;
}

/** A status condition of an object by type (undefined when it has none yet). */
export const conditionOf = (o: any, type: string) => (o?.status?.conditions ?? []).find((c: any) => c.type === type);

/** A SenderDomain manifest. */
export const senderDomainObject = (ns: string, name: string, spec: Record<string, unknown>) =>
  ({ apiVersion: 'mailfleet.io/v1alpha1', kind: 'SenderDomain', metadata: { name, namespace: ns }, spec });

export const readyCondition = (o: any) => (o?.status?.conditions ?? []).find((c: any) => c.type === 'Ready');

/** Waits until an object is Ready for its current generation (status and condition agree). */
export function waitReady(c: Cluster, ns: string, kind: string, name: string, timeoutMs = 120_000): Promise<any> {
  return eventually(`${kind} ${name} Ready`, async () => {
    const o = await tryGetJson(c, ['get', kind, name, '-n', ns]);
    const r = readyCondition(o);
    return r?.status === 'True' && r.observedGeneration === o.metadata.generation && o.status.observedGeneration === o.metadata.generation ? o : undefined;
  }, timeoutMs);
}
