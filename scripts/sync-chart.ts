// `npm run chart:sync`: copies what the chart must not redefine into charts/mailfleet:
// the CRDs (crds/*.yaml -> charts/mailfleet/crds/) and the operator's RBAC manifest
// (deploy/rbac.yaml -> charts/mailfleet/files/rbac.yaml, read by the templates with
// .Files.Get). Helm cannot read files outside the chart directory, hence copies; the test
// test/chart/sync.test.ts fails when a copy differs. `--check` only reports (exit 1 on drift).
import fs from 'node:fs';
import path from 'node:path';

export const repoRoot = path.resolve(import.meta.dirname, '..');
export const chartDir = path.join(repoRoot, 'charts/mailfleet');

export interface SyncPair { from: string; to: string }

/** Every copy the chart holds: source and destination, absolute paths. */
export function syncPairs(): SyncPair[] {
  const crdDir = path.join(repoRoot, 'crds');
  const crds = fs.readdirSync(crdDir).filter((f) => f.endsWith('.yaml')).sort()
    .map((f) => ({ from: path.join(crdDir, f), to: path.join(chartDir, 'crds', f) }));
  return [...crds, { from: path.join(repoRoot, 'deploy/rbac.yaml'), to: path.join(chartDir, 'files/rbac.yaml') }];
}

/** Files in the chart's crds/ with no source any more (a CRD removed upstream). */
export function staleChartCrds(): string[] {
  const dir = path.join(chartDir, 'crds');
  const want = new Set(syncPairs().map((p) => p.to));
  return fs.existsSync(dir) ? fs.readdirSync(dir).map((f) => path.join(dir, f)).filter((f) => !want.has(f)) : [];
}

if (import.meta.main) {
  const check = process.argv.includes('--check');
  let drift = 0;
  for (const { from, to } of syncPairs()) {
    const src = fs.readFileSync(from);
    if (fs.existsSync(to) && fs.readFileSync(to).equals(src)) continue;
    drift++;
    if (check) console.error(`${path.relative(repoRoot, to)} differs from ${path.relative(repoRoot, from)}: run npm run chart:sync`);
    else {
      fs.mkdirSync(path.dirname(to), { recursive: true });
      fs.writeFileSync(to, src);
      console.log(`copied ${path.relative(repoRoot, from)} -> ${path.relative(repoRoot, to)}`);
    }
  }
  for (const f of staleChartCrds()) {
    drift++;
    if (check) console.error(`${path.relative(repoRoot, f)} has no source in crds/: run npm run chart:sync`);
    else { fs.rmSync(f); console.log(`removed ${path.relative(repoRoot, f)}`); }
  }
  process.exit(check && drift ? 1 : 0);
}
