// `npm run bench:gate`: what the intake's data gate (relay/smtp/data-gate.ts: line endings,
// header block parsed once, one From, Bcc) costs per message, in CPU time on this machine:
// the same 4 KB message streamed through the gate and through a plain pass-through, the
// way the queue store reads it (an async iterable of chunks). Not a test; numbers go to
// BENCHMARKS.md. Bounded: a fixed number of rounds.
import { Readable } from 'node:stream';
import { loadavg } from 'node:os';
import { DataGate } from '../relay/smtp/data-gate.ts';

const ROUNDS = Number(process.env.GATE_BENCH_ROUNDS ?? 50_000);
const body = Array.from({ length: 60 }, (_, i) => `Line ${i} of a typical transactional message body,  with  text.\r\n`).join('');
const MESSAGE = Buffer.from(
  'Received: from client.example ([127.0.0.1]) by relay.bench\r\nFrom: Bench <bench@example.test>\r\nTo: someone@dest.test\r\n' +
    'Subject: Benchmark message\r\nDate: Fri, 27 Nov 2026 10:00:00 +0000\r\nMessage-ID: <x@example.test>\r\nMIME-Version: 1.0\r\n' +
    `Content-Type: text/plain; charset=utf-8\r\n\r\n${body}`,
);

function chunksOf(size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < MESSAGE.length; i += size) out.push(MESSAGE.subarray(i, i + size));
  return out;
}

async function drain(source: AsyncIterable<Buffer>): Promise<number> {
  let n = 0;
  for await (const c of source) n += c.length;
  return n;
}

async function perMessageUs(chunks: Buffer[], gated: boolean): Promise<number> {
  const run = async () => {
    const stream = Readable.from(chunks, { objectMode: false });
    if (!gated) return drain(stream);
    const gate = new DataGate({ bareLineEndings: 'reject', maxHeaderBytes: 1024 * 1024, maxMessageBytes: 25 * 1024 * 1024 });
    let bodyBytes = 0;
    gate.onBody = (c) => { bodyBytes += c.length; };
    const n = await drain(gate.filter(stream));
    if (!gate.headers || bodyBytes === 0) throw new Error('the gate passed no headers or no body');
    return n;
  };
  for (let i = 0; i < 2_000; i++) await run(); // warm up
  const before = process.cpuUsage();
  for (let i = 0; i < ROUNDS; i++) await run();
  const used = process.cpuUsage(before);
  return (used.user + used.system) / ROUNDS;
}

async function main(): Promise<void> {
  console.log(`# data gate: ${MESSAGE.length} B message, ${ROUNDS} rounds, Node ${process.version}, load ${loadavg()[0]!.toFixed(1)}`);
  const rows = [];
  for (const size of [MESSAGE.length, 1024]) {
    const chunks = chunksOf(size);
    const plain = await perMessageUs(chunks, false);
    const gated = await perMessageUs(chunks, true);
    rows.push({ chunks: chunks.length, passThroughUs: +plain.toFixed(1), gatedUs: +gated.toFixed(1), gateCostUs: +(gated - plain).toFixed(1) });
  }
  console.table(rows);
}

await main();
