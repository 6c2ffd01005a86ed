// List + watch into an in-memory store, recovering from the ways @kubernetes/client-node
// watches are known to fail (kubernetes-client/javascript issues #364, #596, #1496, #301):
//  - a watch that silently stops delivering: every watch asks the server to end it after
//    timeoutSeconds, and client-node's inactivity timer (set just above that) aborts a
//    connection that went quiet without closing, so no watch lives forever;
//  - 410 Gone (as an HTTP status or an ERROR event): the resourceVersion is too old → relist;
//  - errors that end the stream (ECONNRESET, API server restart): rewatch from the last
//    resourceVersion with exponential backoff, relisting when that fails too.
// client-node's own informer stops for good on some of these; this loop never does.
import { Watch } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { KubeObject } from '../render/objects.ts';
import type { Kube } from './kube.ts';
import { collectionPath, resourceFor } from './resources.ts';

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED';

export interface ReflectorOptions<T extends KubeObject> {
  kube: Kube;
  apiVersion: string;
  kind: string;
  labelSelector?: string;
  log: Logger;
  onEvent: (type: WatchEventType, obj: T) => void;
  /** Server-side watch timeout range; default 240–300 s (randomised so watches do not end together). */
  watchSeconds?: [number, number];
  onRestart?: (reason: string) => void;
}

const key = (o: KubeObject) => `${o.metadata.namespace ?? ''}/${o.metadata.name}`;
/** A watch that lasted less than this before closing cleanly counts as a failure to back off from. */
const MIN_HEALTHY_WATCH_MS = 5_000;

const sleep = (ms: number, signal: AbortSignal) => new Promise<void>((r) => {
  const t = setTimeout(r, ms);
  signal.addEventListener('abort', () => { clearTimeout(t); r(); }, { once: true });
});

export class Reflector<T extends KubeObject> {
  readonly store = new Map<string, T>();
  synced = false;
  private readonly firstSync = Promise.withResolvers<void>();
  /** Resolves once the first list has filled the store. */
  readonly whenSynced = this.firstSync.promise;
  /** Last time a list or watch event arrived (for /healthz). */
  lastActivity = Date.now();
  private readonly opts: ReflectorOptions<T>;
  private readonly stop = new AbortController();
  private current: AbortController | undefined;
  private loop: Promise<void> | undefined;
  private rv = '';

  constructor(opts: ReflectorOptions<T>) {
    this.opts = opts;
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
    this.loop ??= this.run();
  }

  async close(): Promise<void> {
    this.stop.abort();
    this.current?.abort();
    await this.loop;
  }

  private async relist(): Promise<void> {
    const { kube, apiVersion, kind, labelSelector } = this.opts;
    const items: T[] = [];
    let cont: string | undefined;
    let rv = '';
    for (let page = 0; page < 10_000; page++) {
      const res = await kube.list<T>(apiVersion, kind, undefined, { labelSelector, limit: '500', continue: cont });
      for (const it of res.items) items.push({ ...it, apiVersion, kind });
      rv = res.metadata.resourceVersion;
      cont = res.metadata.continue || undefined;
      if (!cont) break;
    }
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
    this.lastActivity = Date.now();
  }

  /** One watch connection; resolves with why it ended. */
  private watchOnce(): Promise<'closed' | 'gone' | Error> {
    const { kube, apiVersion, kind, labelSelector, log } = this.opts;
    const [lo, hi] = this.opts.watchSeconds ?? [240, 300];
    const timeoutSeconds = Math.round(lo + Math.random() * (hi - lo));
    const watch = new Watch(kube.kc);
    // client-node aborts a watch that received nothing for this long: the silent-stall guard.
    // A private field; test/unit/dependency-guards.test.ts fails if client-node stops reading it.
    (watch as unknown as { requestTimeoutMs: number }).requestTimeoutMs = (timeoutSeconds + 30) * 1000;
    const path = collectionPath(resourceFor(apiVersion, kind));
    return new Promise((resolve) => {
      let gone = false;
      let settled = false;
      const finish = (v: 'closed' | 'gone' | Error) => { if (!settled) { settled = true; resolve(v); } };
      watch.watch(path, { resourceVersion: this.rv, allowWatchBookmarks: true, timeoutSeconds, labelSelector }, (type, obj) => {
        this.lastActivity = Date.now();
        if (type === 'ERROR') {
          const code = (obj as { code?: number })?.code;
          if (code === 410) gone = true;
          log.info({ kind, code, message: (obj as { message?: string })?.message }, 'watch error event');
          this.current?.abort();
          return;
        }
        const o = { ...(obj as T), apiVersion, kind };
        if (o.metadata?.resourceVersion) this.rv = o.metadata.resourceVersion;
        if (type === 'BOOKMARK') return;
        const k = key(o);
        if (type === 'DELETED') this.store.delete(k);
        else this.store.set(k, o);
        this.opts.onEvent(type as WatchEventType, o);
      }, (err) => {
        if (gone || (err && (err as { statusCode?: number }).statusCode === 410)) finish('gone');
        else if (err && !(this.stop.signal.aborted)) finish(err instanceof Error ? err : new Error(String(err)));
        else finish('closed');
      }).then((ctrl) => {
        this.current = ctrl;
        if (this.stop.signal.aborted) ctrl.abort();
      }, (e: Error) => finish(e));
    });
  }

  private async run(): Promise<void> {
    const { log, kind } = this.opts;
    let backoff = 0;
    const nextBackoff = () => (backoff = Math.min(30_000, backoff ? backoff * 2 : 500));
    while (!this.stop.signal.aborted) {
      try {
        await this.relist();
        backoff = 0;
      } catch (e) {
        log.warn({ kind, err: (e as Error).message }, 'list failed; retrying');
        await sleep(nextBackoff(), this.stop.signal);
        continue;
      }
      for (let i = 0; !this.stop.signal.aborted; i++) {
        const watchStarted = Date.now();
        const why = await this.watchOnce();
        if (this.stop.signal.aborted) break;
        if (why === 'gone') {
          log.info({ kind }, 'watch resourceVersion expired (410 Gone); relisting');
          this.opts.onRestart?.('gone');
          break;
        }
        if (why === 'closed') {
          // A watch the server ends after its timeout is normal: rewatch at once. One that
          // ends right away (a proxy closing it, an overloaded server) would otherwise
          // spin: those back off like errors.
          const healthyAfter = Math.min(MIN_HEALTHY_WATCH_MS, ((this.opts.watchSeconds?.[0] ?? 240) * 1000) / 2);
          if (Date.now() - watchStarted >= healthyAfter) { backoff = 0; continue; }
          await sleep(nextBackoff(), this.stop.signal);
          continue;
        }
        log.warn({ kind, err: why.message }, 'watch failed; rewatching');
        this.opts.onRestart?.('error');
        await sleep(nextBackoff(), this.stop.signal);
        // After repeated failures, relist: the store may have missed deletions.
        if (backoff >= 4000) break;
      }
    }
  }
}
