// For people: `npm run cluster:up` starts a control plane that keeps running after this
// command returns, and prints `export KUBECONFIG=...` as its last line;
// `npm run cluster:down` stops it. State lives in <cache>/cluster (kubeconfig, logs, pids).
import fs from 'node:fs';
import path from 'node:path';
import { cacheRoot, findBinaries, startCluster, stopClusterDir } from './harness.ts';

const dir = path.join(cacheRoot(), 'cluster');
const stateFile = path.join(dir, 'state.json');

interface State {
  dir: string;
  kubeconfigPath: string;
  server: string;
  pids: number[];
  nodes: string[];
}

function readState(): State | undefined {
  try {
    return JSON.parse(fs.readFileSync(stateFile, 'utf8')) as State;
  } catch {
    return undefined;
  }
}

function alive(state: State): boolean {
  return state.pids.some((pid) => {
    try {
      return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(state.dir);
    } catch {
      return false;
    }
  });
}

async function up(): Promise<void> {
  const existing = readState();
  if (existing && alive(existing)) {
    console.log(`cluster already running: ${existing.server} (logs in ${path.join(existing.dir, 'logs')}); \`npm run cluster:down\` stops it`);
    console.log(`export KUBECONFIG=${existing.kubeconfigPath}`);
    return;
  }
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
  const state: State = {
    dir: cluster.dir,
    kubeconfigPath: cluster.kubeconfigPath,
    server: cluster.server,
    pids: cluster.pids(),
    nodes: cluster.nodes,
  };
  fs.writeFileSync(stateFile, JSON.stringify(state, null, 2));
  console.log(`cluster up in ${((Date.now() - t0) / 1000).toFixed(1)}s: ${cluster.server}, nodes ${cluster.nodes.join(', ')}`);
  console.log(`logs: ${path.join(cluster.dir, 'logs')}; stop it with \`npm run cluster:down\``);
  console.log(`export KUBECONFIG=${cluster.kubeconfigPath}`);
}

async function down(): Promise<void> {
  if (!fs.existsSync(dir)) {
    console.log('no cluster running');
    return;
  }
  await stopClusterDir(dir);
  console.log(`cluster stopped; removed ${dir}`);
}

const cmd = process.argv[2];
if (cmd === 'up') await up();
else if (cmd === 'down') await down();
else {
  console.error('usage: node test/cluster/cli.ts up|down');
  process.exit(2);
}
