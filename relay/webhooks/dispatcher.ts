// Delivers webhook events: emit() makes an event durable in the outbox, then a bounded
// pool of workers POSTs it (post.ts, under the outbound policy), retrying with exponential backoff until the
// receiver answers 2xx or the event is older than maxAgeHours, when it is dropped with a
// log line and a metric. At-least-once: an event whose emit() resolved is re-sent after
// a crash or restart until it is acknowledged; receivers de-duplicate on the event id.
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import client from 'prom-client';
import type { Logger } from '../log.ts';
import { silentLogger } from '../log.ts';
import { Outbox } from './outbox.ts';
import {
  webhookSchema,
  type WebhookConfig,
  type WebhookConfigInput,
  type WebhookEvent,
  type WebhookEventInput,
} from './schema.ts';
import { eventIdHeader, signatureHeader, signWebhook } from './signature.ts';
import { DuePump } from '../util/due-pump.ts';
import { OutboundPolicy } from '../outbound/targets.ts';
import { postJson } from './post.ts';

export interface WebhookDispatcherOptions {
  /** Directory of the outbox (the relay's data dir, or a subdirectory of it). */
  dir: string;
  config: WebhookConfigInput;
  /** The HMAC secret; read from config.secretFile when absent. */
  secret?: string;
  logger?: Logger;
  registry?: client.Registry;
  /** Which addresses the URL may lead to (read at every POST, so a reload applies); default: the refusing policy. */
  outbound?: () => OutboundPolicy;
}

interface Scheduled {
  id: string;
  body: string;
  createdAt: number;
  attempts: number;
}

function metric<T extends client.Metric>(registry: client.Registry, name: string, make: () => T): T {
  return (registry.getSingleMetric(name) as T | undefined) ?? make();
}

export function webhookMetrics(registry: client.Registry) {
  const registers = [registry];
  return {
    sent: metric(registry, 'mailfleet_webhook_sent_total', () =>
      new client.Counter({ name: 'mailfleet_webhook_sent_total', help: 'Webhook events acknowledged (2xx)', registers })),
    failedAttempts: metric(registry, 'mailfleet_webhook_failed_attempts_total', () =>
      new client.Counter({ name: 'mailfleet_webhook_failed_attempts_total', help: 'Webhook POSTs that failed (non-2xx, timeout, network)', registers })),
    dropped: metric(registry, 'mailfleet_webhook_dropped_total', () =>
      new client.Counter<'reason'>({ name: 'mailfleet_webhook_dropped_total', help: 'Webhook events given up, by reason (max_age, outbox_full)', labelNames: ['reason'], registers })),
    outbox: metric(registry, 'mailfleet_webhook_outbox_events', () =>
      new client.Gauge({ name: 'mailfleet_webhook_outbox_events', help: 'Webhook events awaiting delivery', registers })),
  };
}

export class WebhookDispatcher {
  readonly config: WebhookConfig;
  private readonly secret: string;
  private readonly outbox: Outbox;
  private readonly log: Logger;
  private readonly metrics: ReturnType<typeof webhookMetrics>;
  private readonly due: DuePump<Scheduled>;
  private readonly abort = new AbortController();
  private readonly inFlight = new Set<Promise<void>>();
  private closed = false;
  private outbound: () => OutboundPolicy = () => refuseAll;

  private constructor(config: WebhookConfig, secret: string, outbox: Outbox, log: Logger, registry: client.Registry) {
    this.config = config;
    this.secret = secret;
    this.outbox = outbox;
    this.log = log;
    this.metrics = webhookMetrics(registry);
    this.due = new DuePump({ limit: () => this.config.concurrency, run: (s) => this.track(this.attempt(s)), unref: true });
  }

  static async open(opts: WebhookDispatcherOptions): Promise<WebhookDispatcher> {
    const config = webhookSchema.parse(opts.config);
    const secret = opts.secret ?? readSecret(config.secretFile);
    if (secret === '') throw new Error(`webhook secret in ${config.secretFile} is empty`);
    const log = (opts.logger ?? silentLogger).child({ component: 'webhooks' });
    const outbox = await Outbox.open(opts.dir, log);
    const d = new WebhookDispatcher(config, secret, outbox, log, opts.registry ?? new client.Registry());
    if (opts.outbound) d.outbound = opts.outbound;
    // Whatever a previous run left undelivered goes out first, oldest first.
    for (const event of outbox.pending.values()) d.schedule(event, Date.now());
    if (outbox.pending.size > 0) log.info({ events: outbox.pending.size }, 'webhook outbox: resuming undelivered events');
    d.metrics.outbox.set(outbox.pending.size);
    d.due.start();
    return d;
  }

  /** Events waiting for acknowledgement. */
  get outboxSize(): number {
    return this.outbox.pending.size;
  }

  /**
   * Record an event for delivery. Resolves true once it is durable (it will be delivered
   * at least once, across restarts); false when the type is filtered out or the outbox is
   * full (then dropped with a log line and metric).
   */
  async emit(input: WebhookEventInput): Promise<boolean> {
    if (this.closed) throw new Error('webhook dispatcher is closed');
    if (this.config.events && !this.config.events.includes(input.type)) return false;
    if (this.outbox.pending.size >= this.config.maxOutboxEvents) {
      this.metrics.dropped.inc({ reason: 'outbox_full' });
      this.log.error({ type: input.type, queueId: input.queueId, max: this.config.maxOutboxEvents }, 'webhook outbox full: event dropped');
      return false;
    }
    const event: WebhookEvent = { ...input, id: randomUUID(), timestamp: new Date().toISOString() };
    await this.outbox.add(event);
    this.metrics.outbox.set(this.outbox.pending.size);
    if (!this.closed) {
      this.schedule(event, Date.now());
      this.due.pump();
    }
    return true;
  }

  /** Stops timers and aborts POSTs in flight (their events stay in the outbox for the next open). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.due.stop();
    this.abort.abort(new Error('webhook dispatcher closing'));
    await Promise.allSettled([...this.inFlight]);
    await this.outbox.close();
  }

  private schedule(event: WebhookEvent, at: number): void {
    const createdAt = Date.parse(event.timestamp);
    this.due.schedule(at, {
      id: event.id,
      body: JSON.stringify(event),
      createdAt: Number.isFinite(createdAt) ? createdAt : Date.now(),
      attempts: 0,
    });
  }

  /** POSTs in flight, for close() to wait on. */
  private track(p: Promise<void>): Promise<void> {
    this.inFlight.add(p);
    return p.finally(() => this.inFlight.delete(p));
  }

  private async attempt(s: Scheduled): Promise<void> {
    s.attempts++;
    let failure: string;
    try {
      const status = await postJson(this.config.url, {
        body: s.body,
        outbound: this.outbound(),
        headers: {
          'content-type': 'application/json',
          'user-agent': 'MailFleet-Webhooks/1',
          [eventIdHeader]: s.id,
          [signatureHeader]: signWebhook(this.secret, s.body),
        },
        signal: AbortSignal.any([AbortSignal.timeout(this.config.timeoutMs), this.abort.signal]),
      });
      if (status >= 200 && status < 300) {
        this.metrics.sent.inc();
        this.log.debug({ eventId: s.id, attempts: s.attempts, status }, 'webhook delivered');
        await this.finish(s.id);
        return;
      }
      failure = `HTTP ${status}`;
    } catch (e) {
      if (this.closed) return; // aborted by close(): stays in the outbox
      const err = e as NodeJS.ErrnoException & { cause?: { name?: string } };
      failure = err.name === 'TimeoutError' || err.cause?.name === 'TimeoutError' ? `timeout after ${this.config.timeoutMs} ms` : (err.code ?? err.message);
    }
    if (this.closed) return;
    this.metrics.failedAttempts.inc();
    const now = Date.now();
    const deadline = s.createdAt + this.config.maxAgeHours * 3_600_000;
    if (now >= deadline) {
      this.metrics.dropped.inc({ reason: 'max_age' });
      this.log.error(
        { eventId: s.id, attempts: s.attempts, lastError: failure, maxAgeHours: this.config.maxAgeHours },
        'webhook event dropped: not acknowledged within its max age',
      );
      await this.finish(s.id);
      return;
    }
    const backoff = Math.min(this.config.retryBaseMs * 2 ** Math.min(s.attempts - 1, 30), this.config.retryMaxMs);
    const at = Math.min(now + backoff * (0.8 + 0.4 * Math.random()), deadline);
    this.log.warn({ eventId: s.id, attempts: s.attempts, error: failure, retryInMs: Math.round(at - now) }, 'webhook attempt failed');
    this.due.schedule(at, s);
  }

  private async finish(id: string): Promise<void> {
    const written = this.outbox.done(id); // leaves the pending set now, reaches disk with the next batch
    this.metrics.outbox.set(this.outbox.pending.size);
    try {
      await written;
    } catch (e) {
      this.log.warn({ eventId: id, err: (e as Error).message }, 'webhook outbox: could not record completion (will re-send after restart)');
    }
  }
}

const refuseAll = new OutboundPolicy();

function readSecret(file: string): string {
  try {
    return readFileSync(file, 'utf8').trim();
  } catch (e) {
    throw new Error(`reading webhook secret file ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}
