// Runs work items when they fall due, at most `limit()` at a time: the queue runner's
// delivery attempts and the webhook dispatcher's POSTs. Items wait in a TimerHeap; one
// timer sleeps until the earliest is due (at most maxSleepMs, so a jump of the wall clock
// is noticed); a finished item frees its slot and pumps again.
import { TimerHeap } from './timer-heap.ts';

export interface DuePumpOptions<T> {
  /** Items running at once (read at every pump, so a reload can change it). */
  limit(): number;
  /** Starts a due item; returns undefined when the item turns out stale and is skipped. */
  run(item: T): Promise<void> | undefined;
  maxSleepMs?: number;
  /** Let the process exit while only the timer is pending. */
  unref?: boolean;
}

export class DuePump<T> {
  private readonly heap = new TimerHeap<T>();
  private readonly running = new Set<Promise<void>>();
  private readonly opts: DuePumpOptions<T>;
  private timer: NodeJS.Timeout | undefined;
  private stopped = true;

  constructor(opts: DuePumpOptions<T>) {
    this.opts = opts;
  }

  /** Adds an item due at `at` (epoch ms); call pump() to act on it now. */
  schedule(at: number, item: T): void {
    this.heap.push(at, item);
  }

  start(): void {
    this.stopped = false;
    this.pump();
  }

  /** Starts nothing more; what runs goes on (the owner waits for or aborts it). */
  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** Start as many due items as free slots allow, then sleep until the next is due. */
  pump(): void {
    if (this.stopped) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const now = Date.now();
    while (this.running.size < this.opts.limit()) {
      const item = this.heap.popDue(now);
      if (item === undefined) break;
      const started = this.opts.run(item);
      if (!started) continue;
      const tracked: Promise<void> = started.finally(() => {
        this.running.delete(tracked);
        this.pump();
      });
      this.running.add(tracked);
    }
    const next = this.heap.peekTime();
    if (next !== undefined && this.running.size < this.opts.limit()) {
      this.timer = setTimeout(() => this.pump(), Math.min(Math.max(next - now, 0), this.opts.maxSleepMs ?? 60_000));
      if (this.opts.unref) this.timer.unref();
    }
  }
}
