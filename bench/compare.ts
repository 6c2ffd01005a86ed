// `npm run bench:compare -- <rev> [pairs]`: bench:relay on another commit and on this tree,
// alternating (A B, A B, …), then medians and the median of the per-pair ratios.
// One run of the same tree varies by a third on a 2-core VM (disk latency, the neighbours of
// smtp-source and smtp-sink): a difference of a few percent is only visible over many
// alternating pairs, never in one run each (BENCHMARKS.md, issue 9).
// The other commit is checked out into a temporary worktree that borrows this tree's
// node_modules, and removed at the end. Bounded: `pairs` runs per side, each of which has
// its own deadlines (bench/relay.ts). Env: BENCH_MESSAGES (default 4000), BENCH_VARIANTS
// (default none), TMPDIR (e.g. /dev/shm to take the disk out).
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { root } from './support.ts';

interface Row { variant: string; endToEndMsgPerSec: number; relayCpuMsPerMsg: number; loadAvg: string }

const [rev, pairsArg] = process.argv.slice(2);
if (!rev) {
  console.error('usage: npm run bench:compare -- <git revision> [pairs (default 8)]');
  process.exit(2);
}
const pairs = Number(pairsArg ?? 8);
if (!Number.isInteger(pairs) || pairs < 1 || pairs > 50) throw new Error(`pairs must be a whole number from 1 to 50, not ${pairsArg}`);

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

function runBench(dir: string): Row[] {
  const r = spawnSync(process.execPath, [path.join(dir, 'bench/relay.ts')], {
    cwd: dir, encoding: 'utf8', timeout: 30 * 60_000,
    env: { ...process.env, BENCH_LARGE: '0', BENCH_VARIANTS: process.env.BENCH_VARIANTS ?? 'none', BENCH_MESSAGES: process.env.BENCH_MESSAGES ?? '4000' },
  });
  if (r.status !== 0) throw new Error(`bench:relay in ${dir} exited ${r.status}: ${r.stderr.slice(-2000)}`);
  return r.stdout.split('\n').filter((l) => l.startsWith('{"variant"')).map((l) => JSON.parse(l) as Row);
}

const other = fs.mkdtempSync(path.join(os.tmpdir(), 'mailfleet-compare-'));
const sha = execFileSync('git', ['rev-parse', '--short', rev], { cwd: root, encoding: 'utf8' }).trim();
const here = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root, encoding: 'utf8' }).trim();
execFileSync('git', ['worktree', 'add', '--detach', other, sha], { cwd: root, stdio: 'ignore' });
try {
  fs.symlinkSync(path.join(root, 'node_modules'), path.join(other, 'node_modules'));
  const runs: Record<'a' | 'b', Row[][]> = { a: [], b: [] };
  for (let i = 0; i < pairs; i++) {
    runs.a.push(runBench(other));
    runs.b.push(runBench(root));
    const [a, b] = [runs.a.at(-1)!, runs.b.at(-1)!];
    console.log(`pair ${i + 1}/${pairs}: ${a.map((r) => `${sha} ${r.variant} ${r.endToEndMsgPerSec} msg/s ${r.relayCpuMsPerMsg} ms`).join(', ')} | ${b.map((r) => `${here} ${r.variant} ${r.endToEndMsgPerSec} msg/s ${r.relayCpuMsPerMsg} ms`).join(', ')} (load ${b[0]?.loadAvg})`);
  }
  for (const variant of runs.a[0]!.map((r) => r.variant)) {
    const pick = (side: Row[][]) => side.map((rows) => rows.find((r) => r.variant === variant)!);
    const [a, b] = [pick(runs.a), pick(runs.b)];
    const ratios = a.map((ra, i) => b[i]!.endToEndMsgPerSec / ra.endToEndMsgPerSec);
    const pct = (x: number) => `${x >= 0 ? '+' : ''}${(100 * x).toFixed(1)} %`;
    console.log(JSON.stringify({
      variant, pairs,
      [`${sha} msgPerSec`]: median(a.map((r) => r.endToEndMsgPerSec)), [`${here} msgPerSec`]: median(b.map((r) => r.endToEndMsgPerSec)),
      change: pct(median(b.map((r) => r.endToEndMsgPerSec)) / median(a.map((r) => r.endToEndMsgPerSec)) - 1),
      medianPairRatio: pct(median(ratios) - 1), pairsAhead: ratios.filter((x) => x > 1).length,
      [`${sha} cpuMsPerMsg`]: median(a.map((r) => r.relayCpuMsPerMsg)), [`${here} cpuMsPerMsg`]: median(b.map((r) => r.relayCpuMsPerMsg)),
    }));
  }
} finally {
  execFileSync('git', ['worktree', 'remove', '--force', other], { cwd: root, stdio: 'ignore' });
}
