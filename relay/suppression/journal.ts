// The suppression list on disk: one append-only JSON-lines journal, <dataDir>/suppression.jsonl.
//
// Why a journal rather than a file rewritten on every change: two processes write it — the
// relay (adds on hard bounces) and `mailfleet suppression remove` (run beside it, e.g. by
// kubectl exec). Appends with O_APPEND of one small write() each never interleave, so
// neither needs a lock, and the relay learns about the CLI's records by reading the tail
// past the offset it has already applied (replaying a record twice is harmless: records
// are idempotent and applied in file order).
//
// Compaction (only the relay does it, under an O_EXCL lock file so two compactors never
// race) rewrites live entries to a temp file, fsyncs, renames over the journal, then
// copies any tail that another process appended to the old file meanwhile. An appender
// that wrote to the old inode after that copy sees, after its write, that the path now
// names another inode, and appends again to the new file. Either way no record is lost.
//
// Records are framed and parsed by relay/util/jsonl.ts, like the webhook outbox's.
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { encodeRecord, parseRecords } from '../util/jsonl.ts';

export const journalName = 'suppression.jsonl';

export interface SuppressionInfo {
  reason: string;
  /** SMTP reply code / enhanced status that caused it, e.g. "550 5.1.1". */
  code?: string;
  /** Who added it: 'bounce', 'dsn', 'cli', 'api', ... */
  source: string;
}

/**
 * Whose list an entry is on: the sender domain whose mail bounced (one tenant's), or
 * PLATFORM for the relay-wide list that applies to every sender. Records written before
 * scopes existed carry none and are read as PLATFORM, which is what they meant then.
 */
export const PLATFORM = '*';

export interface SuppressionEntry extends SuppressionInfo {
  address: string;
  scope: string;
  addedAt: number;
  expiresAt: number;
}

export type JournalRecord =
  | ({ op: 'add' } & SuppressionEntry)
  | { op: 'remove'; address: string; scope: string; at: number };

/** Map key of an entry: scope and address (a domain has no space). */
export function entryKey(scope: string, address: string): string {
  return `${scope} ${address}`;
}

export function normalizeScope(scope: string): string {
  const s = scope.trim().toLowerCase();
  if (s === PLATFORM || /^[a-z0-9-]+(\.[a-z0-9-]+)+$/.test(s)) return s;
  throw new Error(`suppression scope must be a sender domain or ${PLATFORM} (platform-wide), got ${JSON.stringify(scope)}`);
}

/** A new entry, validated: the one place both the relay and the CLI build one. */
export function newEntry(address: string, info: SuppressionInfo, ttlMs: number, now: number, scope: string = PLATFORM): SuppressionEntry {
  if (!(ttlMs > 0)) throw new Error(`suppression ttlMs must be positive, got ${ttlMs}`);
  return {
    address: normalizeAddress(address),
    scope: normalizeScope(scope),
    reason: info.reason,
    ...(info.code !== undefined ? { code: info.code } : {}),
    source: info.source,
    addedAt: now,
    expiresAt: now + ttlMs,
  };
}

export function journalPath(dataDir: string): string {
  return join(dataDir, journalName);
}

/** Local part kept as given (it may be case-sensitive), domain lowercased. */
export function normalizeAddress(address: string): string {
  const a = address.trim();
  const at = a.lastIndexOf('@');
  if (at <= 0 || at === a.length - 1) throw new Error(`not an email address: ${JSON.stringify(address)}`);
  return `${a.slice(0, at)}@${a.slice(at + 1).toLowerCase()}`;
}

const isRecord = (v: unknown): v is JournalRecord => {
  const r = v as Partial<JournalRecord> | null;
  return !!r && (r.op === 'add' || r.op === 'remove') && typeof r.address === 'string';
};

/** Parse complete lines of a chunk; returns records and bytes consumed (up to the last newline). */
export function parseChunk(buf: Buffer, onBad?: (line: string) => void): { records: JournalRecord[]; consumed: number } {
  // Records written before scopes existed carry none: they were relay-wide, i.e. PLATFORM.
  const { records, consumed } = parseRecords(buf, isRecord, onBad);
  return { records: records.map((r) => (typeof r.scope === 'string' ? r : { ...r, scope: PLATFORM })), consumed };
}

/**
 * Apply records in order to a map of live entries (expiry is judged by the reader).
 * Returns the records that changed the map (a record read again is not a change).
 */
export function applyRecords(map: Map<string, SuppressionEntry>, records: JournalRecord[]): JournalRecord[] {
  const changed: JournalRecord[] = [];
  for (const r of records) {
    const key = entryKey(r.scope, r.address);
    if (r.op === 'add') {
      const { op: _op, ...entry } = r;
      const had = map.get(key);
      if (had && had.addedAt === entry.addedAt && had.expiresAt === entry.expiresAt && had.reason === entry.reason) continue;
      map.set(key, entry);
      changed.push(r);
    } else if (map.delete(key)) changed.push(r);
  }
  return changed;
}

/** Append records durably (fsync), surviving a concurrent compaction (see the header). */
export async function appendRecords(dataDir: string, records: JournalRecord[]): Promise<void> {
  const data = records.map(encodeRecord).join('');
  const path = journalPath(dataDir);
  for (let attempt = 0; attempt < 5; attempt++) {
    const fh = await fs.open(path, 'a', 0o600);
    try {
      await fh.write(data);
      await fh.datasync();
      const [mine, current] = await Promise.all([fh.stat(), fs.stat(path).catch(() => undefined)]);
      if (current && current.ino === mine.ino && current.dev === mine.dev) return;
    } finally {
      await fh.close();
    }
  }
  throw new Error(`suppression journal ${path}: replaced by compaction 5 times during one append`);
}

/** Read the whole journal into live entries (expired ones dropped). */
export async function readJournal(dataDir: string, now = Date.now()): Promise<Map<string, SuppressionEntry>> {
  const map = new Map<string, SuppressionEntry>();
  let buf: Buffer;
  try {
    buf = await fs.readFile(journalPath(dataDir));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return map;
    throw new Error(`reading suppression journal in ${dataDir}: ${(e as Error).message}`);
  }
  applyRecords(map, parseChunk(buf).records);
  for (const [k, e] of map) if (e.expiresAt <= now) map.delete(k);
  return map;
}
