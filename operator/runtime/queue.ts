// A de-duplicating work queue keyed by "<Kind>/<namespace>/<name>" (client-go semantics):
// a key waits at most once; a key re-added while being processed runs again afterwards,
// never concurrently; failures retry with per-key exponential backoff; successes may ask
// to come back later (requeueAfter) for time-based work such as DKIM rotation.
import { systemClock, type Clock, type Timer } from './clock.ts';

export interface QueueOptions {
  baseDelayMs?: number;
  maxDelayMs?: number;
  onDepth?: (depth: number) => void;
  clock?: Clock;
}

export class WorkQueue {
  private readonly ready: string[] = [];
  private readonly queued = new Set<string>();
  private readonly processing = new Set<string>();
  private readonly dirty = new Set<string>();
  private readonly failures = new Map<string, number>();
  private readonly timers = new Map<string, { at: number; t: Timer }>();
  private waiters: (() => void)[] = [];
  private closed = false;
  private readonly base: number;
  private readonly max: number;
  private readonly onDepth: ((n: number) => void) | undefined;
  private readonly clock: Clock;

  constructor(opts: QueueOptions = {}) {
    this.base = opts.baseDelayMs ?? 500;
    this.max = opts.maxDelayMs ?? 300_000;
    this.onDepth = opts.onDepth;
    this.clock = opts.clock ?? systemClock;
  }

  get depth(): number { return this.ready.length; }

  add(key: string): void {
    if (this.closed) return;
    if (this.processing.has(key)) { this.dirty.add(key); return; }
    if (this.queued.has(key)) return;
    this.queued.add(key);
    this.ready.push(key);
    this.onDepth?.(this.ready.length);
    this.waiters.shift()?.();
  }

  /** Adds after a delay; an earlier pending delay for the key wins. */
  addAfter(key: string, ms: number): void {
    if (this.closed) return;
    if (ms <= 0) return this.add(key);
    const at = this.clock.now() + ms;
    const cur = this.timers.get(key);
    if (cur && cur.at <= at) return;
    cur?.t.cancel();
    const t = this.clock.after(ms, () => { this.timers.delete(key); this.add(key); }, { weak: true });
    this.timers.set(key, { at, t });
  }

  /** Retry with backoff: base * 2^failures, capped. */
  addRateLimited(key: string): number {
    const n = (this.failures.get(key) ?? 0) + 1;
    this.failures.set(key, n);
    const delay = Math.min(this.max, this.base * 2 ** (n - 1));
    this.addAfter(key, delay);
    return delay;
  }

  forget(key: string): void { this.failures.delete(key); }

  /** Next key, or undefined once closed. */
  async get(): Promise<string | undefined> {
    while (!this.closed) {
      const key = this.ready.shift();
      if (key !== undefined) {
        this.queued.delete(key);
        this.processing.add(key);
        this.onDepth?.(this.ready.length);
        return key;
      }
      await new Promise<void>((r) => this.waiters.push(r));
    }
    return undefined;
  }

  done(key: string): void {
    this.processing.delete(key);
    if (this.dirty.delete(key)) this.add(key);
  }

  close(): void {
    this.closed = true;
    for (const { t } of this.timers.values()) t.cancel();
    this.timers.clear();
    for (const w of this.waiters.splice(0)) w();
  }
}
