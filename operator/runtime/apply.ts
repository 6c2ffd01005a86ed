// Writes, the only way controllers change the cluster: server-side apply of owned objects
// (skipped when the live object already matches, refused when someone else controls it),
// deletion of objects no longer wanted, status writes (only when changed), Events, and the
// one way an object is marked Degraded.
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { API_VERSION, type Condition } from '../api/common.ts';
import { findCondition, mergeConditions, summaryConditions } from '../render/conditions.ts';
import { FIELD_MANAGER, type CustomObject, type KubeObject } from '../render/objects.ts';
import type { Cache } from './cache.ts';
import { canonical, needsApply, withIntent } from './diff.ts';
import type { Kube } from './kube.ts';
import { inScope, type WatchScope } from './watch-scope.ts';

type Status = Record<string, unknown> & { conditions?: Condition[] };
/** An EmailRelay or a SenderDomain: an object with conditions in its status. */
export type Owner = CustomObject<unknown, Status | object>;

/** An object we would write exists and belongs to someone else: only a person can resolve it. */
export class NotControlledError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NotControlledError';
  }
}

export interface ApplierOptions {
  kube: Kube;
  log: Logger;
  cache: Cache;
  /** Reported as the Events' reportingInstance. */
  identity: string;
  /** --watch-namespaces: no write may leave them (the Roles would refuse it anyway; this says why). */
  namespaces?: WatchScope;
}

const controlledBy = (obj: KubeObject, owner: KubeObject) =>
  obj.metadata.ownerReferences?.some((r) => r.controller && r.uid === owner.metadata.uid) ?? false;

const statusOf = (obj: Owner) => (obj.status ?? {}) as Status;

/**
 * A new Event's name: the object's, a dot, a unique suffix; at most 253 characters (a DNS
 * subdomain), so an object with a long name still gets its Events. A cut name loses its
 * trailing `-`/`.` (a label may not end with one).
 */
export function eventName(objectName: string): string {
  const suffix = `${Date.now().toString(16)}${randomBytes(2).toString('hex')}`;
  return `${objectName.slice(0, 252 - suffix.length).replace(/[-.]+$/, '')}.${suffix}`;
}

export class Applier {
  private readonly o: ApplierOptions;

  constructor(o: ApplierOptions) {
    this.o = o;
  }

  /** Throws NotControlledError when obj exists and another object (or nobody) controls it. */
  assertControlled(obj: KubeObject | undefined, owner: KubeObject, what: string): void {
    if (obj && !controlledBy(obj, owner)) throw new NotControlledError(what);
  }

  /** Throws when a write would leave the watched namespaces: a render bug, never a retry. */
  private assertInScope(ns: string, what: string): void {
    if (!inScope(this.o.namespaces, ns)) throw new NotControlledError(`${what} is in namespace ${ns}, outside the operator's --watch-namespaces`);
  }

  /** Applies obj unless the live object already matches; true when it wrote. */
  async apply(obj: KubeObject, owner: KubeObject): Promise<boolean> {
    const desired = withIntent(obj);
    const ns = obj.metadata.namespace ?? '';
    this.assertInScope(ns, `${obj.kind} ${obj.metadata.name}`);
    const live = await this.o.cache.getOrFetch(obj.apiVersion, obj.kind, ns, obj.metadata.name);
    if (live) {
      const ctl = live.metadata.ownerReferences?.find((r) => r.controller);
      if (!ctl || ctl.uid !== owner.metadata.uid) {
        throw new NotControlledError(`${obj.kind} ${ns}/${obj.metadata.name} exists and is not controlled by this object; rename or delete it`);
      }
    }
    if (!needsApply(desired, live)) return false;
    this.o.log.info({ namespace: ns, name: obj.metadata.name, kind: obj.kind, create: !live }, 'applying');
    await this.o.kube.apply(desired, true);
    return true;
  }

  /** Deletes an object the owner no longer wants, if it exists and the owner controls it; true when it did. */
  async deleteIfOwned(a: { apiVersion: string; kind: string; name: string }, owner: KubeObject): Promise<boolean> {
    const ns = owner.metadata.namespace ?? '';
    this.assertInScope(ns, `${a.kind} ${a.name}`);
    const { cache, kube, log } = this.o;
    // A watched kind's cache miss means absent; other kinds are asked for.
    const live = cache.ownedObject(a.kind, ns, a.name) ?? (cache.watches(a.kind) ? undefined : await kube.getOrUndefined(a.apiVersion, a.kind, a.name, ns));
    if (!live || !controlledBy(live, owner)) return false;
    log.info({ namespace: ns, name: owner.metadata.name, kind: a.kind, child: a.name }, 'deleting object no longer wanted');
    await kube.delete(a.apiVersion, a.kind, a.name, ns, live.metadata.uid);
    return true;
  }

  /** Writes status to the /status subresource when it differs from what the object has. */
  async status(obj: Owner, status: object): Promise<void> {
    if (canonical(obj.status ?? {}) === canonical(status)) return;
    await this.o.kube.apply({ apiVersion: API_VERSION, kind: obj.kind, metadata: { name: obj.metadata.name, namespace: obj.metadata.namespace }, status } as KubeObject, true, 'status');
  }

  /** Records an Event on obj; failing to is logged, never fatal. */
  async event(obj: KubeObject, type: 'Normal' | 'Warning', reason: string, message: string): Promise<void> {
    const now = new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
    try {
      await this.o.kube.create({
        apiVersion: 'v1', kind: 'Event',
        metadata: { name: eventName(obj.metadata.name), namespace: obj.metadata.namespace },
        involvedObject: { apiVersion: obj.apiVersion, kind: obj.kind, name: obj.metadata.name, namespace: obj.metadata.namespace, uid: obj.metadata.uid },
        type, reason, message: message.slice(0, 1024), count: 1, firstTimestamp: now, lastTimestamp: now,
        source: { component: FIELD_MANAGER }, reportingComponent: FIELD_MANAGER, reportingInstance: this.o.identity,
      });
    } catch (e) {
      this.o.log.warn({ namespace: obj.metadata.namespace, name: obj.metadata.name, err: (e as Error).message, reason }, 'could not record event');
    }
  }

  /**
   * Marks obj Degraded (and kstatus Stalled) for a problem only a person can fix, and
   * records a Warning Event the first time (or when the reason or message changes).
   * status: the full status to write; default: the current one with the summary conditions
   * replaced (the scale subresource's replicas/selector stay).
   */
  async degrade(obj: Owner, reason: string, message: string, status?: object): Promise<void> {
    const current = statusOf(obj);
    const generation = obj.metadata.generation ?? 0;
    const was = findCondition(current.conditions, 'Degraded');
    await this.status(obj, status ?? {
      ...current, observedGeneration: generation,
      conditions: mergeConditions(current.conditions, summaryConditions('Degraded', reason, message), generation, new Date()),
    });
    if (was?.status !== 'True' || was.reason !== reason || was.message !== message) await this.event(obj, 'Warning', reason, message);
  }
}
