// The operator's probes over a real loopback socket: /healthz fails while a watch is stalled
// (a real Reflector on a scripted source whose watch never ends, on a clock the test moves),
// and while stopping; /readyz follows leadership and cache sync.
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { KubeObject } from '../../../operator/render/objects.ts';
import { createProbeServer, operatorHealth, operatorReadiness } from '../../../operator/runtime/http.ts';
import { createOperatorMetrics } from '../../../operator/runtime/metrics.ts';
import { Reflector } from '../../../operator/runtime/reflector.ts';
import { FakeClock, ScriptedSource, silentLog } from './fakes.ts';

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => { for (const c of cleanup.splice(0)) await c(); });

describe('operator probes', () => {
  it('/healthz answers 503 naming the kind once a watch has stalled, 200 again when it shows life', async () => {
    const clock = new FakeClock();
    const source = new ScriptedSource(clock, [{ items: [], resourceVersion: '1' }], [{}]);
    const r = new Reflector<KubeObject>({ kind: 'Secret', source, log: silentLog, clock, onEvent: () => {}, watchSeconds: [60, 60] });
    r.start();
    cleanup.push(() => r.close());
    await source.idle.promise;

    const server = createProbeServer({
      metrics: createOperatorMetrics(), leading: () => true,
      healthz: () => operatorHealth(false, r.healthy() ? [] : [r.kind]),
      readyz: () => operatorReadiness(false, true, r.synced),
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    cleanup.push(() => new Promise((resolve) => server.close(() => resolve())));
    const get = async (p: string) => {
      const res = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}${p}`);
      return [res.status, (await res.text()).trim()];
    };

    expect(await get('/healthz')).toEqual([200, 'ok']);
    expect(await get('/readyz')).toEqual([200, 'leader']);
    await clock.advance(60_000 + 90_000 + 1);
    expect(await get('/healthz')).toEqual([503, 'watch stalled: Secret']);
    source.emit('BOOKMARK', { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'bm', resourceVersion: '2' } });
    expect(await get('/healthz')).toEqual([200, 'ok']);
    expect((await get('/metrics'))[0]).toBe(200);
    expect((await get('/nope'))[0]).toBe(404);
  });

  it('health and readiness decisions', () => {
    expect(operatorHealth(true, [])).toEqual({ ok: false, text: 'stopping' });
    expect(operatorHealth(false, ['EmailRelay', 'Secret'])).toEqual({ ok: false, text: 'watch stalled: EmailRelay, Secret' });
    expect(operatorReadiness(false, false, false)).toEqual({ ok: true, text: 'standby' });
    expect(operatorReadiness(false, true, false)).toEqual({ ok: false, text: 'not ready' });
    expect(operatorReadiness(false, true, true)).toEqual({ ok: true, text: 'leader' });
    expect(operatorReadiness(true, true, true)).toEqual({ ok: false, text: 'not ready' });
  });
});
