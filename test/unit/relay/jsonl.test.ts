// The JSON-lines journal format of the suppression list and the webhook outbox.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { encodeRecord, parseRecords, rewriteJournal } from '../../../relay/util/jsonl.ts';

const isNum = (v: unknown): v is { n: number } => typeof (v as { n?: unknown } | null)?.n === 'number';

describe('JSON-lines journal', () => {
  it('skips a line torn by a crash without losing the record written after it', () => {
    const torn = encodeRecord({ n: 1 }) + encodeRecord({ n: 2 }).slice(0, 5) + encodeRecord({ n: 3 }) + encodeRecord({ x: 4 });
    const bad: string[] = [];
    const { records, consumed } = parseRecords(Buffer.from(`${torn}\n{"n":`), isNum, (l) => bad.push(l));
    expect(records).toEqual([{ n: 1 }, { n: 3 }]);
    expect(bad).toEqual(['{"n"', '{"x":4}']);
    // a follower continues at the incomplete tail, which may still be being written
    expect(consumed).toBe(Buffer.byteLength(torn) + 1);
  });

  it('rewrites a journal whole, leaving no temp file', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mailfleet-jsonl-'));
    try {
      const file = path.join(dir, 'j.jsonl');
      fs.writeFileSync(file, encodeRecord({ n: 0 }).repeat(3));
      const { ino, bytes } = await rewriteJournal(file, `${file}.tmp`, [{ n: 1 }, { n: 2 }]);
      expect(parseRecords(fs.readFileSync(file), isNum).records).toEqual([{ n: 1 }, { n: 2 }]);
      expect([fs.statSync(file).ino, fs.statSync(file).size]).toEqual([ino, bytes]);
      expect(fs.readdirSync(dir)).toEqual(['j.jsonl']);
      await expect(rewriteJournal(path.join(dir, 'missing', 'j.jsonl'), path.join(dir, 'missing', 't'), [])).rejects.toThrow(/ENOENT/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
