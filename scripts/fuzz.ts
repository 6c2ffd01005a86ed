// `npm run fuzz`: the security tier's protocol fuzzer (test/security/fuzz.ts) for longer
// than the test suite runs it. FUZZ_SECONDS (default 300) and FUZZ_SEED (default: the
// time) choose the run; the seed is printed so a failure can be replayed. Exits 1 when
// the relay accepted a message and delivered something else, or stopped serving.
import { startSecurityWorld, legitimateDelivery } from '../test/security/world.ts';
import { fuzz, summary } from '../test/security/fuzz.ts';

const seconds = Number(process.env.FUZZ_SECONDS ?? 300);
const seed = Number(process.env.FUZZ_SEED ?? Date.now() % 1_000_000);
console.log(`fuzzing every listener for ${seconds}s, seed ${seed} (replay with FUZZ_SEED=${seed})`);
const w = await startSecurityWorld((c) => { c.limits = { ...c.limits, maxNewConnectionsPerMinutePerAddress: 100_000 }; });
let failed = false;
try {
  const report = await fuzz(w, { durationMs: seconds * 1000, seed, workers: Number(process.env.FUZZ_WORKERS ?? 6) });
  console.log(summary(report));
  for (const v of report.violations) console.log(`VIOLATION ${v}`);
  failed = report.violations.length > 0;
  await legitimateDelivery(w, 'after-fuzz');
  console.log('a legitimate client was served after the run');
} catch (err) {
  console.log(`FAILED: ${(err as Error).message}`);
  failed = true;
} finally {
  await w.close();
}
process.exit(failed ? 1 : 0);
