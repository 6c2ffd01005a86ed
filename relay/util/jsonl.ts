// The JSON-lines journal format shared by the suppression list and the webhook outbox:
// each record is written as "\n<json>\n", so a line torn by a crash is ended by the next
// record's leading newline and skipped on reading instead of corrupting its neighbour;
// compaction rewrites a journal whole through a temp file (write, fsync, rename, fsync
// the directory), so a crash leaves either the old file or the new one.
import { promises as fs } from 'node:fs';
import { dirname } from 'node:path';
import { fsyncPath } from './fsync.ts';

/** One record as it is appended. */
export function encodeRecord(record: unknown): string {
  return `\n${JSON.stringify(record)}\n`;
}

/**
 * The records of the complete lines in `buf` (up to its last newline) that `accept`
 * recognises; other lines go to `onBad`. `consumed` is how many bytes were complete lines,
 * i.e. where a reader following the file continues.
 */
export function parseRecords<T>(buf: Buffer, accept: (value: unknown) => value is T, onBad?: (line: string) => void): { records: T[]; consumed: number } {
  const end = buf.lastIndexOf(0x0a);
  if (end < 0) return { records: [], consumed: 0 };
  const records: T[] = [];
  for (const line of buf.subarray(0, end).toString('utf8').split('\n')) {
    if (line === '') continue;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      onBad?.(line);
      continue;
    }
    if (accept(value)) records.push(value);
    else onBad?.(line);
  }
  return { records, consumed: end + 1 };
}

/**
 * Replaces `path` by `records`, durably: written to `tmp`, fsynced, renamed over `path`,
 * the directory fsynced. Returns the new file's inode (a follower of the file compares it).
 * `tmp` is removed if anything fails before the rename.
 */
export async function rewriteJournal(path: string, tmp: string, records: readonly unknown[]): Promise<{ ino: number; bytes: number }> {
  const data = records.map(encodeRecord).join('');
  try {
    const out = await fs.open(tmp, 'w', 0o600);
    let ino: number;
    try {
      await out.write(data);
      await out.sync();
      ino = (await out.stat()).ino;
    } finally {
      await out.close();
    }
    await fs.rename(tmp, path);
    await fsyncPath(dirname(path));
    return { ino, bytes: Buffer.byteLength(data) };
  } catch (e) {
    await fs.rm(tmp, { force: true });
    throw e;
  }
}
