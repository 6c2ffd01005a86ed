// For people (and CI jobs): `npm run cluster:up [-- NAME]` starts a control plane that keeps
// running after this command returns and prints, as its last two lines,
//   export MAILFLEET_CLUSTER=NAME
//   export KUBECONFIG=...
// `npm run cluster:down [-- NAME]` stops that one cluster; `npm run cluster:list` (node
// test/cluster/cli.ts list) shows the running ones. Each cluster lives in
// <cache>/clusters/NAME, so clusters started by different runs never share state, and one
// run's down cannot stop another's cluster. Without NAME, up starts a new cluster with a
// fresh name (or $MAILFLEET_CLUSTER's), and down stops the cluster named by
// $MAILFLEET_CLUSTER or the one $KUBECONFIG points into; it never guesses otherwise.
import fs from 'node:fs';
import path from 'node:path';
import { clusterDirAlive, findBinaries, namedClustersDir, startCluster, stopClusterDir } from './harness.ts';

const NAME_RE = /^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$/;

interface State {
  name: string;
  dir: string;
  kubeconfigPath: string;
  server: string;
  pids: number[];
  nodes: string[];
}

const dirOf = (name: string) => path.join(namedClustersDir(), name);
const stateFile = (name: string) => path.join(dirOf(name), 'state.json');

function readState(name: string): State | undefined {
  try {
    return JSON.parse(fs.readFileSync(stateFile(name), 'utf8')) as State;
  } catch {
    return undefined;
  }
}

function checkName(name: string): string {
  if (!NAME_RE.test(name)) {
    console.error(`cluster name "${name}": use 1-40 lower-case letters, digits and dashes`);
    process.exit(2);
  }
  return name;
}

const freshName = () => `c-${Date.now().toString(36)}-${process.pid.toString(36)}`;

/** The cluster $KUBECONFIG points into, if it is one of ours. */
function nameFromKubeconfig(): string | undefined {
  const kc = process.env.KUBECONFIG?.split(':')[0];
  if (!kc) return undefined;
  const rel = path.relative(namedClustersDir(), path.resolve(kc));
  const [name, file] = rel.split(path.sep);
  return name && file === 'kubeconfig' && !rel.startsWith('..') ? name : undefined;
}

function printExports(s: State): void {
  console.log(`export MAILFLEET_CLUSTER=${s.name}`);
  console.log(`export KUBECONFIG=${s.kubeconfigPath}`);
}

/** One `up` per name at a time: a lock file holding the pid, taken over only from a dead pid. */
function lock(name: string): () => void {
  fs.mkdirSync(namedClustersDir(), { recursive: true });
  const file = path.join(namedClustersDir(), `${name}.lock`);
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      fs.writeFileSync(file, `${process.pid}\n`, { flag: 'wx' });
      return () => fs.rmSync(file, { force: true });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const holder = Number(fs.readFileSync(file, 'utf8').trim());
      if (holder && isRunning(holder)) {
        console.error(`cluster ${name} is being started by pid ${holder}; wait for it, or pick another name`);
        process.exit(1);
      }
      fs.rmSync(file, { force: true }); // left by a process that died
    }
  }
  throw new Error(`could not lock ${file}`);
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function up(arg: string | undefined): Promise<void> {
  const name = checkName(arg ?? process.env.MAILFLEET_CLUSTER ?? freshName());
  const unlock = lock(name);
  try {
    const existing = readState(name);
    if (existing && clusterDirAlive(existing.dir)) {
      console.log(`cluster ${name} already running: ${existing.server} (logs in ${path.join(existing.dir, 'logs')}); \`npm run cluster:down -- ${name}\` stops it`);
      printExports(existing);
      return;
    }
    const dir = dirOf(name);
    if (fs.existsSync(dir)) await stopClusterDir(dir, { graceMs: 1000 }); // leftovers of a dead one
    const { binaries, missing, sources } = findBinaries();
    if (!binaries) {
      console.error(`missing binaries:\n${missing.map((m) => `  ${m.name}: ${m.why}`).join('\n')}`);
      console.error('build them with `npm run cluster:build` (needs Go), or see docs/cluster-tests.md');
      process.exit(1);
    }
    console.error(`binaries: ${Object.entries(sources).map(([n, s]) => `${n} (${s})`).join(', ')}`);
    const t0 = Date.now();
    const cluster = await startCluster({ binaries, dir, detached: true });
    const state: State = { name, dir: cluster.dir, kubeconfigPath: cluster.kubeconfigPath, server: cluster.server, pids: cluster.pids(), nodes: cluster.nodes };
    fs.writeFileSync(stateFile(name), JSON.stringify(state, null, 2));
    console.log(`cluster ${name} up in ${((Date.now() - t0) / 1000).toFixed(1)}s: ${cluster.server}, nodes ${cluster.nodes.join(', ')}`);
    console.log(`logs: ${path.join(cluster.dir, 'logs')}; stop it with \`npm run cluster:down -- ${name}\``);
    printExports(state);
  } finally {
    unlock();
  }
}

function running(): State[] {
  let names: string[] = [];
  try {
    names = fs.readdirSync(namedClustersDir(), { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name);
  } catch {
    return [];
  }
  return names.flatMap((n) => {
    const s = readState(n);
    return s && clusterDirAlive(s.dir) ? [s] : [];
  });
}

async function down(arg: string | undefined): Promise<void> {
  const given = arg ?? process.env.MAILFLEET_CLUSTER ?? nameFromKubeconfig();
  if (!given) {
    const all = running();
    console.error('which cluster? name it: npm run cluster:down -- NAME (or set MAILFLEET_CLUSTER, or KUBECONFIG to its kubeconfig)');
    console.error(all.length ? `running: ${all.map((s) => s.name).join(', ')}` : 'none is running');
    process.exit(2);
  }
  const name = checkName(given);
  const dir = dirOf(name);
  if (!fs.existsSync(dir)) {
    console.log(`no cluster ${name}`);
    return;
  }
  await stopClusterDir(dir);
  console.log(`cluster ${name} stopped; removed ${dir}`);
}

function list(): void {
  const all = running();
  if (!all.length) console.log('no cluster running');
  for (const s of all) console.log(`${s.name}\t${s.server}\t${s.kubeconfigPath}`);
}

const [cmd, name] = process.argv.slice(2);
if (cmd === 'up') await up(name);
else if (cmd === 'down') await down(name);
else if (cmd === 'list') list();
else {
  console.error('usage: node test/cluster/cli.ts up [NAME] | down [NAME] | list');
  process.exit(2);
}
