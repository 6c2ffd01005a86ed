// A 25 MB message is hashed while it streams to a spool file, signed, and verified by
// mailauth reading that file: memory growth while hashing must stay far below the message
// size. This is a memory bound, not a timing. The chunks fed are a few prebuilt buffers
// used over and over, so anything the hasher retained would show up as growth.
import { createReadStream, createWriteStream, mkdtempSync, rmSync } from 'node:fs';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dkimVerify } from 'mailauth';
import { DkimBodyHasher, dkimTxtRecord, loadDkimKeys, signMessage, type LoadedKey } from '../../relay/dkim/index.ts';
import { makeKeyDir } from './keys-fixture.ts';

const MESSAGE_BYTES = 25 * 1024 * 1024;
const CHUNK = 64 * 1024;
const MAX_GROWTH = 8 * 1024 * 1024;

const keyDir = makeKeyDir();
const spoolDir = mkdtempSync(join(tmpdir(), 'dkim-spool-'));
let keys: LoadedKey[];
beforeAll(() => {
  keys = loadDkimKeys({
    keys: [
      { selector: 'big-rsa', algorithm: 'rsa-sha256', privateKeyFile: keyDir.rsa('rsa.pem') },
      { selector: 'big-ed', algorithm: 'ed25519-sha256', privateKeyFile: keyDir.ed25519('ed.pem') },
    ],
  });
});
afterAll(() => {
  keyDir.cleanup();
  rmSync(spoolDir, { recursive: true, force: true });
});

const memNow = () => {
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
};

// Body chunks with whitespace runs, tabs, blank lines and lines that straddle chunk ends.
function bodyChunks(): Buffer[] {
  const line = (i: number) => `line ${i}\t with  some   whitespace \t and text ${'x'.repeat(i % 50)}  \r\n${i % 7 === 0 ? '\r\n' : ''}`;
  const chunks: Buffer[] = [];
  for (let c = 0; c < 4; c++) {
    let s = '';
    for (let i = c * 1000; s.length < CHUNK; i++) s += line(i);
    chunks.push(Buffer.from(s.slice(0, CHUNK), 'binary'));
  }
  return chunks;
}

/** Feeds ~25 MB through observe(), returns the peak memory growth seen while doing it. */
async function streamMessage(head: Buffer, chunks: Buffer[], observe: (b: Buffer) => void | Promise<void>): Promise<number> {
  const base = memNow();
  let peak = 0;
  await observe(head);
  const rounds = Math.ceil(MESSAGE_BYTES / CHUNK);
  for (let i = 0; i < rounds; i++) {
    await observe(chunks[i % chunks.length]!);
    if (i % 16 === 0) peak = Math.max(peak, memNow() - base);
  }
  return Math.max(peak, memNow() - base);
}

describe('25 MB message', () => {
  it('hashes while spooling with bounded memory, and the signature verifies from the file', async () => {
    const head = Buffer.from('From: big@big.example\r\nTo: r@example.org\r\nSubject: a large one\r\nMIME-Version: 1.0\r\n\r\n');
    const chunks = bodyChunks();
    const spool = join(spoolDir, 'msg.eml');
    const out = createWriteStream(spool);
    const hasher = new DkimBodyHasher();
    const growth = await streamMessage(head, chunks, async (b) => {
      hasher.feed(b);
      if (!out.write(b)) await once(out, 'drain');
    });
    out.end();
    await once(out, 'finish');
    const { headers, bodyHash, messageBytes } = hasher.end();
    expect(messageBytes).toBeGreaterThanOrEqual(MESSAGE_BYTES);
    expect(growth, `memory grew by ${(growth / 1048576).toFixed(1)} MB while hashing`).toBeLessThan(MAX_GROWTH);

    const sig = await signMessage({ domain: 'big.example', keys, headerBlock: headers, bodyHash });
    const txt: Record<string, string> = Object.fromEntries(keys.map((k) => [`${k.selector}._domainkey.big.example`, dkimTxtRecord(k)]));
    const signed = Readable.from(
      (async function* () {
        yield Buffer.from(sig);
        yield* createReadStream(spool);
      })(),
    );
    const res = await dkimVerify(signed, {
      // This test is about memory; DNS verification is covered in verify.test.ts.
      resolver: async (name: string) => {
        const v = txt[name];
        if (!v) throw Object.assign(new Error(`no TXT for ${name}`), { code: 'ENOTFOUND' });
        return [[v]];
      },
    });
    expect(res.results.map((r) => r.status?.result)).toEqual(['pass', 'pass']);
  });

  it('keeps memory bounded for a 25 MB body with no line break at all', async () => {
    const head = Buffer.from('From: big@big.example\r\n\r\n');
    const chunk = Buffer.alloc(CHUNK, 'a');
    const hasher = new DkimBodyHasher();
    const growth = await streamMessage(head, [chunk], (b) => hasher.feed(b));
    hasher.end();
    expect(growth, `memory grew by ${(growth / 1048576).toFixed(1)} MB`).toBeLessThan(MAX_GROWTH);
  });

  it('the measurement sees retention when there is some (control)', async () => {
    const kept: Buffer[] = [];
    const growth = await streamMessage(Buffer.alloc(0), bodyChunks(), (b) => void kept.push(Buffer.from(b)));
    expect(growth).toBeGreaterThan(MESSAGE_BYTES * 0.8);
    kept.length = 0;
  });
});
