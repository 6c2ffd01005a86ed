// Vitest glue for the cluster harness: one control plane per test file.
//
//   import { describe, it } from 'vitest';
//   import { useCluster } from './fixture.ts';          // or '../cluster/fixture.ts'
//   const cluster = useCluster();                        // registers beforeAll/afterAll
//   describe.skipIf(!cluster.available)('my operator', () => {
//     it('does things', async () => {
//       const c = cluster.get();
//       await c.kubectl(['apply', '-f', '-'], { input: manifest });
//     });
//   });
//
// Missing binaries: skipped loudly on a person's machine, an error in CI (clusterBinariesOrSkip).
// When a test fails, the tail of every component log is printed.
import { afterAll, beforeAll, beforeEach } from 'vitest';
import { clusterBinariesOrSkip, startCluster, type Cluster, type ClusterOptions } from './harness.ts';

export interface ClusterFixture {
  /** False when the binaries are missing (and not CI): skip the suite. */
  available: boolean;
  /** The running cluster; only inside tests and hooks. */
  get(): Cluster;
}

export function useCluster(opts: ClusterOptions & { tier?: string; logLines?: number } = {}): ClusterFixture {
  const binaries = clusterBinariesOrSkip(opts.tier ?? 'cluster');
  let cluster: Cluster | undefined;
  if (binaries) {
    beforeAll(async () => {
      cluster = await startCluster({ ...opts, binaries });
    }, opts.startTimeoutMs ?? 240_000);
    afterAll(async () => {
      await cluster?.stop();
    }, 30_000);
    beforeEach(({ onTestFailed }) => {
      onTestFailed(() => {
        if (cluster) console.error(`\n===== cluster logs (${cluster.dir}) =====\n${cluster.logs(opts.logLines ?? 40)}\n`);
      });
    });
  }
  return {
    available: binaries !== undefined,
    get() {
      if (!cluster) throw new Error('cluster not started (only usable inside tests and hooks)');
      return cluster;
    },
  };
}
