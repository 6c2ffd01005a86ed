// The informer cache: one reflector per watched kind (EmailRelay, SenderDomain, and every
// owned kind, by our managed-by label), read by the controllers instead of the API server.
// Every event is handed to one callback, which maps it to work-queue keys. Under
// --watch-namespaces each kind is watched per namespace instead (ReflectorGroup): a kind
// added here through mk() inherits the scope.
import type { Logger } from 'pino';
import { API_VERSION } from '../api/common.ts';
import { FIELD_MANAGER, MANAGED_BY, type EmailRelay, type KubeObject, type SenderDomain } from '../render/objects.ts';
import type { Kube } from './kube.ts';
import type { OperatorMetrics } from './metrics.ts';
import type { Clock } from './clock.ts';
import { kubeListWatch, type ListWatch } from './list-watch.ts';
import { Reflector, type StoreEventType } from './reflector.ts';
import { resourceFor } from './resources.ts';
import { ReflectorGroup } from './reflector-group.ts';
import { assertWatchable, type WatchScope } from './watch-scope.ts';
import { SECRET_CONSENT_LABEL, SECRET_CONSENT_TYPE, SECRET_CONSENT_VALUE } from '../tenancy/secret-consent.ts';

/** The owned kinds we watch; other owned kinds (ServiceMonitor, Certificate) are read live. */
export const OWNED_KINDS: [string, string][] = [
  ['v1', 'ConfigMap'], ['v1', 'Secret'], ['v1', 'Service'], ['apps/v1', 'StatefulSet'], ['apps/v1', 'Deployment'],
  ['policy/v1', 'PodDisruptionBudget'], ['autoscaling/v2', 'HorizontalPodAutoscaler'], ['networking.k8s.io/v1', 'NetworkPolicy'],
];

export interface CacheOptions {
  kube: Kube;
  log: Logger;
  metrics: OperatorMetrics;
  onEvent: (obj: KubeObject) => void;
  /** Server-side watch timeouts (tests shorten them). */
  watchSeconds?: [number, number];
  /** Where a kind's list and watch come from; default the API server (the unit tier scripts them). */
  source?: SourceFactory;
  clock?: Clock;
  /** The namespaces to watch (--watch-namespaces); undefined: the whole cluster. */
  namespaces?: WatchScope;
}

/** A change to a watched object, as its reflector's store took it. */
export type StoreObserver = (kind: string, type: StoreEventType, obj: KubeObject) => void;

/** namespace undefined: cluster-wide. */
export type SourceFactory = (apiVersion: string, kind: string, labelSelector: string | undefined, namespace?: string, fieldSelector?: string) => ListWatch<KubeObject>;

/**
 * The user Secrets the operator may read: those that consent (tenancy/secret-consent.ts),
 * by label or by type — a watch cannot OR two selectors, so one reflector each. Only these
 * are ever listed into memory: watching every Secret would hold the cluster's database
 * passwords and tokens in the operator's heap to find the few it may use, and a Secret
 * nobody marked for MailFleet is none of its business (a refusal reads its metadata only).
 * The watch is what makes a fix quick: adding the label (or creating the Secret) is an
 * event that re-renders every object naming it, within seconds rather than at the resync.
 */
const CONSENT_SELECTORS: { label?: string; field?: string }[] = [
  { label: `${SECRET_CONSENT_LABEL}=${SECRET_CONSENT_VALUE}` },
  { field: `type=${SECRET_CONSENT_TYPE}` },
];

export class CacheSyncTimeoutError extends Error {
  constructor(kinds: string[], ms: number) {
    super(`caches not synced after ${ms} ms: ${kinds.join(', ')} (can the operator list them? see RBAC)`);
    this.name = 'CacheSyncTimeoutError';
  }
}

export class Cache {
  readonly relays: ReflectorGroup<EmailRelay>;
  readonly domains: ReflectorGroup<SenderDomain>;
  /** What this cache sees: undefined for every namespace. */
  readonly namespaces: WatchScope;
  private readonly owned = new Map<string, ReflectorGroup<KubeObject>>();
  private readonly consented: ReflectorGroup<KubeObject>[];
  /**
   * Namespaces, for their labels (a relay admitting SenderDomains by namespace selector);
   * watched only cluster-wide: a namespace-scoped install may not read Namespace objects.
   */
  readonly namespaceObjects: ReflectorGroup<KubeObject> | undefined;
  private readonly kube: Kube;
  private readonly observers: StoreObserver[] = [];

  constructor(o: CacheOptions) {
    this.kube = o.kube;
    this.namespaces = o.namespaces;
    const source = o.source ?? ((apiVersion, kind, labelSelector, namespace, fieldSelector) => kubeListWatch(o.kube, apiVersion, kind, labelSelector, o.log, namespace, fieldSelector));
    const one = <T extends KubeObject>(apiVersion: string, kind: string, labelSelector: string | undefined, namespace: string | undefined, fieldSelector?: string) =>
      new Reflector<T>({
        kind, source: source(apiVersion, kind, labelSelector, namespace, fieldSelector) as ListWatch<T>, log: namespace ? o.log.child({ watchNamespace: namespace }) : o.log,
        onEvent: (t, obj) => {
          for (const f of this.observers) f(kind, t, obj);
          o.onEvent(obj);
        },
        ...(o.watchSeconds ? { watchSeconds: o.watchSeconds } : {}), ...(o.clock ? { clock: o.clock } : {}),
        onRestart: (reason) => o.metrics.watchRestarts.inc({ kind, reason }),
      });
    /** A namespaced kind, watched across the scope: cluster-wide, or once per watched namespace. */
    const mk = <T extends KubeObject>(apiVersion: string, kind: string, labelSelector?: string, fieldSelector?: string) => {
      assertWatchable(this.namespaces, kind, resourceFor(apiVersion, kind).namespaced);
      return new ReflectorGroup<T>(kind, new Map(this.namespaces === undefined
        ? [['', one<T>(apiVersion, kind, labelSelector, undefined, fieldSelector)]]
        : this.namespaces.map((ns) => [ns, one<T>(apiVersion, kind, labelSelector, ns, fieldSelector)])));
    };
    this.relays = mk<EmailRelay>(API_VERSION, 'EmailRelay');
    this.domains = mk<SenderDomain>(API_VERSION, 'SenderDomain');
    for (const [apiVersion, kind] of OWNED_KINDS) this.owned.set(kind, mk<KubeObject>(apiVersion, kind, `${MANAGED_BY}=${FIELD_MANAGER}`));
    this.consented = CONSENT_SELECTORS.map((s) => mk<KubeObject>('v1', 'Secret', s.label, s.field));
    this.namespaceObjects = this.namespaces === undefined ? new ReflectorGroup('Namespace', new Map([['', one<KubeObject>('v1', 'Namespace', undefined, undefined)]])) : undefined;
  }

  private get all(): ReflectorGroup<KubeObject>[] {
    return [this.relays, this.domains, ...this.owned.values(), ...this.consented, ...(this.namespaceObjects ? [this.namespaceObjects] : [])] as ReflectorGroup<KubeObject>[];
  }

  /**
   * Calls fn with every change to a watched object, before the controllers hear of it: an
   * index kept from the watch (controllers/attachment.ts claimIndex) is current when they ask.
   */
  observe(fn: StoreObserver): void {
    this.observers.push(fn);
  }

  /** A user Secret that consents to MailFleet's use, as last seen by its watch (else undefined). */
  consentedSecret(namespace: string, name: string): KubeObject | undefined {
    for (const r of this.consented) {
      const s = r.get(namespace, name);
      if (s) return s;
    }
    return undefined;
  }

  /** Is this owned kind watched (so a cache miss means absent, once synced)? */
  watches(kind: string): boolean {
    return this.owned.has(kind);
  }

  /** An owned object as last seen by its watch. */
  ownedObject(kind: string, namespace: string, name: string): KubeObject | undefined {
    return this.owned.get(kind)?.get(namespace, name);
  }

  /**
   * The cached object, else the API server's. For generated state a cache miss is not proof
   * of absence: the watch lags a fresh write, or the object lost our label.
   */
  async getOrFetch(apiVersion: string, kind: string, namespace: string, name: string): Promise<KubeObject | undefined> {
    return this.ownedObject(kind, namespace, name) ?? await this.kube.getOrUndefined(apiVersion, kind, name, namespace);
  }

  start(): void {
    for (const r of this.all) r.start();
  }

  async close(): Promise<void> {
    await Promise.all(this.all.map((r) => r.close()));
  }

  get synced(): boolean {
    return this.all.every((r) => r.synced);
  }

  /** Resolves once every reflector has listed once; rejects after timeoutMs or when aborted. */
  async waitForSync(timeoutMs: number, signal: AbortSignal): Promise<void> {
    if (signal.aborted) throw new Error('stopped before the caches synced');
    let timer: NodeJS.Timeout | undefined;
    const failed = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new CacheSyncTimeoutError(this.pending(), timeoutMs)), timeoutMs);
      signal.addEventListener('abort', () => reject(new Error('stopped before the caches synced')), { once: true });
    });
    try {
      await Promise.race([Promise.all(this.all.map((r) => r.whenSynced)), failed]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Kinds whose list/watch loop is stuck (see Reflector.healthy). */
  stalled(): string[] {
    return this.all.filter((r) => !r.healthy()).map((r) => r.kind);
  }

  private pending(): string[] {
    return this.all.flatMap((r) => r.pending());
  }
}
