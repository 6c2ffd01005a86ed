// The delivery loop: takes due messages from the queue, hands the recipients still open
// to the Deliverer, records per-recipient outcomes, schedules retries, and turns
// permanent failures and expiries into DSNs queued back to the sender.
import { setMaxListeners } from 'node:events';
import type { Logger } from '../log.ts';
import type { Metrics } from '../metrics.ts';
import type { Deliverer } from '../delivery/deliverer.ts';
import type { RecipientOutcome } from '../delivery/types.ts';
import { queueDelayDsn, queueDsn } from './bounce.ts';
import { wantsNotice } from './dsn.ts';
import { DuePump } from '../util/due-pump.ts';
import { backoffAfter, isExpired, nextAttemptAt, type RetryPolicy } from './schedule.ts';
import type { DeliveryState, QueuedMessage, QueueStore, RecipientResult } from './store.ts';
import { domainOf } from '../util/address.ts';

export type DeliveryEventType = 'delivered' | 'deferred' | 'bounced' | 'expired';
export interface DeliveryEvent {
  type: DeliveryEventType;
  queueId: string;
  from: string;
  recipient: string;
  response: string;
  code?: number;
  enhanced?: string;
  remote?: string;
  senderDomain?: string;
}

/** Delivery pacing per recipient domain: mail over the rate waits in the queue. */
export type DestinationGate = (domain: string) => Promise<{ allowed: boolean; retryAfterMs: number }>;

export interface RunnerOptions {
  store: QueueStore;
  /** The deliverer for a message's sender domain (per-domain smarthosts), or the default. */
  deliverer: (senderDomain: string | undefined) => Deliverer;
  destinationGate?: DestinationGate;
  policy: RetryPolicy;
  concurrency: number;
  hostname: string;
  log: Logger;
  metrics: Metrics;
  onEvent?: (event: DeliveryEvent) => void;
}

const MAX_TIMER_MS = 60_000;
/** After the abort, how long attempts get to save their state. */
const ABORT_GRACE_MS = 1_000;

/** Resolves true when `p` settles within ms, false otherwise. */
async function raceTimeout(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<false>((resolve) => { timer = setTimeout(() => resolve(false), Math.max(ms, 0)); });
  try {
    return await Promise.race([p.then(() => true as const), expired]);
  } finally {
    clearTimeout(timer);
  }
}

export class DeliveryRunner {
  private readonly opts: RunnerOptions;
  private readonly due: DuePump<{ at: number; id: string }>;
  private readonly inFlight = new Map<string, Promise<void>>();
  /** Messages a hand-off is moving to another relay: no attempt starts for them. */
  private readonly reserved = new Set<string>();
  /** Aborted at the shutdown deadline: attempts still running end and defer their recipients. */
  private readonly abort = new AbortController();

  constructor(opts: RunnerOptions) {
    this.opts = opts;
    this.due = new DuePump({ limit: () => this.opts.concurrency, run: (top) => this.run(top), maxSleepMs: MAX_TIMER_MS });
    // every attempt in flight listens to it (up to `concurrency`)
    setMaxListeners(0, this.abort.signal);
  }

  setPolicy(policy: RetryPolicy, concurrency: number): void {
    this.opts.policy = policy;
    this.opts.concurrency = concurrency;
    this.due.pump();
  }

  start(): void {
    for (const q of this.opts.store.messages()) this.due.schedule(q.state.nextAttemptAt, { at: q.state.nextAttemptAt, id: q.meta.id });
    this.due.start();
  }

  /** A message was just committed: deliver it now. */
  enqueue(q: QueuedMessage): void {
    this.due.schedule(q.state.nextAttemptAt, { at: q.state.nextAttemptAt, id: q.meta.id });
    this.due.pump();
  }

  /**
   * Stops taking new work and waits for the attempts in flight to finish — until
   * `deadline` (epoch ms) when one is given: then they are aborted, their open recipients
   * deferred (state saved, no attempt counted, due again at once after a restart), and
   * this waits at most ABORT_GRACE_MS more for them to record that.
   */
  async stop(deadline?: number): Promise<void> {
    this.due.stop();
    const settled = Promise.allSettled(this.inFlight.values()).then(() => true);
    if (deadline === undefined) { await settled; return; }
    if (await raceTimeout(settled, deadline - Date.now())) return;
    this.opts.log.warn({ inFlight: this.inFlight.size }, 'drain deadline reached: aborting delivery attempts, their recipients stay queued');
    this.abort.abort(new Error('shutdown deadline'));
    if (!(await raceTimeout(settled, ABORT_GRACE_MS))) this.opts.log.error({ inFlight: this.inFlight.size }, 'delivery attempts did not end after the abort; their messages stay queued');
  }

  /** An attempt for this message is running now, or a hand-off holds it (queue control must not remove it under them). */
  busy(id: string): boolean {
    return this.inFlight.has(id) || this.reserved.has(id);
  }

  /**
   * Takes a message away from delivery while something else moves it (the scale-down
   * hand-off): false when an attempt is running. Until unreserve() no attempt starts.
   */
  reserve(id: string): boolean {
    if (this.inFlight.has(id) || this.reserved.has(id)) return false;
    this.reserved.add(id);
    return true;
  }

  /** Gives a reserved message back to delivery (when it is still queued: the hand-off failed). */
  unreserve(id: string): void {
    if (!this.reserved.delete(id)) return;
    const q = this.opts.store.get(id);
    if (q) this.enqueue(q);
  }

  get activeDeliveries(): number {
    return this.inFlight.size;
  }

  /** Starts an attempt for a due heap entry; undefined for a stale one. */
  private run(top: { at: number; id: string }): Promise<void> | undefined {
    const q = this.opts.store.get(top.id);
    // Stale heap entries (already finished, or rescheduled) are skipped.
    // Held messages wait for `queue release` (which schedules them again).
    if (!q || this.inFlight.has(top.id) || this.reserved.has(top.id) || q.state.nextAttemptAt !== top.at || q.state.held) return undefined;
    const p = this.attempt(q)
      .catch((err: Error) => {
        // Whatever broke (state write, DSN queueing, unlink), the message is still queued:
        // without a new heap entry it would sit untouched until the next restart.
        const retryAt = Date.now() + backoffAfter(Math.max(q.state.attempts, 1), this.opts.policy);
        this.opts.log.error({ queueId: q.meta.id, err: err.message, retryAt: new Date(retryAt).toISOString() }, 'delivery attempt crashed');
        if (this.opts.store.get(q.meta.id) !== q) return;
        q.state = { ...q.state, nextAttemptAt: retryAt };
        this.due.schedule(retryAt, { at: retryAt, id: q.meta.id });
      })
      .finally(() => this.inFlight.delete(q.meta.id));
    this.inFlight.set(q.meta.id, p);
    return p;
  }

  private async attempt(q: QueuedMessage): Promise<void> {
    const { store, deliverer, log, metrics } = this.opts;
    const { meta } = q;
    let open = meta.recipients.filter((r) => !q.state.done[r]);
    // Every recipient is final but the message is still here: a previous attempt crashed
    // while bouncing or removing it. Finish that, deliver nothing again.
    if (open.length === 0) return this.finish(q, q.state);
    const held = await this.holdForPace(open);
    if (held.recipients.length > 0) {
      open = open.filter((r) => !held.recipients.includes(r));
      log.debug({ queueId: meta.id, held: held.recipients.length, retryAfterMs: held.retryAfterMs }, 'paced: destination rate limit');
    }
    const pacedOut = open.length === 0 && isExpired(meta.receivedAt, Date.now(), this.opts.policy);
    if (open.length === 0 && !pacedOut) {
      // Pacing is not a failed attempt: no attempt counted, no deferral reported.
      const state = { ...q.state, nextAttemptAt: this.pacedUntil(meta.receivedAt, held.retryAfterMs) };
      await store.saveState(meta.id, state);
      this.due.schedule(state.nextAttemptAt, { at: state.nextAttemptAt, id: meta.id });
      return;
    }
    const started = process.hrtime.bigint();
    let outcomes: RecipientOutcome[];
    if (pacedOut) {
      // Held back by pacing until the lifetime ran out: it expires like any deferral.
      outcomes = held.recipients.map((recipient) => ({ recipient, status: 'deferred', response: 'held back by the destination rate limit until the message expired', route: 'mx' }));
    } else {
      const body = store.memoryCopy(meta.id);
      try {
        outcomes = await deliverer(meta.senderDomain).deliver({
          id: meta.id, from: meta.from, recipients: open, bodyPath: q.path, bodyOffset: 0, ...(body ? { body } : {}),
          size: meta.size, ...(meta.prepend ? { prepend: Buffer.from(meta.prepend) } : {}),
          ...(meta.dsn ? { dsn: meta.dsn } : {}), ...(meta.rcptDsn ? { rcptDsn: meta.rcptDsn } : {}),
        }, this.abort.signal);
      } catch (err) {
        outcomes = open.map((recipient) => ({ recipient, status: 'deferred', response: `local error: ${(err as Error).message}`, route: 'mx' }));
      } finally {
        // one attempt only: a deferred message may wait for hours, its memory is for new ones
        store.dropMemoryCopy(meta.id);
      }
    }
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    const now = Date.now();
    // Cut short by the shutdown deadline: what got an answer is recorded, the rest is not
    // a failed attempt (no count, no deferral event) and is due at once after the restart.
    const cut = this.abort.signal.aborted;
    const state: DeliveryState = { ...q.state, done: { ...q.state.done }, attempts: q.state.attempts + (cut ? 0 : 1) };
    const deferred: RecipientOutcome[] = [];
    for (const o of outcomes) {
      const result: RecipientResult = {
        status: o.status === 'deferred' ? 'expired' : o.status, response: o.response, at: now,
        ...(o.code !== undefined ? { code: o.code } : {}), ...(o.enhanced ? { enhanced: o.enhanced } : {}), ...(o.remote ? { remote: o.remote } : {}),
        ...(o.nextHopDsn !== undefined ? { nextHopDsn: o.nextHopDsn } : {}),
      };
      metrics.deliveryDuration.observe({ outcome: o.status }, seconds);
      if (o.status === 'delivered') {
        state.done[o.recipient] = result;
        metrics.delivered.inc({ route: o.route });
        metrics.deliveredBytes.inc(meta.size);
        log.info({ queueId: meta.id, rcpt: o.recipient, remote: o.remote, response: o.response, attempt: state.attempts }, 'delivered');
        this.emit('delivered', meta, o);
      } else if (o.status === 'failed') {
        state.done[o.recipient] = result;
        metrics.bounced.inc({ reason: 'failed' });
        log.warn({ queueId: meta.id, rcpt: o.recipient, remote: o.remote, response: o.response }, 'bounced');
        this.emit('bounced', meta, o);
      } else {
        deferred.push(o);
        state.lastResponse = o.response;
      }
    }
    if (held.recipients.length > 0 && deferred.length === 0) {
      state.nextAttemptAt = this.pacedUntil(meta.receivedAt, held.retryAfterMs);
    }
    if (cut && deferred.length > 0) {
      state.nextAttemptAt = now;
      log.info({ queueId: meta.id, open: deferred.length }, 'delivery aborted at shutdown, stays queued');
    } else if (deferred.length > 0) {
      if (isExpired(meta.receivedAt, now, this.opts.policy)) {
        for (const o of deferred) {
          state.done[o.recipient] = { status: 'expired', response: `expired after ${state.attempts} attempts; last error: ${o.response}`, at: now,
            ...(o.code !== undefined ? { code: o.code } : {}), ...(o.remote ? { remote: o.remote } : {}) };
          metrics.bounced.inc({ reason: 'expired' });
          log.warn({ queueId: meta.id, rcpt: o.recipient, response: o.response, attempts: state.attempts }, 'expired');
          this.emit('expired', meta, o);
        }
      } else {
        state.nextAttemptAt = nextAttemptAt(state.attempts, meta.receivedAt, now, this.opts.policy);
        for (const o of deferred) {
          metrics.deferred.inc({ route: o.route });
          log.info({ queueId: meta.id, rcpt: o.recipient, remote: o.remote, response: o.response, attempt: state.attempts, retryAt: new Date(state.nextAttemptAt).toISOString() }, 'deferred');
          this.emit('deferred', meta, o);
        }
        await this.noticeDelay(q, state, deferred, now);
      }
    }
    if (meta.recipients.every((r) => state.done[r])) {
      // In memory first: if finishing fails, the retry must not deliver these again.
      q.state = state;
      await this.finish(q, state);
    } else {
      await store.saveState(meta.id, state);
      this.due.schedule(state.nextAttemptAt, { at: state.nextAttemptAt, id: meta.id });
    }
  }

  private async finish(q: QueuedMessage, state: DeliveryState): Promise<void> {
    await this.bounceIfNeeded(q, state);
    await this.opts.store.remove(q.meta.id);
    this.opts.log.info({ queueId: q.meta.id, attempts: state.attempts }, 'removed from queue');
  }

  /** When paced recipients are tried again: after the pace allows, but never past expiry. */
  private pacedUntil(receivedAt: number, retryAfterMs: number): number {
    return Math.min(Date.now() + retryAfterMs, receivedAt + this.opts.policy.maxLifetime);
  }

  private async holdForPace(recipients: string[]): Promise<{ recipients: string[]; retryAfterMs: number }> {
    const gate = this.opts.destinationGate;
    if (!gate) return { recipients: [], retryAfterMs: 0 };
    const byDomain = new Map<string, string[]>();
    for (const r of recipients) {
      const d = domainOf(r);
      byDomain.set(d, [...(byDomain.get(d) ?? []), r]);
    }
    const held: string[] = [];
    let retryAfterMs = Infinity;
    for (const [domain, rcpts] of byDomain) {
      const d = await gate(domain);
      if (!d.allowed) {
        held.push(...rcpts);
        retryAfterMs = Math.min(retryAfterMs, Math.max(d.retryAfterMs, 50));
      }
    }
    return { recipients: held, retryAfterMs: held.length ? retryAfterMs : 0 };
  }

  /** NOTIFY=DELAY recipients get one "delayed" notice per message, at their first deferral. */
  private async noticeDelay(q: QueuedMessage, state: DeliveryState, deferred: RecipientOutcome[], now: number): Promise<void> {
    const told = new Set(state.delayNotified ?? []);
    const due = deferred.filter((o) => !told.has(o.recipient) && wantsNotice(q.meta, o.recipient, 'DELAY'));
    if (due.length === 0) return;
    const results = due.map((o) => ({
      recipient: o.recipient,
      result: { status: 'expired' as const, response: o.response, at: now, ...(o.code !== undefined ? { code: o.code } : {}), ...(o.enhanced ? { enhanced: o.enhanced } : {}), ...(o.remote ? { remote: o.remote } : {}) },
    }));
    const queued = await queueDelayDsn(this.opts.store, q, results, new Date(q.meta.receivedAt + this.opts.policy.maxLifetime), this.opts.hostname, this.opts.log);
    // recorded also when no notice could go (null sender): asking again each retry changes nothing
    state.delayNotified = [...told, ...due.map((o) => o.recipient)];
    if (!queued) return;
    this.opts.metrics.dsnSent.inc();
    this.enqueue(queued);
  }

  private async bounceIfNeeded(q: QueuedMessage, state: DeliveryState): Promise<void> {
    const queued = await queueDsn(this.opts.store, q, state, this.opts.hostname, this.opts.log);
    if (!queued) return;
    this.opts.metrics.dsnSent.inc();
    this.enqueue(queued);
  }

  private emit(type: DeliveryEventType, meta: QueuedMessage['meta'], o: RecipientOutcome): void {
    this.opts.onEvent?.({
      type, queueId: meta.id, from: meta.from, recipient: o.recipient, response: o.response,
      ...(o.code !== undefined ? { code: o.code } : {}), ...(o.enhanced ? { enhanced: o.enhanced } : {}),
      ...(o.remote ? { remote: o.remote } : {}), ...(meta.senderDomain ? { senderDomain: meta.senderDomain } : {}),
    });
  }
}
