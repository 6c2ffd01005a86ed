// A real node for the test control plane: containerd + runc + the CNI bridge plugins + a
// kubelet, all inside one network namespace and one private mount namespace that the test
// creates, so the machine is left as found:
//
// - network: the node has a namespace of its own (only lo at first). The CNI bridge, the pod
//   veths, the pods' routes and whatever sysctls the bridge plugin sets (ip_forward) live in
//   it and vanish with it. The node reaches the API server (on the machine's loopback) through
//   api-bridge.ts, listening on 127.0.0.1:<api port> (the kubelet, and the `kubernetes`
//   endpoint) and on 10.0.0.1:443 (the `kubernetes` Service's ClusterIP, which a pod is given).
//   NODE_IP (on the node's lo) is the node's address: pods reach the node there (a sink in a
//   test), and the kubelet reports it. No kube-proxy: see README.md.
// - mounts: /run, /var/lib and /var/log are fresh tmpfs in the private mount namespace (the
//   paths containerd, runc, CNI and the kubelet write to regardless of their flags), and the
//   kernel sysctls the kubelet insists on (kernel.panic, kernel.panic_on_oops,
//   vm.overcommit_memory, ...) are files bind-mounted over /proc/sys, holding the values it
//   wants, so it never writes the machine's.
// - cgroups are the one thing shared with the machine: the kubelet's `kubepods` tree, removed
//   by close() after every process in it is gone.
// Children die with the test process (setpriv --pdeathsig); close() kills containers, shims,
// containerd and the kubelet, then the namespaces' holder.
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { type Cluster, freePorts } from '../cluster/harness.ts';
import { eventually } from '../support/eventually.ts';
import { bridgeApi, bridgeOut, type ApiBridge } from '../image/api-bridge.ts';

const run = promisify(execFile);
const sbin = `${process.env.PATH ?? '/usr/bin:/bin'}:/usr/sbin:/sbin`;

/** The node's own address (on its lo); pods reach the node, and a test's sink, there. */
export const NODE_IP = '10.245.0.1';
export const POD_CIDR = '10.244.0.0/24';
/** The test API server's --service-cluster-ip-range. */
const SERVICE_CIDR = '10.0.0.0/24';
const BRIDGE = 'mfnode0';
/** What the kubelet writes if it finds another value (pkg/kubelet/cm: setupKernelTunables). */
const KERNEL_TUNABLES: Record<string, string> = {
  'vm/overcommit_memory': '1',
  'vm/panic_on_oom': '0',
  'kernel/panic': '10',
  'kernel/panic_on_oops': '1',
  'kernel/keys/root_maxkeys': '1000000',
  'kernel/keys/root_maxbytes': '25000000',
};
/** The machine-wide state the node must leave as found (checked by the tests). */
export const WATCHED_SYSCTLS = [...Object.keys(KERNEL_TUNABLES), 'net/ipv4/ip_forward', 'net/bridge/bridge-nf-call-iptables'];

export const NODE_TOOLS = ['containerd', 'containerd-shim-runc-v2', 'ctr', 'runc', 'unshare', 'nsenter', 'setpriv', 'ip', 'iptables', 'podman', 'mount'];
export const CNI_PLUGINS = ['bridge', 'host-local', 'loopback'].map((p) => `/usr/lib/cni/${p}`);

export interface RealNode {
  name: string;
  dir: string;
  /** /proc/<holder>/ns/net */
  netns: string;
  /** Runs a command in the node's network and mount namespaces. */
  exec(cmd: string, args: string[], opts?: { input?: string; timeoutMs?: number }): Promise<{ stdout: string; stderr: string; code: number }>;
  /** Starts a long-running command in the node's namespaces (dies with the test process). */
  spawn(cmd: string, args: string[]): ChildProcess;
  /** ctr against the node's containerd (namespace k8s.io). */
  ctr(args: string[]): Promise<string>;
  logs(lines?: number): string;
  /** Seconds each start-up phase took (for BENCHMARKS.md; never asserted). */
  timings: Record<string, number>;
  /** Seconds each phase of the last close() took. */
  closeTimings: Record<string, number>;
  close(): Promise<void>;
}

export interface NodeOptions {
  cluster: Cluster;
  kubelet: string;
  /**
   * kube-proxy, run in iptables mode inside the node's network namespace (its rules live and
   * die there). It ignores the `kubernetes` Service, which the api-bridge serves on 10.0.0.1:443.
   */
  kubeProxy?: string;
  /** Images (podman storage names) imported into the node's containerd. */
  images: string[];
  /** Env for podman (scripts/image-env.sh). */
  podmanEnv: NodeJS.ProcessEnv;
}

const tailFile = (f: string, n: number) => {
  try { return fs.readFileSync(f, 'utf8').split('\n').slice(-n).join('\n'); } catch { return '(no log)'; }
};

/** The cgroup hierarchies (v1 controllers and the unified one) under /sys/fs/cgroup. */
export function cgroupRoots(): string[] {
  return fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n')
    .map((l) => l.split(' '))
    .filter((f) => { const i = f.indexOf('-'); return i > 0 && (f[i + 1] === 'cgroup' || f[i + 1] === 'cgroup2'); })
    .map((f) => f[4]!)
    .filter((p) => p.startsWith('/sys/fs/cgroup'));
}

/** kubepods cgroups that exist now (the kubelet's tree, at the top of each hierarchy). */
export function kubepodsCgroups(): string[] {
  return cgroupRoots().map((r) => path.join(r, 'kubepods')).filter((p) => fs.existsSync(p));
}

/** Every pid in a cgroup tree. */
function cgroupPids(dir: string): number[] {
  const out: number[] = [];
  const walk = (d: string) => {
    let entries: fs.Dirent[] = [];
    try { entries = fs.readdirSync(d, { withFileTypes: true }); } catch { return; }
    try { for (const l of fs.readFileSync(path.join(d, 'cgroup.procs'), 'utf8').split('\n')) if (/^\d+$/.test(l)) out.push(Number(l)); } catch { /* gone */ }
    for (const e of entries) if (e.isDirectory()) walk(path.join(d, e.name));
  };
  walk(dir);
  return out;
}

/** Removes a cgroup tree bottom-up (cgroups are removed with rmdir, never rm -r). */
function removeCgroupTree(dir: string): void {
  let entries: fs.Dirent[] = [];
  try { entries = fs.readdirSync(dir, { withFileTypes: true }); } catch { return; }
  for (const e of entries) if (e.isDirectory()) removeCgroupTree(path.join(dir, e.name));
  try { fs.rmdirSync(dir); } catch { /* busy or gone: reported by the caller's check */ }
}

/** Pids whose command line mentions dir (the node's containerd, shims, kubelet). */
function pidsMentioning(dir: string): number[] {
  const out: number[] = [];
  for (const p of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(p) || Number(p) === process.pid) continue;
    try { if (fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(dir + '/')) out.push(Number(p)); } catch { /* gone */ }
  }
  return out;
}

/** Pids in the network namespace with this inode link (readlink /proc/<pid>/ns/net). */
export function pidsInNetns(link: string): number[] {
  const out: number[] = [];
  for (const p of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try { if (fs.readlinkSync(`/proc/${p}/ns/net`) === link) out.push(Number(p)); } catch { /* gone */ }
  }
  return out;
}

const kill = (pids: number[]) => { for (const p of pids) { try { process.kill(p, 'SIGKILL'); } catch { /* gone */ } } };

function cniConfig(dir: string): string {
  return JSON.stringify({
    cniVersion: '1.0.0',
    name: 'mailfleet-node',
    plugins: [{
      type: 'bridge', bridge: BRIDGE, isGateway: true, ipMasq: false, hairpinMode: true,
      ipam: { type: 'host-local', ranges: [[{ subnet: POD_CIDR }]], routes: [{ dst: '0.0.0.0/0' }], dataDir: path.join(dir, 'cni', 'ipam') },
    }],
  }, null, 2);
}

function containerdConfig(dir: string): string {
  const d = (p: string) => JSON.stringify(path.join(dir, p));
  return `version = 2
root = ${d('containerd/root')}
state = ${d('containerd/state')}
oom_score = 0
# snapshotters and services this node does not need (and that probe the machine when loaded)
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]
[grpc]
  address = ${d('containerd/containerd.sock')}
[ttrpc]
  address = ${d('containerd/containerd.sock.ttrpc')}
[plugins."io.containerd.internal.v1.opt"]
  path = ${d('containerd/opt')}
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "localhost/pause:local"
  # a negative oom_score_adj fails on these machines (no CAP_SYS_RESOURCE)
  restrict_oom_score_adj = true
  enable_selinux = false
  disable_apparmor = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        BinaryName = "/usr/sbin/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = ${d('cni/net.d')}
    max_conf_num = 1
`;
}

function kubeletConfig(dir: string, port: number, healthzPort: number): string {
  return JSON.stringify({
    apiVersion: 'kubelet.config.k8s.io/v1beta1',
    kind: 'KubeletConfiguration',
    address: '127.0.0.1',
    port,
    healthzBindAddress: '127.0.0.1',
    healthzPort,
    readOnlyPort: 0,
    // The API server reaches the kubelet (logs, exec) over an api-bridge into the node; the
    // kubelet listens on the node's loopback only.
    authentication: { anonymous: { enabled: true }, webhook: { enabled: false } },
    authorization: { mode: 'AlwaysAllow' },
    cgroupDriver: 'cgroupfs',
    failCgroupV1: false,
    failSwapOn: false,
    containerRuntimeEndpoint: `unix://${path.join(dir, 'containerd/containerd.sock')}`,
    makeIPTablesUtilChains: false,
    oomScoreAdj: 0,
    staticPodPath: path.join(dir, 'kubelet/manifests'),
    podLogsDir: path.join(dir, 'pod-logs'),
    resolvConf: path.join(dir, 'resolv.conf'),
    clusterDomain: 'cluster.local',
    // The images were imported, never pulled: image GC off (100), low eviction thresholds on
    // a shared disk, nothing evicted for the machine's memory use.
    imageGCHighThresholdPercent: 100,
    imageGCLowThresholdPercent: 99,
    evictionHard: { 'memory.available': '1Mi', 'nodefs.available': '1%', 'nodefs.inodesFree': '1%', 'imagefs.available': '1%' },
    serializeImagePulls: false,
    protectKernelDefaults: false,
    nodeStatusReportFrequency: '10s',
  }, null, 2);
}

/** A pause image from the machine's static busybox: nothing pulled, nothing compiled. */
async function pauseImageTar(dir: string, env: NodeJS.ProcessEnv): Promise<string> {
  const root = path.join(dir, 'pause-rootfs');
  fs.mkdirSync(path.join(root, 'bin'), { recursive: true });
  fs.copyFileSync('/bin/busybox', path.join(root, 'bin/busybox'));
  fs.chmodSync(path.join(root, 'bin/busybox'), 0o755);
  const tar = path.join(dir, 'pause-rootfs.tar');
  await run('tar', ['-C', root, '-cf', tar, '.']);
  // PID 1 of the sandbox: waits forever, exits on TERM/INT (the kubelet stops sandboxes so).
  const entry = JSON.stringify(['/bin/busybox', 'sh', '-c', 'trap "exit 0" TERM INT; while :; do /bin/busybox sleep 3600 & wait $!; done']);
  await run('podman', ['import', '--change', `ENTRYPOINT ${entry}`, tar, 'localhost/pause:local'], { env });
  const out = path.join(dir, 'pause.tar');
  await run('podman', ['save', '--format', 'docker-archive', '-o', out, 'localhost/pause:local'], { env });
  return out;
}

const NODE_PREFIX = 'mailfleet-node-';

/**
 * What a test process killed mid-run left (its containers, shims and kubepods cgroups; the
 * namespaces went with its holder): cleaned up when the dir's owner is gone.
 */
export function cleanupStaleNodes(): string[] {
  const cleaned: string[] = [];
  for (const e of fs.readdirSync(os.tmpdir()).filter((x) => x.startsWith(NODE_PREFIX))) {
    const dir = path.join(os.tmpdir(), e);
    let owner = NaN;
    try { owner = Number(fs.readFileSync(path.join(dir, 'owner'), 'utf8')); } catch { /* being set up, or broken */ }
    if (!Number.isFinite(owner)) continue;
    try { process.kill(owner, 0); continue; } catch { /* owner gone */ }
    for (let i = 0; i < 20; i++) {
      const left = [...kubepodsCgroups().flatMap(cgroupPids), ...pidsMentioning(dir)];
      if (!left.length) break;
      kill(left);
      execFileSync('sleep', ['0.1']);
    }
    for (const cg of kubepodsCgroups()) removeCgroupTree(cg);
    fs.rmSync(dir, { recursive: true, force: true });
    cleaned.push(dir);
  }
  return cleaned;
}

export async function startNode(opts: NodeOptions): Promise<RealNode> {
  const { cluster } = opts;
  cleanupStaleNodes();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), NODE_PREFIX));
  fs.writeFileSync(path.join(dir, 'owner'), `${process.pid}\n`);
  fs.chmodSync(dir, 0o755); // hostPath volumes below it are read by non-root pods
  const name = os.hostname();
  const logDir = path.join(dir, 'logs');
  for (const d of ['logs', 'cni/net.d', 'cni/ipam', 'containerd', 'kubelet/manifests', 'pod-logs', 'sysctl', 'pki']) fs.mkdirSync(path.join(dir, d), { recursive: true });
  const children: ChildProcess[] = [];
  const bridges: ApiBridge[] = [];
  if (kubepodsCgroups().length) throw new Error(`a kubepods cgroup exists already (${kubepodsCgroups().join(', ')}): is another node running?`);

  // --- the namespaces' holder ---
  const holder = spawn('setpriv', ['--pdeathsig', 'KILL', '--', 'unshare', '--net', '--mount', '--propagation', 'private', '--', 'sleep', 'infinity'], { stdio: 'ignore' });
  children.push(holder);
  const pid = holder.pid!;
  const netns = `/proc/${pid}/ns/net`;
  const ours = fs.readlinkSync('/proc/self/ns/net');
  await eventually('the node namespaces', () => { try { return fs.readlinkSync(netns) !== ours; } catch { return false; } }, 20_000);
  const nsLink = fs.readlinkSync(netns);
  const enter = ['-t', String(pid), '-m', '-n', '--'];
  const exec: RealNode['exec'] = (cmd, args, o = {}) => new Promise((resolve) => {
    const child = execFile('nsenter', [...enter, cmd, ...args], { timeout: o.timeoutMs ?? 60_000, maxBuffer: 64 << 20, env: { ...process.env, PATH: sbin } }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
      resolve({ stdout: String(stdout), stderr: String(stderr), code });
    });
    if (o.input !== undefined) child.stdin!.end(o.input);
  });
  const must = async (cmd: string, args: string[]) => {
    const r = await exec(cmd, args);
    if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} in the node: ${r.stderr || r.stdout}`);
    return r.stdout;
  };
  const launch = (logName: string, cmd: string, args: string[]) => {
    const fd = fs.openSync(path.join(logDir, `${logName}.log`), 'a');
    const child = spawn('nsenter', [...enter, 'setpriv', '--pdeathsig', 'KILL', '--', cmd, ...args], { stdio: ['ignore', fd, fd], env: { ...process.env, PATH: sbin } });
    fs.closeSync(fd);
    children.push(child);
    return child;
  };
  const ctrSock = path.join(dir, 'containerd/containerd.sock');
  const ctr = async (args: string[]) => must('ctr', ['-a', ctrSock, '-n', 'k8s.io', ...args]);
  const logs = (lines = 40) => ['containerd', 'kubelet', 'kube-proxy'].map((n) => `----- ${n} -----\n${tailFile(path.join(logDir, `${n}.log`), lines)}`).join('\n');

  let closed = false;
  const timings: Record<string, number> = {};
  const closeTimings: Record<string, number> = {};
  let mark = Date.now();
  const phase = (into: Record<string, number>, what: string) => { into[what] = (Date.now() - mark) / 1000; mark = Date.now(); };
  const close = async () => {
    if (closed) return;
    closed = true;
    mark = Date.now();
    // kubelet first (it would restart what dies), then every container, shim and containerd.
    for (const c of children.slice(1).reverse()) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    for (const b of bridges) await b.close();
    for (let i = 0; i < 50; i++) {
      const left = [...kubepodsCgroups().flatMap(cgroupPids), ...pidsMentioning(dir)];
      if (!left.length) break;
      kill(left);
      await new Promise((r) => setTimeout(r, 100));
    }
    phase(closeTimings, 'processes killed');
    for (const cg of kubepodsCgroups()) removeCgroupTree(cg);
    // the holder last: its namespaces (and the mounts, bridge, veths and pod namespaces in them) end with it
    if (holder.exitCode === null && holder.signalCode === null) {
      const gone = new Promise((r) => holder.once('exit', r));
      holder.kill('SIGKILL');
      await gone;
    }
    for (let i = 0; i < 50 && pidsInNetns(nsLink).length; i++) { kill(pidsInNetns(nsLink)); await new Promise((r) => setTimeout(r, 100)); }
    phase(closeTimings, 'namespaces ended');
    if (process.env.MAILFLEET_KEEP_NODE !== '1') fs.rmSync(dir, { recursive: true, force: true });
  };
  const onExit = () => { if (!closed) { for (const c of children) c.kill('SIGKILL'); kill(pidsMentioning(dir)); } };
  process.on('exit', onExit);

  try {
    // --- the node's network: lo with the node address and the API Service's ClusterIP ---
    await must('ip', ['link', 'set', 'lo', 'up']);
    await must('ip', ['addr', 'add', `${NODE_IP}/32`, 'dev', 'lo']);
    await must('ip', ['addr', 'add', '10.0.0.1/32', 'dev', 'lo']);
    // The pod bridge made ahead of the CNI plugin (which adopts it), so that the Service range
    // has a route: a node's own connections to a ClusterIP need one before kube-proxy's DNAT
    // (a real node has its default route).
    await must('ip', ['link', 'add', BRIDGE, 'type', 'bridge']);
    await must('ip', ['link', 'set', BRIDGE, 'up']);
    await must('ip', ['route', 'add', SERVICE_CIDR, 'dev', BRIDGE]);
    // --- the node's mounts ---
    for (const m of ['/run', '/var/lib', '/var/log']) await must('mount', ['-t', 'tmpfs', '-o', 'mode=755', 'mailfleet-node', m]);
    for (const [key, value] of Object.entries(KERNEL_TUNABLES)) {
      const f = path.join(dir, 'sysctl', key.replace(/\//g, '.'));
      fs.writeFileSync(f, `${value}\n`);
      await must('mount', ['--bind', f, `/proc/sys/${key}`]);
    }

    // --- containerd ---
    fs.writeFileSync(path.join(dir, 'cni/net.d/10-mailfleet-node.conflist'), cniConfig(dir));
    fs.writeFileSync(path.join(dir, 'containerd/config.toml'), containerdConfig(dir));
    fs.writeFileSync(path.join(dir, 'resolv.conf'), `# the node has no cluster DNS; pods resolve nothing\nnameserver ${NODE_IP}\n`);
    phase(timings, 'namespaces');
    const containerd = launch('containerd', 'containerd', ['--config', path.join(dir, 'containerd/config.toml'), '--log-level', 'warn']);
    await eventually('containerd to serve', async () => {
      if (containerd.exitCode !== null) throw new Error(`containerd exited ${containerd.exitCode}`);
      return (await exec('ctr', ['-a', ctrSock, 'version'])).code === 0;
    }, 60_000, { context: () => logs() });

    // --- images: pause (local busybox) and the test's images, from podman storage ---
    phase(timings, 'containerd');
    const tars = [await pauseImageTar(dir, opts.podmanEnv)];
    for (const img of opts.images) {
      const t = path.join(dir, `image-${tars.length}.tar`);
      await run('podman', ['save', '--format', 'docker-archive', '-o', t, img], { env: opts.podmanEnv, maxBuffer: 16 << 20 });
      tars.push(t);
    }
    for (const t of tars) { await ctr(['images', 'import', '--no-unpack=false', t]); fs.rmSync(t); }

    // --- the API server, seen from the node ---
    const apiPort = new URL(cluster.server).port;
    phase(timings, 'images imported');
    bridges.push(await bridgeApi({ nsPath: netns, server: cluster.server, listens: [`127.0.0.1:${apiPort}`, '10.0.0.1:443'], dir }));

    // --- the kubelet: a client certificate for system:node:<name>, bound to the system:node role ---
    const pki = (f: string) => path.join(cluster.dir, 'pki', f);
    const own = (f: string) => path.join(dir, 'pki', f);
    const b64 = (f: string) => fs.readFileSync(f).toString('base64');
    /** A kubeconfig (reaching the API server over the bridge) with a client certificate from the cluster CA. */
    const clientKubeconfig = (who: string, subject: string) => {
      execFileSync('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', own(`${who}.key`),
        '-out', own(`${who}.csr`), '-subj', subject], { stdio: 'ignore' });
      fs.writeFileSync(own(`${who}.ext`), 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n');
      execFileSync('openssl', ['x509', '-req', '-in', own(`${who}.csr`), '-CA', pki('ca.crt'), '-CAkey', pki('ca.key'), '-CAcreateserial',
        '-CAserial', own('ca.srl'), '-days', '2', '-extfile', own(`${who}.ext`), '-out', own(`${who}.crt`)], { stdio: 'ignore' });
      const file = path.join(dir, `${who}.kubeconfig`);
      fs.writeFileSync(file, `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: 'https://127.0.0.1:${apiPort}', certificate-authority-data: ${b64(pki('ca.crt'))}}}]
users: [{name: ${who}, user: {client-certificate-data: ${b64(own(`${who}.crt`))}, client-key-data: ${b64(own(`${who}.key`))}}}]
contexts: [{name: c, context: {cluster: c, user: ${who}}}]
current-context: c
`, { mode: 0o600 });
      return file;
    };
    clientKubeconfig('kubelet', `/O=system:nodes/CN=system:node:${name}`);
    await cluster.kubectl(['create', 'clusterrolebinding', 'mailfleet-test-node', '--clusterrole=system:node', `--user=system:node:${name}`]);
    const [port, healthzPort] = (await freePorts(2)) as [number, number];
    fs.writeFileSync(path.join(dir, 'kubelet/config.yaml'), kubeletConfig(dir, port, healthzPort));
    // logs and exec: the API server dials <node name>:<port>, i.e. the machine's loopback.
    bridges.push(await bridgeOut({ nsPath: netns, listen: `127.0.0.1:${port}`, target: `127.0.0.1:${port}`, dir }));
    const kubelet = launch('kubelet', opts.kubelet, [
      `--config=${path.join(dir, 'kubelet/config.yaml')}`,
      `--kubeconfig=${path.join(dir, 'kubelet.kubeconfig')}`,
      `--root-dir=${path.join(dir, 'kubelet/root')}`,
      `--cert-dir=${path.join(dir, 'kubelet/pki')}`,
      `--node-ip=${NODE_IP}`,
      '--v=1',
    ]);
    await eventually(`node ${name} Ready`, async () => {
      if (kubelet.exitCode !== null) throw new Error(`kubelet exited ${kubelet.exitCode}`);
      const r = await cluster.request('GET', `/api/v1/nodes/${name}`);
      return (r.body?.status?.conditions ?? []).some((c: any) => c.type === 'Ready' && c.status === 'True');
    }, 120_000, { context: () => logs() });

    phase(timings, 'kubelet: node Ready');
    if (opts.kubeProxy) {
      // The bridge serves the API Service; kube-proxy would send it to the endpoint 127.0.0.1,
      // which pods cannot reach: this label makes every kube-proxy ignore the Service.
      await cluster.kubectl(['label', '--overwrite', 'service', 'kubernetes', '-n', 'default', 'service.kubernetes.io/service-proxy-name=mailfleet-api-bridge']);
      // system:kube-proxy is bound to the system:node-proxier role by the API server's bootstrap policy
      const kubeconfig = clientKubeconfig('kube-proxy', '/CN=system:kube-proxy');
      const [hz, mp] = (await freePorts(2)) as [number, number];
      fs.writeFileSync(path.join(dir, 'kube-proxy.yaml'), JSON.stringify({
        apiVersion: 'kubeproxy.config.k8s.io/v1alpha1',
        kind: 'KubeProxyConfiguration',
        mode: 'iptables',
        clientConnection: { kubeconfig },
        hostnameOverride: name,
        healthzBindAddress: `127.0.0.1:${hz}`,
        metricsBindAddress: `127.0.0.1:${mp}`,
        clusterCIDR: POD_CIDR,
        detectLocalMode: 'ClusterCIDR',
        // no negative oom_score_adj here; no machine-wide conntrack sizing or timeouts
        oomScoreAdj: 0,
        conntrack: { maxPerCore: 0, min: 0, tcpEstablishedTimeout: '0s', tcpCloseWaitTimeout: '0s' },
        // no route_localnet: NodePorts are not served on loopback
        iptables: { localhostNodePorts: false, masqueradeAll: false, syncPeriod: '10s', minSyncPeriod: '0s' },
        nodePortAddresses: [`${NODE_IP}/32`],
      }, null, 2));
      const proxy = launch('kube-proxy', opts.kubeProxy, [`--config=${path.join(dir, 'kube-proxy.yaml')}`, '--v=1']);
      await eventually('kube-proxy /healthz', async () => {
        if (proxy.exitCode !== null) throw new Error(`kube-proxy exited ${proxy.exitCode}`);
        return (await exec('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '3', `http://127.0.0.1:${hz}/healthz`])).stdout.trim() === '200';
      }, 60_000, { context: () => logs() });
    }

    if (opts.kubeProxy) phase(timings, 'kube-proxy healthy');
    return {
      name, dir, netns, exec, ctr, logs, close, timings, closeTimings,
      spawn: (cmd, args) => spawn('nsenter', [...enter, 'setpriv', '--pdeathsig', 'KILL', '--', cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, PATH: sbin } }),
    };
  } catch (e) {
    const text = logs(60);
    await close();
    throw new Error(`${(e as Error).message}\n${text}`);
  } finally {
    process.removeListener('exit', onExit);
    if (!closed) process.on('exit', onExit);
  }
}
