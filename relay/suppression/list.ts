// The relay's in-memory view of the suppression journal (journal.ts): check() is a map
// lookup on the intake hot path; a polling timer picks up records other processes
// appended (the CLI) and compacts the journal when dead records dominate it. Entries are
// scoped (journal.ts PLATFORM): a recipient is refused for a sender when it is on that
// sender domain's list or on the platform-wide one. Changes made here (or read from the
// CLI's appends) are reported to onChange, so fleet.ts can share them through Redis.
import { promises as fs } from 'node:fs';
import type { Logger } from '../log.ts';
import { silentLogger } from '../log.ts';
import { fsyncPath } from '../util/fsync.ts';
import { rewriteJournal } from '../util/jsonl.ts';
import {
  appendRecords,
  applyRecords,
  entryKey,
  journalPath,
  newEntry,
  normalizeAddress,
  normalizeScope,
  parseChunk,
  PLATFORM,
  type JournalRecord,
  type SuppressionEntry,
  type SuppressionInfo,
} from './journal.ts';

export interface SuppressionListOptions {
  /** How often to look for records appended by other processes; 0 disables polling. */
  pollIntervalMs?: number;
  /** Compact when the journal holds more than this many records and over twice the live ones. */
  compactMinRecords?: number;
  logger?: Logger;
  now?: () => number;
}

const staleLockMs = 60_000;

export class SuppressionList {
  readonly dataDir: string;
  private readonly path: string;
  private entries = new Map<string, SuppressionEntry>();
  private ino = -1;
  private offset = 0;
  /** Records in the journal file as we know it (live + superseded): drives compaction. */
  private records = 0;
  private readonly compactMinRecords: number;
  private readonly log: Logger;
  private readonly now: () => number;
  private timer: NodeJS.Timeout | undefined;
  // One refresh/compaction at a time.
  private chain: Promise<void> = Promise.resolve();
  private closed = false;
  private changeListener: ((records: JournalRecord[]) => void) | undefined;

  private constructor(dataDir: string, opts: SuppressionListOptions) {
    this.dataDir = dataDir;
    this.path = journalPath(dataDir);
    this.compactMinRecords = opts.compactMinRecords ?? 1_000;
    this.log = (opts.logger ?? silentLogger).child({ component: 'suppression' });
    this.now = opts.now ?? Date.now;
  }

  static async open(dataDir: string, opts: SuppressionListOptions = {}): Promise<SuppressionList> {
    await fs.mkdir(dataDir, { recursive: true });
    const list = new SuppressionList(dataDir, opts);
    await list.refresh();
    const every = opts.pollIntervalMs ?? 1_000;
    if (every > 0) {
      list.timer = setInterval(() => {
        list.refresh()
          .then(() => (list.shouldCompact() ? list.compact() : undefined))
          .catch((e: Error) => list.log.error({ err: e.message }, 'suppression journal refresh failed'));
      }, every);
      list.timer.unref();
    }
    return list;
  }

  /**
   * The live entry that refuses this address for a sender domain: the domain's own, else
   * the platform-wide one (the only one looked at without a scope). Expired entries are
   * purged and ignored.
   */
  check(address: string, senderDomain?: string): SuppressionEntry | undefined {
    const addr = normalizeAddress(address);
    const scopes = senderDomain ? [senderDomain.toLowerCase(), PLATFORM] : [PLATFORM];
    for (const scope of scopes) {
      const key = entryKey(scope, addr);
      const e = this.entries.get(key);
      if (!e) continue;
      if (e.expiresAt > this.now()) return e;
      this.entries.delete(key);
    }
    return undefined;
  }

  /** Live entries, oldest first; only one scope's when given. */
  list(scope?: string): SuppressionEntry[] {
    const now = this.now();
    const only = scope === undefined ? undefined : normalizeScope(scope);
    return [...this.entries.values()].filter((e) => e.expiresAt > now && (only === undefined || e.scope === only)).sort((a, b) => a.addedAt - b.addedAt);
  }

  /** Durable (fsync'd) when it resolves. Re-adding refreshes reason and expiry. */
  async add(address: string, info: SuppressionInfo, ttlMs: number, scope: string = PLATFORM): Promise<SuppressionEntry> {
    const entry = newEntry(address, info, ttlMs, this.now(), scope);
    const record: JournalRecord = { op: 'add', ...entry };
    await appendRecords(this.dataDir, [record]);
    this.changed(applyRecords(this.entries, [record]));
    return entry;
  }

  /** Removes the address from one scope, or from every scope; returns whether a live entry was removed. */
  async remove(address: string, scope?: string): Promise<boolean> {
    const addr = normalizeAddress(address);
    const now = this.now();
    const only = scope === undefined ? undefined : normalizeScope(scope);
    const records: JournalRecord[] = [...this.entries.values()]
      .filter((e) => e.address === addr && e.expiresAt > now && (only === undefined || e.scope === only))
      .map((e) => ({ op: 'remove', address: addr, scope: e.scope, at: now }));
    if (records.length === 0) return false;
    await appendRecords(this.dataDir, records);
    this.changed(applyRecords(this.entries, records));
    return true;
  }

  /** Reports records that changed the list here (not those applied through applyRemote). */
  onChange(listener: (records: JournalRecord[]) => void): void {
    this.changeListener = listener;
  }

  /**
   * Records another pod made (through Redis): applied now, and appended to the local
   * journal so they survive a restart while Redis is down. Not reported to onChange.
   */
  async applyRemote(records: JournalRecord[]): Promise<number> {
    const fresh = applyRecords(this.entries, records);
    if (fresh.length > 0) await appendRecords(this.dataDir, fresh);
    return fresh.length;
  }

  private changed(records: JournalRecord[]): void {
    if (records.length === 0 || !this.changeListener) return;
    try {
      this.changeListener(records);
    } catch (err) {
      this.log.error({ err: (err as Error).message }, 'suppression change listener failed');
    }
  }

  /** Apply what other processes appended since the last read (or reload after a rewrite). */
  refresh(): Promise<void> {
    return this.serial(() => this.readNew());
  }

  /** Rewrite the journal with live entries only (see journal.ts for the concurrency argument). */
  compact(): Promise<void> {
    return this.serial(() => this.compactNow());
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.chain;
  }

  private serial(fn: () => Promise<void>): Promise<void> {
    const next = this.chain.then(fn, fn);
    this.chain = next.catch(() => {});
    return next;
  }

  private shouldCompact(): boolean {
    return !this.closed && this.records > this.compactMinRecords && this.records > 2 * this.entries.size;
  }

  private async readNew(): Promise<void> {
    let fh: fs.FileHandle;
    try {
      fh = await fs.open(this.path, 'r');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new Error(`opening ${this.path}: ${(e as Error).message}`);
      this.entries.clear();
      this.ino = -1;
      this.offset = 0;
      this.records = 0;
      return;
    }
    try {
      const st = await fh.stat();
      const sameFile = st.ino === this.ino && st.size >= this.offset;
      if (!sameFile) {
        // A different file (compacted by someone, or first read): start over.
        this.entries = new Map();
        this.ino = st.ino;
        this.offset = 0;
        this.records = 0;
      }
      // Only appends to the file we follow are news (the CLI's); a reread is not.
      await this.readTail(fh, st.size, sameFile);
    } finally {
      await fh.close();
    }
  }

  /** Read [offset, size) from fh, apply complete records, advance offset. Bounded by file size. */
  private async readTail(fh: fs.FileHandle, size: number, notify = false): Promise<Buffer> {
    if (size <= this.offset) return Buffer.alloc(0);
    const buf = Buffer.alloc(size - this.offset);
    const { bytesRead } = await fh.read(buf, 0, buf.length, this.offset);
    const chunk = buf.subarray(0, bytesRead);
    const { records, consumed } = parseChunk(chunk, (line) =>
      this.log.warn({ line: line.slice(0, 200) }, 'suppression journal: skipping unparsable line'),
    );
    const changed = applyRecords(this.entries, records);
    if (notify) this.changed(changed);
    this.records += records.length;
    this.offset += consumed;
    return chunk.subarray(0, consumed);
  }

  private async compactNow(): Promise<void> {
    const lock = `${this.path}.compact.lock`;
    if (!(await takeLock(lock))) return;
    const tmp = `${this.path}.tmp-${process.pid}`;
    let old: fs.FileHandle | undefined;
    try {
      old = await fs.open(this.path, 'r').catch(() => undefined);
      if (!old) return;
      // Catch up through the handle we will keep, so we know exactly what the rewrite covers.
      const st = await old.stat();
      if (st.ino !== this.ino) {
        this.entries = new Map();
        this.ino = st.ino;
        this.offset = 0;
        this.records = 0;
      }
      await this.readTail(old, st.size);
      const covered = this.offset;
      const now = this.now();
      const live = [...this.entries.values()].filter((e) => e.expiresAt > now);
      const written = await rewriteJournal(this.path, tmp, live.map((e) => ({ op: 'add', ...e })));
      // Records another process appended to the old file after our read: carry them over.
      const oldSize = (await old.stat()).size;
      this.offset = covered;
      const tail = await this.readTail(old, oldSize);
      const before = this.entries.size;
      this.entries = new Map(live.map((e) => [entryKey(e.scope, e.address), e]));
      applyRecords(this.entries, parseChunk(tail).records);
      if (tail.length > 0) await fs.appendFile(this.path, tail).then(() => fsyncPath(this.path, 'r+'));
      this.ino = written.ino;
      this.offset = written.bytes; // the carried tail is re-read next time: harmless
      this.records = live.length;
      this.log.info({ live: live.length, dropped: before - live.length }, 'suppression journal compacted');
    } finally {
      await old?.close();
      await fs.rm(tmp, { force: true });
      await fs.rm(lock, { force: true });
    }
  }
}

async function takeLock(lock: string): Promise<boolean> {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fh = await fs.open(lock, 'wx', 0o600);
      await fh.write(String(process.pid));
      await fh.close();
      return true;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      // A compactor that died (kill -9) leaves its lock behind; compaction is quick, so an old lock is stale.
      const st = await fs.stat(lock).catch(() => undefined);
      if (!st || Date.now() - st.mtimeMs < staleLockMs) return false;
      await fs.rm(lock, { force: true });
    }
  }
  return false;
}
