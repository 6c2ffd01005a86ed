// The chart holds copies (Helm reads nothing outside the chart directory): its crds/ must be
// byte-identical to the top-level crds/ and files/rbac.yaml to deploy/rbac.yaml. Refresh
// with `npm run chart:sync` (scripts/sync-chart.ts).
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { staleChartCrds, syncPairs } from '../../scripts/sync-chart.ts';
import { chartDir, repoRoot } from './helpers.ts';

describe('chart copies', () => {
  it("chart crds/ is identical to the top-level crds/ (same files, same bytes)", () => {
    const top = fs.readdirSync(path.join(repoRoot, 'crds')).sort();
    const chart = fs.readdirSync(path.join(chartDir, 'crds')).sort();
    expect(top.length).toBeGreaterThan(0);
    expect(chart).toEqual(top);
    expect(staleChartCrds()).toEqual([]);
  });

  it('every copy matches its source (run npm run chart:sync when this fails)', () => {
    const pairs = syncPairs();
    expect(pairs.map((p) => path.relative(repoRoot, p.to))).toContain('charts/mailfleet/files/rbac.yaml');
    for (const { from, to } of pairs) {
      expect(fs.existsSync(to), `${to} missing: run npm run chart:sync`).toBe(true);
      expect(fs.readFileSync(to, 'utf8'), `${path.relative(repoRoot, to)} differs from ${path.relative(repoRoot, from)}: run npm run chart:sync`)
        .toBe(fs.readFileSync(from, 'utf8'));
    }
  });
});
