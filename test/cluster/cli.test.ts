// cluster:up / cluster:down keep each cluster to itself: two clusters started by two runs
// live side by side, down stops only the one it is told about (by name, MAILFLEET_CLUSTER or
// KUBECONFIG), and down with nothing to go on stops nothing.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { clusterBinariesOrSkip, namedClustersDir, type Binaries } from './harness.ts';

const cli = path.join(import.meta.dirname, 'cli.ts');
const bins: Binaries | undefined = clusterBinariesOrSkip('cluster cli');
const a = `t${process.pid}-a`;
const b = `t${process.pid}-b`;

/** Runs the CLI with an environment that names no cluster unless env does. */
function run(args: string[], env: NodeJS.ProcessEnv = {}) {
  const base = { ...process.env };
  delete base.MAILFLEET_CLUSTER;
  delete base.KUBECONFIG;
  const r = spawnSync(process.execPath, [cli, ...args], { env: { ...base, ...env }, encoding: 'utf8', timeout: 240_000 });
  return { code: r.status, out: `${r.stdout}${r.stderr}`, stdout: r.stdout };
}

const exported = (stdout: string, v: string) => new RegExp(`^export ${v}=(.+)$`, 'm').exec(stdout)?.[1];

function kubectl(kubeconfig: string, args: string[]) {
  return spawnSync(bins?.kubectl ?? 'kubectl', ['--kubeconfig', kubeconfig, ...args], { encoding: 'utf8', timeout: 60_000 });
}

afterAll(() => {
  for (const n of [a, b]) run(['down', n]);
}, 60_000);

describe('cluster:down without a name', () => {
  it('stops nothing and says which clusters run', () => {
    const r = run(['down']);
    expect(r.code).toBe(2);
    expect(r.out).toMatch(/which cluster\? name it/);
  });

  it('refuses a name that is not a plain word', () => {
    const r = run(['down', '../k8s']);
    expect(r.code).toBe(2);
    expect(r.out).toMatch(/cluster name "\.\.\/k8s"/);
  });
});

describe.skipIf(!bins)('cluster:up / cluster:down isolation', { timeout: 600_000 }, () => {
  it('runs two clusters side by side and stops only the one it is told about', () => {
    const upA = run(['up', a]);
    expect(upA.code, upA.out).toBe(0);
    const upB = run(['up'], { MAILFLEET_CLUSTER: b });
    expect(upB.code, upB.out).toBe(0);
    const kcA = exported(upA.stdout, 'KUBECONFIG') as string;
    const kcB = exported(upB.stdout, 'KUBECONFIG') as string;
    expect(exported(upA.stdout, 'MAILFLEET_CLUSTER')).toBe(a);
    expect(exported(upB.stdout, 'MAILFLEET_CLUSTER')).toBe(b);
    expect(path.dirname(kcA)).toBe(path.join(namedClustersDir(), a));
    expect(path.dirname(kcB)).toBe(path.join(namedClustersDir(), b));
    expect(kubectl(kcA, ['get', 'ns', 'default']).status).toBe(0);
    expect(kubectl(kcB, ['get', 'ns', 'default']).status).toBe(0);

    // a second up of a running name reports it instead of starting another
    const again = run(['up', a]);
    expect(again.out).toMatch(new RegExp(`cluster ${a} already running`));
    expect(exported(again.stdout, 'KUBECONFIG')).toBe(kcA);
    expect(run(['list']).stdout).toMatch(new RegExp(`^${a}\\t.*\\n?`, 'm'));

    // down in A's shell (KUBECONFIG set by eval) stops A and leaves B alone
    const downA = run(['down'], { KUBECONFIG: kcA });
    expect(downA.code, downA.out).toBe(0);
    expect(fs.existsSync(path.join(namedClustersDir(), a))).toBe(false);
    expect(kubectl(kcB, ['get', 'ns', 'default']).status).toBe(0);
    const listed = run(['list']).stdout;
    expect(listed).toMatch(new RegExp(`^${b}\\t`, 'm'));
    expect(listed).not.toMatch(new RegExp(`^${a}\\t`, 'm'));

    expect(run(['down', b]).code).toBe(0);
    expect(fs.existsSync(path.join(namedClustersDir(), b))).toBe(false);
  });
});
