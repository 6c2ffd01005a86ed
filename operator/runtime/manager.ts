// The manager, as in controller-runtime: it owns the informer cache and the work queue,
// maps every cache event to the keys of the controllers that care, starts the workers only
// once the caches are synced (a reconcile always sees a complete picture of the world),
// re-enqueues everything on each resync, and has one terminal-error path: run() rejects.
import type { Logger } from 'pino';
import type { KubeObject } from '../render/objects.ts';
import { Cache, type SourceFactory } from './cache.ts';
import { Discovery, type OptionalApis } from './discovery.ts';
import type { Kube } from './kube.ts';
import type { OperatorMetrics } from './metrics.ts';
import { WorkQueue } from './queue.ts';
import type { WatchScope } from './watch-scope.ts';

export interface Request {
  namespace: string;
  name: string;
}

/** One controller: a kind it reconciles, and which objects of that kind an event concerns. */
export interface Reconciler {
  readonly kind: string;
  /** Objects of this.kind to reconcile after a change to obj (of any watched kind). */
  requestsFor(obj: KubeObject): Request[];
  /** Brings one object's world in line; resolves with ms after which to come back, if any. */
  reconcile(req: Request): Promise<number | undefined>;
}

export interface ManagerOptions {
  kube: Kube;
  log: Logger;
  metrics: OperatorMetrics;
  resyncMs: number;
  workers: number;
  /** How long the caches may take to list everything before the operator gives up. */
  cacheSyncTimeoutMs: number;
  /** Server-side watch timeouts (tests shorten them). */
  watchSeconds?: [number, number];
  /** Lists and watches of the cache; default the API server's. */
  source?: SourceFactory;
  /** --watch-namespaces: only these are listed, watched and written; undefined: every namespace. */
  namespaces?: WatchScope;
}

const keyOf = (kind: string, r: Request) => `${kind}/${r.namespace}/${r.name}`;

export class Manager {
  readonly cache: Cache;
  readonly queue: WorkQueue;
  private readonly discovery: Discovery;
  private readonly reconcilers = new Map<string, Reconciler>();
  private readonly o: ManagerOptions;
  private readonly stopping = new AbortController();
  private resyncTimer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;

  constructor(o: ManagerOptions) {
    this.o = o;
    this.queue = new WorkQueue({ onDepth: (d) => o.metrics.queueDepth.set(d) });
    this.discovery = new Discovery(o.kube, o.log);
    this.cache = new Cache({
      kube: o.kube, log: o.log, metrics: o.metrics, onEvent: (obj) => this.enqueueFor(obj),
      ...(o.watchSeconds ? { watchSeconds: o.watchSeconds } : {}), ...(o.source ? { source: o.source } : {}),
      ...(o.namespaces ? { namespaces: o.namespaces } : {}),
    });
  }

  add(r: Reconciler): void {
    this.reconcilers.set(r.kind, r);
  }

  get apis(): OptionalApis {
    return this.discovery.apis;
  }

  /** The leader's readiness: every cache has listed once. */
  get synced(): boolean {
    return this.cache.synced;
  }

  /** Kinds whose watch is stuck: the operator is not live (see /healthz). */
  stalled(): string[] {
    return this.cache.stalled();
  }

  private enqueueFor(obj: KubeObject): void {
    for (const r of this.reconcilers.values()) for (const req of r.requestsFor(obj)) this.queue.add(keyOf(r.kind, req));
  }

  private enqueueAll(): void {
    for (const obj of [...this.cache.relays.list(), ...this.cache.domains.list()]) this.enqueueFor(obj);
  }

  /** Runs until stop() (resolves) or a terminal error (rejects): callers exit on either. */
  run(): Promise<void> {
    this.running ??= this.runOnce();
    return this.running;
  }

  private async runOnce(): Promise<void> {
    await this.discovery.refresh();
    if (this.stopping.signal.aborted) return;
    this.cache.start();
    await this.cache.waitForSync(this.o.cacheSyncTimeoutMs, this.stopping.signal).catch((e: Error) => {
      if (!this.stopping.signal.aborted) throw e;
    });
    if (this.stopping.signal.aborted) return;
    this.o.log.info({ workers: this.o.workers }, 'caches synced; starting workers');
    this.resyncTimer = setInterval(() => void this.resync(), this.o.resyncMs);
    this.resyncTimer.unref();
    const workers = Array.from({ length: this.o.workers }, () => this.work());
    await Promise.all(workers);
  }

  async stop(): Promise<void> {
    this.stopping.abort();
    if (this.resyncTimer) clearInterval(this.resyncTimer);
    this.queue.close();
    await this.cache.close();
    await this.running?.catch(() => undefined);
  }

  /** Re-checks the optional APIs first, so a resync already renders with what is installed now. */
  private async resync(): Promise<void> {
    await this.discovery.refresh();
    this.enqueueAll();
  }

  private async work(): Promise<void> {
    const { metrics, log } = this.o;
    for (;;) {
      const key = await this.queue.get();
      if (key === undefined) return;
      const [kind = '', namespace = '', name = ''] = key.split('/');
      const reconciler = this.reconcilers.get(kind);
      const end = metrics.reconcileDuration.startTimer({ kind });
      try {
        if (!reconciler) throw new Error(`no controller for ${kind}`);
        const after = await reconciler.reconcile({ namespace, name });
        this.queue.forget(key);
        if (after !== undefined) this.queue.addAfter(key, after);
        metrics.reconciles.inc({ kind, result: 'ok' });
      } catch (e) {
        metrics.reconciles.inc({ kind, result: 'error' });
        const delay = this.queue.addRateLimited(key);
        log.warn({ kind, namespace, name, err: (e as Error).message, retryInMs: delay }, 'reconcile failed');
      } finally {
        end();
        this.queue.done(key);
      }
    }
  }
}
