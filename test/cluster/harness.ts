// A real Kubernetes control plane for tests: etcd, kube-apiserver, kube-controller-manager,
// kube-scheduler, and kwok driving a few fake nodes, all on 127.0.0.1 with free ports.
//
//   const bins = clusterBinariesOrSkip('cluster');        // skip loudly / throw in CI
//   const cluster = await startCluster({ binaries: bins }); // ~10-20 s
//   await cluster.kubectl(['get', 'nodes']);
//   await cluster.stop();                                  // no process, no temp dir left
//
// Children are started with setpriv --pdeathsig, so they die with the process that started
// them even when it is SIGKILLed; a later startCluster() also removes stale cluster dirs (and
// kills their leftovers) whose owner process is gone. See docs/cluster-tests.md.
import { execFile, execFileSync, spawn } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { inCI } from '../support/tools.ts';

const here = path.dirname(fileURLToPath(import.meta.url));

export const CLUSTER_BINARIES = [
  'etcd',
  'kube-apiserver',
  'kube-controller-manager',
  'kube-scheduler',
  'kubectl',
  'kwok',
  'helm',
] as const;
export type BinaryName = (typeof CLUSTER_BINARIES)[number];
export type Binaries = Record<BinaryName, string>;

/** The binaries that setup-envtest's KUBEBUILDER_ASSETS layout provides. */
const ENVTEST_BINARIES: readonly BinaryName[] = ['etcd', 'kube-apiserver', 'kubectl'];

// ---------------------------------------------------------------------------------------------
// Versions and binary lookup
// ---------------------------------------------------------------------------------------------

/** The pinned versions from versions.env (shared with build.sh). */
export function pinnedVersions(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of fs.readFileSync(path.join(here, 'versions.env'), 'utf8').split('\n')) {
    const m = /^([A-Z0-9_]+)=(\S+)\s*$/.exec(line);
    if (m?.[1] && m[2]) out[m[1]] = m[2];
  }
  return out;
}

function versionOf(name: BinaryName): string {
  const v = pinnedVersions();
  const key =
    name === 'etcd' ? 'ETCD_VERSION' : name === 'kwok' ? 'KWOK_VERSION' : name === 'helm' ? 'HELM_VERSION' : 'K8S_VERSION';
  const version = v[key];
  if (!version) throw new Error(`versions.env has no ${key}`);
  return version;
}

/** ${MAILFLEET_CACHE:-$HOME/.cache/mailfleet} */
export function cacheRoot(): string {
  return process.env.MAILFLEET_CACHE || path.join(os.homedir(), '.cache', 'mailfleet');
}

/** Where build.sh puts the binaries: <cache>/k8s/<K8S_VERSION>/bin */
/**
 * Where `cluster:up` keeps each named cluster (kubeconfig, logs, pids): one directory per
 * name, so one person's (or one CI job's) cluster:down never stops another's cluster. The
 * binaries stay shared in cacheBinDir().
 */
export function namedClustersDir(): string {
  return path.join(cacheRoot(), 'clusters');
}

/** Is a process of the cluster in `dir` still running? */
export function clusterDirAlive(dir: string): boolean {
  return readPids(dir).some((p) => pidBelongsTo(p.pid, dir));
}

export function cacheBinDir(): string {
  return path.join(cacheRoot(), 'k8s', versionOf('kube-apiserver'), 'bin');
}

/** MAILFLEET_KUBE_APISERVER for kube-apiserver, etc. */
export function envVarFor(name: BinaryName): string {
  return `MAILFLEET_${name.toUpperCase().replace(/-/g, '_')}`;
}

function isExecutable(p: string): boolean {
  try {
    fs.accessSync(p, fs.constants.X_OK);
    return fs.statSync(p).isFile();
  } catch {
    return false;
  }
}

export interface BinaryLookup {
  /** All binaries, when every one was found; undefined otherwise. */
  binaries: Binaries | undefined;
  /** Names not found, with the reason. */
  missing: { name: BinaryName; why: string }[];
  /** Where each found binary came from. */
  sources: Partial<Record<BinaryName, string>>;
}

/**
 * Resolves each binary in this order: its own env var (MAILFLEET_ETCD, MAILFLEET_KUBE_APISERVER,
 * MAILFLEET_KUBE_CONTROLLER_MANAGER, MAILFLEET_KUBE_SCHEDULER, MAILFLEET_KUBECTL, MAILFLEET_KWOK,
 * MAILFLEET_HELM), then KUBEBUILDER_ASSETS/<name>, then the build.sh cache (with a version stamp).
 */
export function findBinaries(): BinaryLookup {
  const found: Partial<Binaries> = {};
  const sources: Partial<Record<BinaryName, string>> = {};
  const missing: { name: BinaryName; why: string }[] = [];
  const cacheDir = cacheBinDir();
  for (const name of CLUSTER_BINARIES) {
    const fromEnv = process.env[envVarFor(name)];
    if (fromEnv) {
      if (isExecutable(fromEnv)) {
        found[name] = fromEnv;
        sources[name] = envVarFor(name);
      } else missing.push({ name, why: `${envVarFor(name)}=${fromEnv} is not an executable file` });
      continue;
    }
    const assets = process.env.KUBEBUILDER_ASSETS;
    if (assets && isExecutable(path.join(assets, name))) {
      found[name] = path.join(assets, name);
      sources[name] = 'KUBEBUILDER_ASSETS';
      continue;
    }
    const cached = path.join(cacheDir, name);
    if (isExecutable(cached)) {
      let stamp = '';
      try {
        stamp = fs.readFileSync(path.join(cacheDir, `.${name}.version`), 'utf8').trim();
      } catch {
        /* no stamp */
      }
      if (stamp === versionOf(name)) {
        found[name] = cached;
        sources[name] = 'cache';
      } else missing.push({ name, why: `${cached} is stamped ${stamp || '(none)'}, want ${versionOf(name)}` });
      continue;
    }
    missing.push({
      name,
      why: `not in ${envVarFor(name)}${ENVTEST_BINARIES.includes(name) ? ', KUBEBUILDER_ASSETS' : ''} or ${cacheDir}`,
    });
  }
  return { binaries: missing.length === 0 ? (found as Binaries) : undefined, missing, sources };
}

/**
 * Like haveTools() for this tier: the binaries when all are there; otherwise a loud warning and
 * undefined on a person's machine, and an Error in CI (a CI that silently skipped is a lie).
 */
export function clusterBinariesOrSkip(tier = 'cluster'): Binaries | undefined {
  const { binaries, missing } = findBinaries();
  if (binaries) return binaries;
  const msg =
    `[${tier}] missing control-plane binaries: ${missing.map((m) => m.name).join(', ')}\n` +
    missing.map((m) => `    ${m.name}: ${m.why}`).join('\n') +
    `\n  build them with \`npm run cluster:build\` (needs Go) or point KUBEBUILDER_ASSETS / MAILFLEET_* at them` +
    ` (docs/cluster-tests.md)`;
  if (inCI) throw new Error(`${msg}\n  CI=true forbids skipping a tier`);
  console.warn(`\n*** SKIPPING TIER ${tier}: ${msg} ***\n`);
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------------------------

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Free TCP ports on 127.0.0.1: all held open at once, then released. */
export async function freePorts(n: number): Promise<number[]> {
  const servers: net.Server[] = [];
  try {
    const ports: number[] = [];
    for (let i = 0; i < n; i++) {
      const s = net.createServer();
      servers.push(s);
      await new Promise<void>((res, rej) => {
        s.once('error', rej);
        s.listen(0, '127.0.0.1', () => res());
      });
      ports.push((s.address() as net.AddressInfo).port);
    }
    return ports;
  } finally {
    await Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
  }
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

function hasSetprivPdeathsig(): boolean {
  try {
    return execFileSync('setpriv', ['--help'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).includes(
      '--pdeathsig',
    );
  } catch {
    return false;
  }
}
let setprivCache: boolean | undefined;
const setprivOk = () => (setprivCache ??= hasSetprivPdeathsig());

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Is pid a process of ours for cluster dir `dir`? (Its command line names a file in the dir;
 * with the separator, so cluster "a" never claims the processes of cluster "ab".)
 */
function pidBelongsTo(pid: number, dir: string): boolean {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(dir + path.sep);
  } catch {
    return false;
  }
}

function readPids(dir: string): { pid: number; name: string }[] {
  try {
    return fs
      .readFileSync(path.join(dir, 'pids'), 'utf8')
      .split('\n')
      .map((l) => l.trim().split(/\s+/))
      .filter((p) => p.length === 2 && /^\d+$/.test(p[0] ?? ''))
      .map(([pid, name]) => ({ pid: Number(pid), name: name ?? '' }));
  } catch {
    return [];
  }
}

function signalGroup(pid: number, sig: NodeJS.Signals): void {
  // every child is a process-group leader (spawned detached): take its whole group
  try {
    process.kill(-pid, sig);
  } catch {
    try {
      process.kill(pid, sig);
    } catch {
      /* gone */
    }
  }
}

/**
 * Stops every process recorded in `dir`/pids (only those whose command line still names `dir`,
 * so a recycled pid is never hit): SIGTERM, then SIGKILL after `graceMs` (default 1.5 s: the
 * state is throwaway, and kube-apiserver/etcd take 6 s+ to shut down gracefully). Then removes `dir`
 * unless keepDir. Usable from another process (cluster:down, stale cleanup).
 */
export async function stopClusterDir(dir: string, opts: { graceMs?: number; keepDir?: boolean } = {}): Promise<void> {
  const ours = readPids(dir).filter((p) => pidBelongsTo(p.pid, dir));
  for (const p of ours) signalGroup(p.pid, 'SIGTERM');
  const deadline = Date.now() + (opts.graceMs ?? 1500);
  while (ours.some((p) => pidBelongsTo(p.pid, dir)) && Date.now() < deadline) await sleep(50);
  for (const p of ours) if (pidBelongsTo(p.pid, dir)) signalGroup(p.pid, 'SIGKILL');
  const hardDeadline = Date.now() + 5000;
  while (ours.some((p) => pidBelongsTo(p.pid, dir)) && Date.now() < hardDeadline) await sleep(50);
  if (!opts.keepDir) fs.rmSync(dir, { recursive: true, force: true });
}

/** Synchronous last-resort version for process.on('exit'). */
function killClusterDirSync(dir: string, keepDir: boolean): void {
  for (const p of readPids(dir)) if (pidBelongsTo(p.pid, dir)) signalGroup(p.pid, 'SIGKILL');
  if (!keepDir) {
    try {
      fs.rmSync(dir, { recursive: true, force: true });
    } catch {
      /* best effort */
    }
  }
}

const TEMP_PREFIX = 'mailfleet-cluster-';

/** Removes temp cluster dirs (and kills their processes) whose owner process is gone. */
export async function cleanupStaleClusters(): Promise<string[]> {
  const cleaned: string[] = [];
  let entries: string[] = [];
  try {
    entries = fs.readdirSync(os.tmpdir()).filter((e) => e.startsWith(TEMP_PREFIX));
  } catch {
    return cleaned;
  }
  for (const e of entries) {
    const dir = path.join(os.tmpdir(), e);
    let owner = NaN;
    try {
      const text = fs.readFileSync(path.join(dir, 'owner'), 'utf8').trim();
      if (text === 'detached') continue; // outlives its starter on purpose: stopClusterDir() it
      owner = Number(text);
    } catch {
      // no owner file: a dir still being set up, or a broken one; only take it when old
      try {
        if (Date.now() - fs.statSync(dir).mtimeMs < 10 * 60_000) continue;
      } catch {
        continue;
      }
    }
    if (Number.isFinite(owner) && pidAlive(owner)) continue;
    await stopClusterDir(dir, { graceMs: 1000 });
    cleaned.push(dir);
  }
  return cleaned;
}

interface HttpResult {
  status: number;
  body: string;
}

function httpsRequest(
  url: string,
  opts: { method?: string; body?: string; ca?: Buffer; cert?: Buffer; key?: Buffer; insecure?: boolean; timeoutMs?: number },
): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      url,
      {
        method: opts.method ?? 'GET',
        ca: opts.ca,
        cert: opts.cert,
        key: opts.key,
        rejectUnauthorized: !opts.insecure,
        agent: false,
        timeout: opts.timeoutMs ?? 5000,
        headers: opts.body ? { 'content-type': 'application/json', accept: 'application/json' } : { accept: 'application/json' },
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`timeout: ${url}`)));
    req.on('error', reject);
    if (opts.body) req.write(opts.body);
    req.end();
  });
}

/** Plain-HTTP GET (etcd's /health). */
function httpGet(url: string, timeoutMs = 2000): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error(`timeout: ${url}`)));
    req.on('error', reject);
  });
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  /** Written to the command's stdin (e.g. a manifest for `kubectl apply -f -`). */
  input?: string;
  /** When false, a non-zero exit is returned instead of thrown. Default true. */
  check?: boolean;
  timeoutMs?: number;
}

function run(bin: string, args: string[], env: NodeJS.ProcessEnv, opts: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      bin,
      args,
      { env, timeout: opts.timeoutMs ?? 60_000, maxBuffer: 64 * 1024 * 1024, encoding: 'utf8' },
      (err, stdout, stderr) => {
        const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : 1) : 0;
        const result = { code, stdout, stderr };
        if (code !== 0 && opts.check !== false) {
          reject(new Error(`${path.basename(bin)} ${args.join(' ')} exited ${code}: ${stderr.trim() || stdout.trim()}`));
        } else resolve(result);
      },
    );
    if (opts.input !== undefined) child.stdin?.end(opts.input);
    else child.stdin?.end();
  });
}

function tail(file: string, lines: number): string {
  try {
    const text = fs.readFileSync(file, 'utf8');
    const all = text.split('\n');
    return all.slice(Math.max(0, all.length - lines - 1)).join('\n');
  } catch {
    return '(no log)';
  }
}

// ---------------------------------------------------------------------------------------------
// The cluster
// ---------------------------------------------------------------------------------------------

export interface ClusterOptions {
  /** Binaries to use; default findBinaries() (throws when some are missing). */
  binaries?: Binaries;
  /** Number of kwok fake nodes (kwok-node-0..n-1). Default 3. */
  nodes?: number;
  /** Use this directory (created; must not hold a running cluster) instead of a fresh temp dir. */
  dir?: string;
  /**
   * Leave the processes running when this process exits (for `cluster:up`): no parent-death
   * signal, no exit handler. stop() still works, and stopClusterDir(dir) from another process.
   */
  detached?: boolean;
  /** Whole start-up budget. Default 180 s (two clusters starting at once on 2 busy cores). */
  startTimeoutMs?: number;
  /** Keep the dir (logs) after stop() or a failed start; also MAILFLEET_KEEP_CLUSTER=1. */
  keepDir?: boolean;
}

export interface Cluster {
  /** Holds certs, kubeconfigs, etcd data, logs/<component>.log, pids. */
  dir: string;
  /** Admin kubeconfig (client cert in group system:masters). */
  kubeconfigPath: string;
  /** https://127.0.0.1:<port> */
  server: string;
  /** Names of the kwok nodes. */
  nodes: string[];
  binaries: Binaries;
  /** Env for child tools: KUBECONFIG, and HELM_*_HOME inside dir (your ~ is not touched). */
  env: NodeJS.ProcessEnv;
  /** Runs kubectl against the cluster. Throws on non-zero exit unless check: false. */
  kubectl(args: string[], opts?: RunOptions): Promise<RunResult>;
  /** Runs helm against the cluster. */
  helm(args: string[], opts?: RunOptions): Promise<RunResult>;
  /** Raw API request as the admin, e.g. request('GET', '/api/v1/nodes'). Body is parsed JSON. */
  request(method: string, apiPath: string, body?: unknown): Promise<{ status: number; body: any }>;
  /** Last `lines` lines of every component log, for printing when a test fails. */
  logs(lines?: number): string;
  /** Pids of the component processes. */
  pids(): number[];
  /** Stops every process and removes dir (unless keepDir). Idempotent. */
  stop(): Promise<void>;
}

interface Proc {
  name: string;
  pid: number;
  exited?: string;
}

const COMPONENTS = ['etcd', 'kube-apiserver', 'kube-controller-manager', 'kube-scheduler', 'kwok'] as const;

// Controllers kube-controller-manager runs: the workload and lifecycle ones tests rely on.
// Not node-lifecycle (kwok nodes could be marked unhealthy and their pods evicted when the
// machine is busy), not node-ipam / cloud / attach-detach / certificate controllers.
// There is no dynamic volume provisioner: a claim binds only to a PersistentVolume you create.
const CONTROLLERS = [
  'garbage-collector-controller',
  'namespace-controller',
  'deployment-controller',
  'replicaset-controller',
  'statefulset-controller',
  'daemonset-controller',
  'job-controller',
  'cronjob-controller',
  'ttl-after-finished-controller',
  'replicationcontroller-controller',
  'pod-garbage-collector-controller',
  'disruption-controller',
  'resourcequota-controller',
  'serviceaccount-controller',
  'serviceaccount-token-controller',
  'root-ca-certificate-publisher-controller',
  'clusterrole-aggregation-controller',
  'endpoints-controller',
  'endpointslice-controller',
  'endpointslice-mirroring-controller',
  // static PersistentVolumes bind to claims; claims and volumes in use are protected
  'persistentvolume-binder-controller',
  'persistentvolume-protection-controller',
  'persistentvolumeclaim-protection-controller',
];

function kubeconfigYaml(server: string, user: string, caPem: Buffer, certPem: Buffer, keyPem: Buffer): string {
  const b64 = (b: Buffer) => b.toString('base64');
  return `apiVersion: v1
kind: Config
clusters:
- name: mailfleet-test
  cluster:
    server: ${server}
    certificate-authority-data: ${b64(caPem)}
users:
- name: ${user}
  user:
    client-certificate-data: ${b64(certPem)}
    client-key-data: ${b64(keyPem)}
contexts:
- name: mailfleet-test
  context:
    cluster: mailfleet-test
    user: ${user}
current-context: mailfleet-test
`;
}

/** CA, apiserver serving cert, client certs, service-account key pair; all in dir/pki. */
function makePki(dir: string): void {
  const pki = path.join(dir, 'pki');
  fs.mkdirSync(pki, { recursive: true });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl(['req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '3650', '-subj', '/CN=mailfleet-test-ca'], pki);
  const sign = (name: string, subj: string, ext: string) => {
    fs.writeFileSync(path.join(pki, `${name}.ext`), ext);
    openssl(['req', '-new', ...ec, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subj], pki);
    openssl(
      ['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-set_serial', `0x${randomBytes(12).toString('hex')}`,
        '-days', '3650', '-extfile', `${name}.ext`, '-out', `${name}.crt`],
      pki,
    );
  };
  const server = [
    'IP:127.0.0.1', 'IP:10.0.0.1', 'DNS:localhost', 'DNS:kubernetes', 'DNS:kubernetes.default',
    'DNS:kubernetes.default.svc', 'DNS:kubernetes.default.svc.cluster.local',
  ];
  sign('apiserver', '/CN=kube-apiserver',
    `basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=${server.join(',')}\n`);
  // one serving cert for the other components' secure ports too
  const client = 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n';
  sign('admin', '/O=system:masters/CN=mailfleet-admin', client);
  sign('controller-manager', '/CN=system:kube-controller-manager', client);
  sign('scheduler', '/CN=system:kube-scheduler', client);
  sign('kwok', '/O=system:masters/CN=kwok-controller', client);
  const sa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  fs.writeFileSync(path.join(pki, 'sa.key'), sa.privateKey.export({ type: 'pkcs8', format: 'pem' }));
  fs.writeFileSync(path.join(pki, 'sa.pub'), sa.publicKey.export({ type: 'spki', format: 'pem' }));
  for (const f of fs.readdirSync(pki)) if (f.endsWith('.csr') || f.endsWith('.ext') || f.endsWith('.srl')) fs.rmSync(path.join(pki, f));
}

function nodeManifest(name: string): unknown {
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: {
      name,
      annotations: { 'kwok.x-k8s.io/node': 'fake', 'node.alpha.kubernetes.io/ttl': '0' },
      labels: {
        'kubernetes.io/arch': 'amd64',
        'kubernetes.io/os': 'linux',
        'kubernetes.io/hostname': name,
        'node-role.kubernetes.io/agent': '',
        type: 'kwok',
      },
    },
    status: {
      capacity: { cpu: '16', memory: '64Gi', pods: '110' },
      allocatable: { cpu: '16', memory: '64Gi', pods: '110' },
      nodeInfo: { architecture: 'amd64', operatingSystem: 'linux', kubeletVersion: 'fake', kubeProxyVersion: 'fake' },
    },
  };
}

/**
 * Starts a control plane with kwok fake nodes and waits until it is usable: API ready, default
 * service account present, nodes Ready. Retries with new ports when a port was taken meanwhile.
 */
export async function startCluster(opts: ClusterOptions = {}): Promise<Cluster> {
  const binaries = opts.binaries ?? findBinaries().binaries;
  if (!binaries) {
    const missing = findBinaries().missing.map((m) => `${m.name} (${m.why})`);
    throw new Error(`cluster binaries missing: ${missing.join('; ')}; run npm run cluster:build`);
  }
  if (!opts.detached) await cleanupStaleClusters();
  let lastError: unknown;
  for (let attempt = 1; attempt <= 3; attempt++) {
    try {
      return await startOnce(binaries, opts);
    } catch (e) {
      lastError = e;
      if (!(e instanceof RetryableStartError)) throw e;
    }
  }
  throw lastError;
}

/** A start that failed for a reason unrelated to what is tested, worth one more try. */
class RetryableStartError extends Error {}

async function startOnce(binaries: Binaries, opts: ClusterOptions): Promise<Cluster> {
  const t0 = Date.now();
  const deadline = t0 + (opts.startTimeoutMs ?? 180_000);
  const keepDir = opts.keepDir ?? process.env.MAILFLEET_KEEP_CLUSTER === '1';
  let dir: string;
  if (opts.dir) {
    dir = path.resolve(opts.dir);
    if (clusterDirAlive(dir)) throw new Error(`${dir} holds a running cluster`);
    fs.rmSync(dir, { recursive: true, force: true });
    fs.mkdirSync(dir, { recursive: true });
  } else {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), TEMP_PREFIX));
  }
  fs.writeFileSync(path.join(dir, 'owner'), opts.detached ? 'detached\n' : `${process.pid}\n`);
  const logDir = path.join(dir, 'logs');
  fs.mkdirSync(logDir);
  const procs: Proc[] = [];
  let stopped = false;
  const onExit = () => {
    if (!stopped) killClusterDirSync(dir, keepDir);
  };
  if (!opts.detached) process.on('exit', onExit);

  const logs = (lines = 40) =>
    procs
      .map((p) => `----- ${p.name} (pid ${p.pid}${p.exited ? `, ${p.exited}` : ''}) ${path.join(logDir, `${p.name}.log`)} -----\n${tail(path.join(logDir, `${p.name}.log`), lines)}`)
      .join('\n');

  const stop = async () => {
    if (stopped) return;
    stopped = true;
    process.removeListener('exit', onExit);
    await stopClusterDir(dir, { keepDir });
  };

  const usePdeathsig = !opts.detached && setprivOk();
  const launch = (name: (typeof COMPONENTS)[number], args: string[], extraEnv: NodeJS.ProcessEnv = {}): Proc => {
    const bin = binaries[name];
    const fd = fs.openSync(path.join(logDir, `${name}.log`), 'a');
    const [cmd, argv] = usePdeathsig ? ['setpriv', ['--pdeathsig', 'KILL', '--', bin, ...args]] : [bin, args];
    const child = spawn(cmd, argv, {
      cwd: dir,
      detached: true, // own process group: stop() signals the group
      stdio: ['ignore', fd, fd],
      env: { ...process.env, ...extraEnv },
    });
    fs.closeSync(fd);
    if (child.pid === undefined) throw new Error(`could not start ${name} (${bin})`);
    const proc: Proc = { name, pid: child.pid };
    fs.appendFileSync(path.join(dir, 'pids'), `${child.pid} ${name}\n`);
    child.on('exit', (code, sig) => (proc.exited = sig ? `killed by ${sig}` : `exited ${code}`));
    child.on('error', (e) => (proc.exited = `failed: ${e.message}`));
    child.unref();
    procs.push(proc);
    return proc;
  };

  const fail = async (what: string): Promise<never> => {
    const text = `${what}\n${logs(60)}`;
    const portClash = /address already in use/i.test(text);
    // kwok v0.8.0 (KWOK_VERSION) sometimes dies at start with "fatal error: concurrent map
    // writes" in easycel's type registry (its CEL stages are set up in parallel): a race in
    // kwok, not in what a test exercises, so it gets the same retry as a port clash.
    const kwokLog = path.join(logDir, 'kwok.log');
    const kwokText = fs.existsSync(kwokLog) ? fs.readFileSync(kwokLog, 'utf8') : ''; // the whole log: the goroutine dump outgrows a tail
    const kwokRace = /fatal error: concurrent map writes/.test(kwokText) && /easycel/.test(kwokText);
    await stop();
    const where = keepDir ? ` (kept ${dir})` : '';
    if (portClash || kwokRace) throw new RetryableStartError(`${portClash ? 'port clash' : 'kwok start-up race'}, retrying: ${what}`);
    throw new Error(`${text}${where}`);
  };

  /** Polls check() until it returns true, failing early if a component died. */
  const waitFor = async (what: string, check: () => Promise<boolean>, watch: Proc[]) => {
    let lastErr = '';
    while (Date.now() < deadline) {
      const dead = watch.find((p) => p.exited);
      if (dead) await fail(`${dead.name} ${dead.exited} while waiting for ${what}`);
      try {
        if (await check()) return;
      } catch (e) {
        lastErr = (e as Error).message;
      }
      await sleep(200);
    }
    await fail(`timed out after ${Math.round((Date.now() - t0) / 1000)}s waiting for ${what}${lastErr ? ` (last error: ${lastErr})` : ''}`);
  };

  try {
    makePki(dir);
    const pki = (f: string) => path.join(dir, 'pki', f);
    const ca = fs.readFileSync(pki('ca.crt'));
    const [etcdPort, peerPort, apiPort, kcmPort, schedPort, kwokPort] = (await freePorts(6)) as [number, number, number, number, number, number];
    const server = `https://127.0.0.1:${apiPort}`;
    const writeKubeconfig = (file: string, user: string, cert: string) =>
      fs.writeFileSync(path.join(dir, file), kubeconfigYaml(server, user, ca, fs.readFileSync(pki(`${cert}.crt`)), fs.readFileSync(pki(`${cert}.key`))), { mode: 0o600 });
    writeKubeconfig('kubeconfig', 'admin', 'admin');
    writeKubeconfig('controller-manager.kubeconfig', 'kube-controller-manager', 'controller-manager');
    writeKubeconfig('scheduler.kubeconfig', 'kube-scheduler', 'scheduler');
    writeKubeconfig('kwok.kubeconfig', 'kwok', 'kwok');
    const kubeconfigPath = path.join(dir, 'kubeconfig');
    const adminCert = fs.readFileSync(pki('admin.crt'));
    const adminKey = fs.readFileSync(pki('admin.key'));
    const request = async (method: string, apiPath: string, body?: unknown) => {
      const r = await httpsRequest(server + apiPath, {
        method,
        ca,
        cert: adminCert,
        key: adminKey,
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      let parsed: any = r.body;
      try {
        parsed = JSON.parse(r.body);
      } catch {
        /* not JSON */
      }
      return { status: r.status, body: parsed };
    };

    // --- etcd ---
    const etcdUrl = `http://127.0.0.1:${etcdPort}`;
    const peerUrl = `http://127.0.0.1:${peerPort}`;
    const etcd = launch('etcd', [
      '--name=mailfleet',
      `--data-dir=${path.join(dir, 'etcd')}`,
      `--listen-client-urls=${etcdUrl}`,
      `--advertise-client-urls=${etcdUrl}`,
      `--listen-peer-urls=${peerUrl}`,
      `--initial-advertise-peer-urls=${peerUrl}`,
      `--initial-cluster=mailfleet=${peerUrl}`,
      '--unsafe-no-fsync',
      '--log-level=warn',
    ]);
    await waitFor('etcd /health', async () => /"health":\s*"true"/.test((await httpGet(`${etcdUrl}/health`)).body), [etcd]);

    // --- kube-apiserver ---
    const api = launch('kube-apiserver', [
      `--etcd-servers=${etcdUrl}`,
      '--bind-address=127.0.0.1',
      '--advertise-address=127.0.0.1',
      `--secure-port=${apiPort}`,
      `--cert-dir=${path.join(dir, 'apiserver-certs')}`,
      `--tls-cert-file=${pki('apiserver.crt')}`,
      `--tls-private-key-file=${pki('apiserver.key')}`,
      `--client-ca-file=${pki('ca.crt')}`,
      '--authorization-mode=RBAC',
      // As kubeadm does: without a request-header CA in kube-system/extension-apiserver-authentication,
      // the controller-manager's and scheduler's delegated authentication log "missing content
      // for CA bundle ... requestheader-client-ca-file" every few seconds.
      `--requestheader-client-ca-file=${pki('ca.crt')}`,
      '--requestheader-allowed-names=front-proxy-client',
      '--requestheader-username-headers=X-Remote-User',
      '--requestheader-group-headers=X-Remote-Group',
      '--requestheader-extra-headers-prefix=X-Remote-Extra-',
      '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
      `--service-account-key-file=${pki('sa.pub')}`,
      `--service-account-signing-key-file=${pki('sa.key')}`,
      '--service-cluster-ip-range=10.0.0.0/24',
      '--allow-privileged=true',
      // Without node-lifecycle-controller nothing would lift the not-ready taint this plugin
      // puts on new nodes; kwok nodes are Ready from the start anyway.
      '--disable-admission-plugins=TaintNodesByCondition',
      '--profiling=false',
      '--v=1',
    ]);
    await waitFor('kube-apiserver /readyz', async () => (await request('GET', '/readyz')).status === 200, [etcd, api]);

    // --- controller-manager, scheduler, kwok ---
    const kcmKubeconfig = path.join(dir, 'controller-manager.kubeconfig');
    const kcm = launch('kube-controller-manager', [
      `--kubeconfig=${kcmKubeconfig}`,
      `--authentication-kubeconfig=${kcmKubeconfig}`,
      `--authorization-kubeconfig=${kcmKubeconfig}`,
      '--bind-address=127.0.0.1',
      `--secure-port=${kcmPort}`,
      `--cert-dir=${path.join(dir, 'kcm-certs')}`,
      '--leader-elect=false',
      `--controllers=${CONTROLLERS.join(',')}`,
      `--service-account-private-key-file=${pki('sa.key')}`,
      `--root-ca-file=${pki('ca.crt')}`,
      '--use-service-account-credentials=true', // each controller under its own RBAC role, as upstream
      '--service-cluster-ip-range=10.0.0.0/24',
      '--concurrent-gc-syncs=5',
      '--v=1',
    ]);
    const schedKubeconfig = path.join(dir, 'scheduler.kubeconfig');
    const sched = launch('kube-scheduler', [
      `--kubeconfig=${schedKubeconfig}`,
      `--authentication-kubeconfig=${schedKubeconfig}`,
      `--authorization-kubeconfig=${schedKubeconfig}`,
      '--bind-address=127.0.0.1',
      `--secure-port=${schedPort}`,
      `--cert-dir=${path.join(dir, 'scheduler-certs')}`,
      '--leader-elect=false',
      '--v=1',
    ]);
    const kwok = launch(
      'kwok',
      [
        `--kubeconfig=${path.join(dir, 'kwok.kubeconfig')}`,
        `--config=${path.join(here, 'kwok-stages.yaml')}`,
        '--manage-all-nodes=false',
        '--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake',
        `--server-address=127.0.0.1:${kwokPort}`,
        '--node-ip=127.0.0.1',
        '--cidr=10.244.0.1/16',
      ],
      // kwok also loads ~/.kwok/kwok.yaml when it exists: keep a person's own config out
      { HOME: dir },
    );
    const all = [etcd, api, kcm, sched, kwok];

    const nodes = Array.from({ length: opts.nodes ?? 3 }, (_, i) => `kwok-node-${i}`);
    for (const n of nodes) {
      const r = await request('POST', '/api/v1/nodes', nodeManifest(n));
      if (r.status !== 201) await fail(`creating node ${n}: HTTP ${r.status} ${JSON.stringify(r.body)}`);
    }
    const healthz = async (port: number) =>
      (await httpsRequest(`https://127.0.0.1:${port}/healthz`, { insecure: true, timeoutMs: 2000 })).status === 200;
    await waitFor('kube-controller-manager /healthz', () => healthz(kcmPort), all);
    await waitFor('kube-scheduler /healthz', () => healthz(schedPort), all);
    await waitFor('service account default/default', async () => (await request('GET', '/api/v1/namespaces/default/serviceaccounts/default')).status === 200, all);
    await waitFor(`${nodes.length} kwok nodes Ready`, async () => {
      const r = await request('GET', '/api/v1/nodes');
      const ready = (r.body?.items ?? []).filter((n: any) =>
        (n.status?.conditions ?? []).some((c: any) => c.type === 'Ready' && c.status === 'True'),
      );
      return ready.length >= nodes.length;
    }, all);

    const helmHome = path.join(dir, 'helm');
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      KUBECONFIG: kubeconfigPath,
      HELM_CACHE_HOME: path.join(helmHome, 'cache'),
      HELM_CONFIG_HOME: path.join(helmHome, 'config'),
      HELM_DATA_HOME: path.join(helmHome, 'data'),
    };
    fs.writeFileSync(
      path.join(dir, 'cluster.json'),
      JSON.stringify({ dir, kubeconfigPath, server, nodes, pids: procs.map((p) => p.pid), startedMs: Date.now() - t0 }, null, 2),
    );
    return {
      dir,
      kubeconfigPath,
      server,
      nodes,
      binaries,
      env,
      kubectl: (args, o) => run(binaries.kubectl, args, env, o),
      helm: (args, o) => run(binaries.helm, args, env, o),
      request,
      logs,
      pids: () => procs.map((p) => p.pid),
      stop,
    };
  } catch (e) {
    if (!stopped) await stop();
    throw e;
  }
}
