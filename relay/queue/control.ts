// Queue control (postqueue/postsuper for MailFleet): list, show, retry, hold, release,
// delete (with or without a DSN) and import. The same code serves the relay's admin API
// (with the running delivery runner behind `hooks`) and the offline CLI on a data dir.
import type { Readable } from 'node:stream';
import type { Logger } from '../log.ts';
import { domainOf } from '../util/address.ts';
import { queueDsn } from './bounce.ts';
import type { DeliveryState, QueuedMessage, QueueStore } from './store.ts';

export interface QueueFilter {
  /** Sender domain (of the envelope sender). */
  sender?: string | undefined;
  /** Recipient domain: a message matches when one of its open recipients is in it. */
  recipient?: string | undefined;
  /** Only messages at least this old (ms since arrival). */
  minAgeMs?: number | undefined;
  /** Only messages at most this old. */
  maxAgeMs?: number | undefined;
}

/** What the running relay adds: its delivery runner. Offline, nothing is busy and nothing needs scheduling. */
export interface QueueHooks {
  busy(id: string): boolean;
  schedule(q: QueuedMessage): void;
}

export interface QueueEntry {
  id: string;
  from: string;
  recipients: string[];
  open: string[];
  receivedAt: string;
  ageSeconds: number;
  size: number;
  attempts: number;
  nextAttemptAt: string;
  held: boolean;
  isDsn: boolean;
  lastResponse?: string;
}

export class QueueControlError extends Error {
  readonly status: 400 | 404 | 409;
  constructor(status: 400 | 404 | 409, message: string) {
    super(message);
    this.name = 'QueueControlError';
    this.status = status;
  }
}

export const offlineHooks: QueueHooks = { busy: () => false, schedule: () => {} };

export class QueueControl {
  private readonly store: QueueStore;
  private readonly hooks: QueueHooks;
  private readonly hostname: string;
  private readonly log: Logger;

  constructor(opts: { store: QueueStore; hooks: QueueHooks; hostname: string; log: Logger }) {
    this.store = opts.store;
    this.hooks = opts.hooks;
    this.hostname = opts.hostname;
    this.log = opts.log.child({ component: 'queue-control' });
  }

  list(filter: QueueFilter = {}, now = Date.now()): QueueEntry[] {
    const out: QueueEntry[] = [];
    for (const q of this.store.messages()) if (matches(q, filter, now)) out.push(entryOf(q, now));
    return out.sort((a, b) => a.receivedAt.localeCompare(b.receivedAt) || a.id.localeCompare(b.id));
  }

  async show(id: string): Promise<QueueEntry & { done: DeliveryState['done']; headers: string }> {
    const q = this.get(id);
    const headers = (await this.store.readHeaders(id)).toString('utf8');
    return { ...entryOf(q, Date.now()), done: q.state.done, headers };
  }

  /** Due now. A held message stays held (release it); one in delivery right now is left alone. */
  async retry(id: string): Promise<'scheduled' | 'held' | 'busy'> {
    const q = this.get(id);
    if (q.state.held) return 'held';
    if (this.hooks.busy(id)) return 'busy';
    await this.store.saveState(id, { ...q.state, nextAttemptAt: Date.now() });
    this.hooks.schedule(q);
    this.log.info({ queueId: id }, 'queue retry');
    return 'scheduled';
  }

  async retryAll(filter: QueueFilter = {}): Promise<{ scheduled: string[]; skipped: string[] }> {
    const scheduled: string[] = [];
    const skipped: string[] = [];
    // Bounded: one pass over a snapshot of the matching ids.
    for (const e of this.list(filter)) ((await this.retry(e.id)) === 'scheduled' ? scheduled : skipped).push(e.id);
    return { scheduled, skipped };
  }

  async hold(id: string): Promise<void> {
    const q = this.get(id);
    await this.store.saveState(id, { ...q.state, held: true });
    this.log.info({ queueId: id }, 'queue hold');
  }

  async release(id: string): Promise<void> {
    const q = this.get(id);
    const { held: _held, ...rest } = q.state;
    await this.store.saveState(id, { ...rest, nextAttemptAt: Date.now() });
    this.hooks.schedule(q);
    this.log.info({ queueId: id }, 'queue release');
  }

  /**
   * Removes a message. With `dsn`, its open recipients are reported to the sender as failed
   * (5.0.0, deleted by the administrator) first. Refused while an attempt is running.
   */
  async delete(id: string, opts: { dsn: boolean }): Promise<{ dsnQueueId?: string }> {
    const q = this.get(id);
    if (this.hooks.busy(id)) throw new QueueControlError(409, `${id} is being delivered right now; hold it, or try again in a moment`);
    let dsnQueueId: string | undefined;
    if (opts.dsn) {
      const now = Date.now();
      const done = { ...q.state.done };
      for (const r of q.meta.recipients) {
        done[r] ??= { status: 'failed', enhanced: '5.0.0', response: 'deleted from the queue by the relay administrator', at: now };
      }
      const dsn = await queueDsn(this.store, q, { ...q.state, done }, this.hostname, this.log);
      if (dsn) { this.hooks.schedule(dsn); dsnQueueId = dsn.meta.id; }
    }
    await this.store.remove(id);
    this.log.warn({ queueId: id, from: q.meta.from, recipients: q.meta.recipients.length, dsn: opts.dsn }, 'queue delete');
    return dsnQueueId ? { dsnQueueId } : {};
  }

  /** Takes in a message exported from another relay's queue (see QueueStore.importMessage). */
  async import(file: Readable, state?: DeliveryState): Promise<string> {
    const q = await this.store.importMessage(file, state);
    this.hooks.schedule(q);
    this.log.info({ queueId: q.meta.id, from: q.meta.from, recipients: q.meta.recipients.length }, 'queue import');
    return q.meta.id;
  }

  private get(id: string): QueuedMessage {
    const q = this.store.get(id);
    if (!q) throw new QueueControlError(404, `no message ${id} in the queue`);
    return q;
  }
}

function matches(q: QueuedMessage, f: QueueFilter, now: number): boolean {
  const age = now - q.meta.receivedAt;
  if (f.minAgeMs !== undefined && age < f.minAgeMs) return false;
  if (f.maxAgeMs !== undefined && age > f.maxAgeMs) return false;
  if (f.sender && domainOf(q.meta.from) !== f.sender.toLowerCase()) return false;
  if (f.recipient) {
    const want = f.recipient.toLowerCase();
    if (!q.meta.recipients.some((r) => !q.state.done[r] && domainOf(r) === want)) return false;
  }
  return true;
}

function entryOf(q: QueuedMessage, now: number): QueueEntry {
  const { meta, state } = q;
  return {
    id: meta.id, from: meta.from, recipients: meta.recipients, open: meta.recipients.filter((r) => !state.done[r]),
    receivedAt: new Date(meta.receivedAt).toISOString(), ageSeconds: Math.round((now - meta.receivedAt) / 1000),
    size: meta.size, attempts: state.attempts, nextAttemptAt: new Date(state.nextAttemptAt).toISOString(),
    held: state.held === true, isDsn: meta.isDsn === true, ...(state.lastResponse ? { lastResponse: state.lastResponse } : {}),
  };
}
