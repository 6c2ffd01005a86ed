// Stand-ins for time and the API server, for the runtime's unit tier (no cluster): a clock
// that moves only when told to, a Lease store with optimistic concurrency, and a list/watch
// source that plays a script.
import { KubeConfig } from '@kubernetes/client-node';
import pino from 'pino';
import { ApiError, Kube } from '../../../operator/runtime/kube.ts';
import type { Clock, Timer } from '../../../operator/runtime/clock.ts';
import type { Lease, LeaseClient } from '../../../operator/runtime/leader.ts';
import type { ListPage, ListWatch, WatchEnd, WatchEventType } from '../../../operator/runtime/list-watch.ts';
import type { KubeObject } from '../../../operator/render/objects.ts';

export const silentLog = pino({ level: 'silent' });

/** Lets every settled promise chain run (timers of the fake clock do not). */
export const flush = async (rounds = 5) => { for (let i = 0; i < rounds; i++) await new Promise((r) => setImmediate(r)); };

/** Time moves only in advance(); due timers fire in order, each followed by a flush. */
export class FakeClock implements Clock {
  t = 1_700_000_000_000;
  private timers: { at: number; seq: number; fn: () => void; cancelled: boolean }[] = [];
  private seq = 0;

  now(): number { return this.t; }

  after(ms: number, fn: () => void): Timer {
    const timer = { at: this.t + Math.max(0, ms), seq: this.seq++, fn, cancelled: false };
    this.timers.push(timer);
    return { cancel: () => { timer.cancelled = true; } };
  }

  get pending(): number { return this.timers.filter((t) => !t.cancelled).length; }

  async advance(ms: number): Promise<void> {
    const end = this.t + ms;
    await flush();
    for (let i = 0; i < 100_000; i++) {
      const due = this.timers.filter((t) => !t.cancelled && t.at <= end).sort((a, b) => a.at - b.at || a.seq - b.seq)[0];
      if (!due) break;
      this.timers = this.timers.filter((t) => t !== due);
      this.t = due.at;
      due.fn();
      await flush();
    }
    this.t = end;
    await flush();
  }
}

/** A clock under which every timer fires at once, as if its time had passed; sleeps are recorded. */
export class InstantClock implements Clock {
  t = 1_700_000_000_000;
  /** Where sleeps are written down, interleaved with the source's calls. */
  trace: string[] = [];
  now(): number { return this.t; }
  after(ms: number, fn: () => void): Timer {
    let cancelled = false;
    this.trace.push(`sleep ${ms}`);
    queueMicrotask(() => { if (!cancelled) { this.t += ms; fn(); } });
    return { cancel: () => { cancelled = true; } };
  }
}

/** One Lease in memory; update refuses a stale resourceVersion with 409, as the API server does. */
export class FakeLeases implements LeaseClient {
  lease: Lease | undefined;
  private rv = 0;
  /** While set, updates never answer (a black-holed connection). */
  hang = false;

  async get(): Promise<Lease | undefined> {
    return this.lease && structuredClone(this.lease);
  }

  async create(lease: Lease): Promise<void> {
    if (this.lease) throw new ApiError('POST', 'leases', 409, { message: 'already exists' });
    this.lease = { ...structuredClone(lease), metadata: { ...lease.metadata, resourceVersion: String(++this.rv) } };
  }

  async update(lease: Lease): Promise<void> {
    if (this.hang) return new Promise(() => {});
    if (lease.metadata.resourceVersion !== this.lease?.metadata.resourceVersion) throw new ApiError('PUT', 'leases', 409, { message: 'conflict' });
    this.lease = { ...structuredClone(lease), metadata: { ...lease.metadata, resourceVersion: String(++this.rv) } };
  }

  /** Another replica renews the Lease it holds, stamping renewTime with its own clock. */
  renewAs(holder: string, renewTimeMs: number, leaseSeconds = 15): void {
    this.lease = {
      apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: 'l', namespace: 'ns', resourceVersion: String(++this.rv) },
      spec: { holderIdentity: holder, leaseDurationSeconds: leaseSeconds, renewTime: new Date(renewTimeMs).toISOString().replace('Z', '000Z'), leaseTransitions: 0 },
    };
  }
}

export const obj = (name: string, rv: string): KubeObject => ({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace: 'ns', resourceVersion: rv } });

export interface ScriptedWatch {
  events?: [WatchEventType, KubeObject][];
  /** How the watch ends; undefined: it stays open until aborted. */
  end?: WatchEnd;
  /** Time the watch was open before it ended. */
  ranMs?: number;
}

/** A list/watch source that plays lists and watches in order and records the calls made. */
export class ScriptedSource implements ListWatch<KubeObject> {
  readonly calls: string[] = [];
  private readonly lists: (ListPage<KubeObject> | Error)[];
  private readonly watches: ScriptedWatch[];
  private readonly clock: InstantClock | FakeClock;
  private openWatch: ((type: WatchEventType, o: KubeObject) => void) | undefined;
  /** Resolves when the script is used up and the reflector sits in its last, open watch. */
  readonly idle = Promise.withResolvers<void>();

  constructor(clock: InstantClock | FakeClock, lists: (ListPage<KubeObject> | Error)[], watches: ScriptedWatch[]) {
    this.clock = clock;
    if (clock instanceof InstantClock) clock.trace = this.calls;
    this.lists = [...lists];
    this.watches = [...watches];
  }

  async list(cont: string | undefined): Promise<ListPage<KubeObject>> {
    this.calls.push(cont ? `list continue=${cont}` : 'list');
    const next = this.lists.shift();
    if (!next) throw new Error('script: no list left');
    if (next instanceof Error) throw next;
    return next;
  }

  async watch(rv: string, _timeoutSeconds: number, onEvent: (type: WatchEventType, o: KubeObject) => void, signal: AbortSignal): Promise<WatchEnd> {
    this.calls.push(`watch rv=${rv}`);
    const w = this.watches.shift() ?? {};
    for (const [type, o] of w.events ?? []) onEvent(type, o);
    if (w.end === undefined) {
      this.openWatch = onEvent;
      this.idle.resolve();
      return new Promise((resolve) => signal.addEventListener('abort', () => resolve('closed'), { once: true }));
    }
    this.clock.t += w.ranMs ?? 0;
    return w.end;
  }

  /** Delivers an event on the watch that is open now. */
  emit(type: WatchEventType, o: KubeObject): void {
    if (!this.openWatch) throw new Error('no open watch');
    this.openWatch(type, o);
  }
}

/** Lists its items once (when its gate opens) and then keeps one watch open until aborted. */
export class GatedSource implements ListWatch<KubeObject> {
  readonly gate = Promise.withResolvers<void>();
  private readonly items: KubeObject[];
  constructor(items: KubeObject[], open = true) {
    this.items = items;
    if (open) this.gate.resolve();
  }
  async list(): Promise<ListPage<KubeObject>> {
    await this.gate.promise;
    return { items: this.items, resourceVersion: '1' };
  }
  watch(_rv: string, _t: number, _on: unknown, signal: AbortSignal): Promise<WatchEnd> {
    return new Promise((resolve) => signal.addEventListener('abort', () => resolve('closed'), { once: true }));
  }
}

/** A Kube client pointing at a closed loopback port: every request fails (discovery keeps "not installed"). */
export function unreachableKube(): Kube {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'c', server: 'http://127.0.0.1:9', skipTLSVerify: true }], users: [{ name: 'u' }],
    contexts: [{ name: 'x', cluster: 'c', user: 'u' }], currentContext: 'x',
  });
  return new Kube({ kubeconfig: kc, timeoutMs: 2_000 });
}
