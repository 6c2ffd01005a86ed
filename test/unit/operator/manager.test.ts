// The manager: no reconcile before every cache has listed (events from before are not lost,
// they run then), a cache that cannot list in time is the one terminal error, and stop()
// ends run(). Caches fed by scripted sources; the Kube client points at a closed loopback
// port (discovery then keeps "not installed").
import { afterEach, describe, expect, it } from 'vitest';
import type { KubeObject } from '../../../operator/render/objects.ts';
import { CacheSyncTimeoutError } from '../../../operator/runtime/cache.ts';
import { Manager, type Reconciler, type Request } from '../../../operator/runtime/manager.ts';
import { createOperatorMetrics } from '../../../operator/runtime/metrics.ts';
import { flush, GatedSource, silentLog, unreachableKube } from './fakes.ts';

class Recorder implements Reconciler {
  readonly kind = 'EmailRelay';
  readonly calls: string[] = [];
  requestsFor(obj: KubeObject): Request[] {
    return obj.kind === 'EmailRelay' ? [{ namespace: obj.metadata.namespace ?? '', name: obj.metadata.name }] : [];
  }
  async reconcile(req: Request): Promise<number | undefined> {
    this.calls.push(`${req.namespace}/${req.name}`);
    return undefined;
  }
}

const relay: KubeObject = { apiVersion: 'mailfleet.io/v1alpha1', kind: 'EmailRelay', metadata: { name: 'r', namespace: 'ns', resourceVersion: '1' } };

const stops: (() => Promise<void>)[] = [];
afterEach(async () => { for (const s of stops.splice(0)) await s(); });

function manager(sources: Record<string, GatedSource>, cacheSyncTimeoutMs = 60_000) {
  const kube = unreachableKube();
  const m = new Manager({
    kube, log: silentLog, metrics: createOperatorMetrics(), resyncMs: 3_600_000, workers: 2, cacheSyncTimeoutMs,
    source: (_v, kind) => sources[kind] ?? new GatedSource([]),
  });
  const r = new Recorder();
  m.add(r);
  stops.push(async () => { await m.stop(); kube.close(); });
  return { m, r };
}

describe('Manager', () => {
  it('reconciles nothing until every cache has listed, then what was enqueued before', async () => {
    const domains = new GatedSource([], false);
    const { m, r } = manager({ EmailRelay: new GatedSource([relay]), SenderDomain: domains });
    const running = m.run();
    for (let i = 0; i < 20 && m.queue.depth === 0; i++) await new Promise((res) => setTimeout(res, 50));
    expect(m.queue.depth).toBe(1); // the relay's event is queued ...
    await flush(20);
    expect(r.calls).toEqual([]); // ... but not worked on: the SenderDomain cache is still empty
    expect(m.synced).toBe(false);
    domains.gate.resolve();
    for (let i = 0; i < 100 && r.calls.length === 0; i++) await new Promise((res) => setTimeout(res, 20));
    expect(r.calls).toEqual(['ns/r']);
    expect(m.synced).toBe(true);
    await m.stop();
    await expect(running).resolves.toBeUndefined();
  });

  it('fails run() when a cache cannot list in time, naming the kind', async () => {
    const { m, r } = manager({ SenderDomain: new GatedSource([], false) }, 300);
    const err = await m.run().then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(CacheSyncTimeoutError);
    expect((err as Error).message).toMatch(/caches not synced after 300 ms: SenderDomain \(/);
    expect(r.calls).toEqual([]);
  });
});
