// List + watch into an in-memory store, recovering from the ways @kubernetes/client-node
// watches are known to fail (kubernetes-client/javascript issues #364, #596, #1496, #301).
// The restart/relist policy (the I/O is in list-watch.ts):
//  - every watch asks the server to end it after timeoutSeconds (randomised in watchSeconds
//    so watches do not end together); one that ends so is rewatched at once from the last
//    resourceVersion; one that ends cleanly right after it opened backs off like an error
//    (a proxy that ends watches would otherwise make this a hot loop);
//  - 410 Gone (the resourceVersion is too old): relist at once;
//  - errors that end the stream (ECONNRESET, API server restart): rewatch with exponential
//    backoff (0.5 s doubling to 30 s), and relist once the backoff reached 4 s, since the
//    store may have missed deletions;
//  - a failed list: retry with the same backoff.
// client-node's own informer stops for good on some of these; this loop never does. A loop
// step that never returns (a watch the inactivity guard failed to end) shows as a stall:
// healthy() turns false, so /healthz fails and the kubelet restarts the operator.
import type { Logger } from 'pino';
import type { KubeObject } from '../render/objects.ts';
import { sleep, systemClock, type Clock } from './clock.ts';
import type { ListWatch, WatchEventType } from './list-watch.ts';

export type { WatchEventType };
export type StoreEventType = Exclude<WatchEventType, 'BOOKMARK'>;

export interface ReflectorOptions<T extends KubeObject> {
  kind: string;
  source: ListWatch<T>;
  log: Logger;
  onEvent: (type: StoreEventType, obj: T) => void;
  /** Server-side watch timeout range; default 240–300 s. */
  watchSeconds?: [number, number];
  onRestart?: (reason: 'gone' | 'error') => void;
  clock?: Clock;
  random?: () => number;
}

const key = (o: KubeObject) => `${o.metadata.namespace ?? ''}/${o.metadata.name}`;
/** A watch that lasted less than this before closing cleanly counts as a failure to back off from. */
const MIN_HEALTHY_WATCH_MS = 5_000;
export const MAX_BACKOFF_MS = 30_000;
/** Backoff at which a failing watch gives up rewatching and relists. */
const RELIST_AT_BACKOFF_MS = 4_000;
/** No progress for the longest watch plus this: the loop is stuck (client-node's inactivity abort comes at +30 s). */
const STALL_SLACK_MS = 90_000;
const MAX_LIST_PAGES = 10_000;

/** p, or a rejection as soon as signal aborts: close() never waits for a list in flight. */
function untilAborted<V>(p: Promise<V>, signal: AbortSignal): Promise<V> {
  if (signal.aborted) return Promise.reject(new Error('stopped'));
  return new Promise<V>((resolve, reject) => {
    const onAbort = () => reject(new Error('stopped'));
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

export class Reflector<T extends KubeObject> {
  readonly store = new Map<string, T>();
  synced = false;
  private readonly firstSync = Promise.withResolvers<void>();
  /** Resolves once the first list has filled the store. */
  readonly whenSynced = this.firstSync.promise;
  private readonly opts: ReflectorOptions<T>;
  private readonly clock: Clock;
  private readonly stop = new AbortController();
  private loop: Promise<void> | undefined;
  private rv = '';
  private backoff = 0;
  /** When the loop last made progress: a list page, a watch opened, an event, a watch ended. */
  private lastProgress = 0;

  constructor(opts: ReflectorOptions<T>) {
    this.opts = opts;
    this.clock = opts.clock ?? systemClock;
  }

  get kind(): string {
    return this.opts.kind;
  }

  get(namespace: string | undefined, name: string): T | undefined {
    return this.store.get(`${namespace ?? ''}/${name}`);
  }

  list(namespace?: string): T[] {
    const all = [...this.store.values()];
    return namespace === undefined ? all : all.filter((o) => o.metadata.namespace === namespace);
  }

  start(): void {
    this.lastProgress = this.clock.now();
    this.loop ??= this.run();
  }

  async close(): Promise<void> {
    this.stop.abort();
    await this.loop;
  }

  /** False when the list/watch loop has been stuck in one step for longer than any step may take. */
  healthy(now = this.clock.now()): boolean {
    if (!this.loop || this.stop.signal.aborted) return true;
    const [, hi] = this.opts.watchSeconds ?? [240, 300];
    return now - this.lastProgress <= hi * 1000 + STALL_SLACK_MS;
  }

  private progress(): void {
    this.lastProgress = this.clock.now();
  }

  private nextBackoff(): number {
    this.backoff = Math.min(MAX_BACKOFF_MS, this.backoff ? this.backoff * 2 : 500);
    return this.backoff;
  }

  private async relist(): Promise<void> {
    const items: T[] = [];
    let cont: string | undefined;
    let rv = '';
    for (let page = 0; page < MAX_LIST_PAGES; page++) {
      const res = await untilAborted(this.opts.source.list(cont), this.stop.signal);
      this.progress();
      items.push(...res.items);
      rv = res.resourceVersion;
      cont = res.continue;
      if (!cont) break;
    }
    // Replace the store, telling the controllers only about what changed.
    const fresh = new Map(items.map((o) => [key(o), o]));
    for (const [k, old] of this.store) if (!fresh.has(k)) { this.store.delete(k); this.opts.onEvent('DELETED', old); }
    for (const [k, o] of fresh) {
      const old = this.store.get(k);
      this.store.set(k, o);
      if (!old || old.metadata.resourceVersion !== o.metadata.resourceVersion) this.opts.onEvent(old ? 'MODIFIED' : 'ADDED', o);
    }
    this.rv = rv;
    this.synced = true;
    this.firstSync.resolve();
  }

  private onWatchEvent(type: WatchEventType, o: T): void {
    this.progress();
    if (o.metadata?.resourceVersion) this.rv = o.metadata.resourceVersion;
    if (type === 'BOOKMARK') return;
    const k = key(o);
    if (type === 'DELETED') this.store.delete(k);
    else this.store.set(k, o);
    this.opts.onEvent(type, o);
  }

  private async run(): Promise<void> {
    const { log, kind } = this.opts;
    const signal = this.stop.signal;
    while (!signal.aborted) {
      try {
        await this.relist();
        this.backoff = 0;
      } catch (e) {
        if (signal.aborted) return;
        this.progress();
        log.warn({ kind, err: (e as Error).message }, 'list failed; retrying');
        await sleep(this.clock, this.nextBackoff(), signal);
        continue;
      }
      await this.watchUntilRelist(signal);
    }
  }

  /** Watches (and rewatches) from the store's resourceVersion until a relist is due or we stop. */
  private async watchUntilRelist(signal: AbortSignal): Promise<void> {
    const { log, kind } = this.opts;
    const [lo, hi] = this.opts.watchSeconds ?? [240, 300];
    while (!signal.aborted) {
      const timeoutSeconds = Math.round(lo + (this.opts.random ?? Math.random)() * (hi - lo));
      const started = this.clock.now();
      this.progress();
      const why = await this.opts.source.watch(this.rv, timeoutSeconds, (t, o) => this.onWatchEvent(t, o), signal);
      this.progress();
      if (signal.aborted) return;
      if (why === 'gone') {
        log.info({ kind }, 'watch resourceVersion expired (410 Gone); relisting');
        this.opts.onRestart?.('gone');
        return;
      }
      if (why === 'closed') {
        // A watch the server ends after its timeout is normal: rewatch at once. One that
        // ends right away (a proxy closing it, an overloaded server) would otherwise spin.
        const healthyAfter = Math.min(MIN_HEALTHY_WATCH_MS, (lo * 1000) / 2);
        if (this.clock.now() - started >= healthyAfter) { this.backoff = 0; continue; }
        await sleep(this.clock, this.nextBackoff(), signal);
        continue;
      }
      log.warn({ kind, err: why.message }, 'watch failed; rewatching');
      this.opts.onRestart?.('error');
      await sleep(this.clock, this.nextBackoff(), signal);
      // After repeated failures, relist: the store may have missed deletions.
      if (this.backoff >= RELIST_AT_BACKOFF_MS) return;
    }
  }
}
