// DKIM signing throughput on this machine (not a test; numbers go to BENCHMARKS.md).
//   node bench/dkim.ts            [DKIM_BENCH_SECONDS=3]
// Compares mailauth's dkimSign given a PEM (parsed on every call) with relay/dkim
// (KeyObject parsed once, async crypto.sign on the thread pool), sequential and with
// several signings in flight, for a 4 KB message; plus relaxed body hashing speed, and
// the worst event-loop stall seen during each run.
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { dkimSign, type DKIMSignOptions } from 'mailauth';
import { DkimBodyHasher, loadDkimKeys, signMessage, type LoadedKey } from '../relay/dkim/index.ts';

const SECONDS = Number(process.env.DKIM_BENCH_SECONDS ?? 3);
const MAX_ITERATIONS = 1_000_000;
const DOMAIN = 'bench.example';

const body = Array.from({ length: 60 }, (_, i) => `Line ${i} of a typical transactional message body,  with  text.\r\n`).join('');
const MESSAGE = Buffer.from(
  `From: Bench <bench@${DOMAIN}>\r\nTo: someone@example.org\r\nSubject: Benchmark message\r\n` +
    `Date: Fri, 27 Nov 2026 10:00:00 +0000\r\nMessage-ID: <x@${DOMAIN}>\r\nMIME-Version: 1.0\r\n` +
    `Content-Type: text/plain; charset=utf-8\r\n\r\n${body}`,
);

interface Result { name: string; perSec: number; p99StallMs: number; maxStallMs: number }

async function measure(name: string, inFlight: number, op: () => Promise<unknown>): Promise<Result> {
  for (let i = 0; i < 20; i++) await op(); // warm up
  const h = monitorEventLoopDelay({ resolution: 1 });
  h.enable();
  const deadline = performance.now() + SECONDS * 1000;
  const start = performance.now();
  let done = 0;
  const worker = async () => {
    while (performance.now() < deadline && done < MAX_ITERATIONS) {
      await op();
      done++;
    }
  };
  await Promise.all(Array.from({ length: inFlight }, worker));
  const secs = (performance.now() - start) / 1000;
  h.disable();
  return { name, perSec: done / secs, p99StallMs: h.percentile(99) / 1e6, maxStallMs: h.max / 1e6 };
}

async function ours(keys: LoadedKey[]): Promise<string> {
  const hasher = new DkimBodyHasher();
  hasher.feed(MESSAGE);
  const { headers, bodyHash } = hasher.end();
  return signMessage({ domain: DOMAIN, keys, headerBlock: headers, bodyHash });
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'dkim-bench-'));
  try {
    const rsaPem = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
    const edPem = generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
    writeFileSync(join(dir, 'rsa.pem'), rsaPem);
    writeFileSync(join(dir, 'ed.pem'), edPem);
    const [rsa, ed] = loadDkimKeys({
      keys: [
        { selector: 'r', algorithm: 'rsa-sha256', privateKeyFile: join(dir, 'rsa.pem') },
        { selector: 'e', algorithm: 'ed25519-sha256', privateKeyFile: join(dir, 'ed.pem') },
      ],
    }) as [LoadedKey, LoadedKey];

    const mailauth = (pem: string, algorithm: string) => async () => {
      // index.d.ts describes top-level signing fields, but the signer reads signatureData.
      const opts = { signatureData: [{ signingDomain: DOMAIN, selector: 's', privateKey: pem, algorithm, canonicalization: 'relaxed/relaxed' }] };
      const r = await dkimSign(MESSAGE, opts as unknown as DKIMSignOptions);
      if (!r.signatures) throw new Error(`mailauth produced no signature: ${JSON.stringify(r.errors)}`);
    };

    const results: Result[] = [];
    const run = async (name: string, inFlight: number, op: () => Promise<unknown>) => {
      const r = await measure(name, inFlight, op);
      results.push(r);
      console.log(`${r.name.padEnd(52)} ${r.perSec.toFixed(0).padStart(7)} msgs/s   event-loop delay p99 ${r.p99StallMs.toFixed(1)} ms, max ${r.maxStallMs.toFixed(1)} ms`);
    };
    console.log(`DKIM signing, 4 KB message, ${SECONDS}s per row, node ${process.version}, UV_THREADPOOL_SIZE=${process.env.UV_THREADPOOL_SIZE ?? 4}, load average ${loadavg().map((l) => l.toFixed(1)).join(' ')}`);
    await run('mailauth dkimSign, PEM, RSA-2048', 1, mailauth(rsaPem, 'rsa-sha256'));
    await run('relay/dkim, KeyObject, RSA-2048, 1 in flight', 1, () => ours([rsa]));
    await run('relay/dkim, KeyObject, RSA-2048, 8 in flight', 8, () => ours([rsa]));
    await run('mailauth dkimSign, PEM, Ed25519', 1, mailauth(edPem, 'ed25519-sha256'));
    await run('relay/dkim, KeyObject, Ed25519, 1 in flight', 1, () => ours([ed]));
    await run('relay/dkim, KeyObject, Ed25519, 8 in flight', 8, () => ours([ed]));
    await run('relay/dkim, RSA-2048 + Ed25519, 8 in flight', 8, () => ours([rsa, ed]));

    // Relaxed body hashing of a 25 MB body in 64 KB chunks.
    const chunk = Buffer.from(body.repeat(Math.ceil(65536 / body.length)).slice(0, 65536));
    const rounds = Math.ceil((25 * 1024 * 1024) / chunk.length);
    const t0 = performance.now();
    const hasher = new DkimBodyHasher();
    hasher.feed(Buffer.from('From: a@b.example\r\n\r\n'));
    for (let i = 0; i < rounds; i++) hasher.feed(chunk);
    hasher.end();
    const secs = (performance.now() - t0) / 1000;
    console.log(`${'relaxed body hash, 25 MB in 64 KB chunks'.padEnd(52)} ${(rounds * chunk.length / 1048576 / secs).toFixed(0).padStart(7)} MB/s`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
