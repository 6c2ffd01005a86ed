// The webhook outbox: a JSON-lines journal (<dir>/webhooks-outbox.jsonl) of "event" and
// "done" records, written by one process (the relay). Appends are group-committed: every
// record queued while a write+fdatasync is in progress goes out in the next single write,
// so a burst of events costs a few fsyncs, and append() resolves only once its record is
// on disk. "done" records ride the same batches; losing one in a crash only means a
// re-send, which at-least-once delivery allows. When superseded records dominate, the
// file is rewritten with the pending events (temp file, fsync, rename, fsync dir).
// Records are framed, parsed and rewritten by relay/util/jsonl.ts, like the suppression
// journal's.
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '../log.ts';
import type { WebhookEvent } from './schema.ts';
import { encodeRecord, parseRecords, rewriteJournal } from '../util/jsonl.ts';

export const outboxName = 'webhooks-outbox.jsonl';

type OutboxRecord = { op: 'event'; event: WebhookEvent } | { op: 'done'; id: string };

const isRecord = (v: unknown): v is OutboxRecord => {
  const r = v as { op?: unknown; event?: { id?: unknown }; id?: unknown } | null;
  return !!r && ((r.op === 'event' && typeof r.event?.id === 'string') || (r.op === 'done' && typeof r.id === 'string'));
};

interface Waiter {
  data: string;
  resolve: () => void;
  reject: (e: Error) => void;
}

export class Outbox {
  readonly path: string;
  /** Events not yet marked done, in file order. */
  readonly pending = new Map<string, WebhookEvent>();
  private fh: fs.FileHandle;
  private records = 0;
  private queue: Waiter[] = [];
  private flushing: Promise<void> | undefined;
  private readonly log: Logger;

  private constructor(path: string, fh: fs.FileHandle, log: Logger) {
    this.path = path;
    this.fh = fh;
    this.log = log;
  }

  static async open(dir: string, log: Logger): Promise<Outbox> {
    await fs.mkdir(dir, { recursive: true });
    const path = join(dir, outboxName);
    const pending = new Map<string, WebhookEvent>();
    let records = 0;
    const buf = await fs.readFile(path).catch((e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') return Buffer.alloc(0);
      throw new Error(`reading webhook outbox ${path}: ${e.message}`);
    });
    const parsed = parseRecords(buf, isRecord, () => log.warn({ path }, 'webhook outbox: skipping a torn line'));
    for (const r of parsed.records) {
      records++;
      if (r.op === 'event') pending.set(r.event.id, r.event);
      else pending.delete(r.id);
    }
    const fh = await fs.open(path, 'a', 0o600);
    const box = new Outbox(path, fh, log);
    for (const [k, v] of pending) box.pending.set(k, v);
    box.records = records;
    return box;
  }

  /** Resolves once the event is durable. */
  add(event: WebhookEvent): Promise<void> {
    this.pending.set(event.id, event);
    return this.write({ op: 'event', event });
  }

  /** Delivered or dropped. Resolves once written (the caller need not wait). */
  done(id: string): Promise<void> {
    if (!this.pending.delete(id)) return Promise.resolve();
    return this.write({ op: 'done', id });
  }

  private write(r: OutboxRecord): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ data: encodeRecord(r), resolve, reject });
      this.flushing ??= this.flushLoop().finally(() => {
        this.flushing = undefined;
      });
    });
  }

  // Bounded: each turn takes everything queued so far; it ends when a turn finds nothing.
  private async flushLoop(): Promise<void> {
    while (this.queue.length > 0) {
      const batch = this.queue;
      this.queue = [];
      try {
        await this.fh.write(batch.map((w) => w.data).join(''));
        await this.fh.datasync();
        this.records += batch.length;
        for (const w of batch) w.resolve();
      } catch (e) {
        const err = new Error(`webhook outbox ${this.path}: ${(e as Error).message}`);
        for (const w of batch) w.reject(err);
      }
      if (this.records > 1_000 && this.records > 4 * this.pending.size) await this.compact();
    }
  }

  private async compact(): Promise<void> {
    try {
      await rewriteJournal(this.path, `${this.path}.tmp`, [...this.pending.values()].map((event) => ({ op: 'event', event })));
      await this.fh.close();
      this.fh = await fs.open(this.path, 'a', 0o600);
      this.records = this.pending.size;
    } catch (e) {
      // Not fatal: the old file is still complete; try again after the next batch.
      this.log.warn({ err: (e as Error).message, path: this.path }, 'webhook outbox compaction failed');
    }
  }

  async close(): Promise<void> {
    await this.flushing;
    await this.fh.close();
  }
}
