// The protocol fuzzer, bounded (15 s here; `npm run fuzz` runs it for longer): the relay
// never answers 250 to a message it then delivers differently, and a legitimate client
// is served afterwards.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSecurityWorld, legitimateDelivery, type SecurityWorld } from './world.ts';
import { fuzz, summary } from './fuzz.ts';

let w: SecurityWorld;
beforeAll(async () => {
  // A high per-minute allowance: the fuzzer opens connections quickly from a few hundred addresses.
  w = await startSecurityWorld((c) => { c.limits = { ...c.limits, maxNewConnectionsPerMinutePerAddress: 10_000 }; });
});
afterAll(async () => { await w?.close(); });

describe('protocol fuzzer', () => {
  it('throws random and mutated SMTP at every listener; what got 250 is what the next hop gets', async () => {
    const report = await fuzz(w, { durationMs: Number(process.env.FUZZ_MS ?? 15_000), seed: Number(process.env.FUZZ_SEED ?? 1) });
    console.log(summary(report));
    expect(report.violations).toEqual([]);
    expect(report.commands).toBeGreaterThan(50);
    expect(report.accepted.length).toBeGreaterThan(0);
    await legitimateDelivery(w, 'after-fuzz');
    const health = await fetch(`http://127.0.0.1:${w.ports.http}/healthz`);
    expect(health.status).toBe(200);
  });
});
