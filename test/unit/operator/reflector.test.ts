// The reflector's restart/relist policy and its stall detection, against a scripted
// list/watch source and a clock under which sleeps pass at once (their lengths recorded).
import { afterEach, describe, expect, it } from 'vitest';
import type { KubeObject } from '../../../operator/render/objects.ts';
import { Reflector, type StoreEventType } from '../../../operator/runtime/reflector.ts';
import { FakeClock, InstantClock, ScriptedSource, obj, silentLog, type ScriptedWatch } from './fakes.ts';
import type { ListPage } from '../../../operator/runtime/list-watch.ts';

const page = (rv: string, items: KubeObject[], cont?: string): ListPage<KubeObject> => ({ items, resourceVersion: rv, ...(cont ? { continue: cont } : {}) });

const open: Reflector<KubeObject>[] = [];
afterEach(async () => { await Promise.all(open.splice(0).map((r) => r.close())); });

function reflect(lists: (ListPage<KubeObject> | Error)[], watches: ScriptedWatch[], clock: InstantClock | FakeClock = new InstantClock()) {
  const source = new ScriptedSource(clock, lists, watches);
  const events: string[] = [];
  const restarts: string[] = [];
  const r = new Reflector<KubeObject>({
    kind: 'ConfigMap', source, log: silentLog, clock, random: () => 0,
    onEvent: (t: StoreEventType, o) => events.push(`${t} ${o.metadata.name}@${o.metadata.resourceVersion}`),
    onRestart: (why) => restarts.push(why),
  });
  open.push(r);
  r.start();
  return { r, source, events, restarts, clock };
}

describe('Reflector restart and relist policy', () => {
  it('relists at once after 410 Gone and reports only what changed since the last list', async () => {
    const { r, source, events, restarts } = reflect(
      [page('10', [obj('a', '1'), obj('b', '1')]), page('20', [obj('a', '2'), obj('c', '3')])],
      [{ events: [['MODIFIED', obj('a', '2')]], end: 'gone' }, {}],
    );
    await source.idle.promise;
    expect(source.calls).toEqual(['list', 'watch rv=10', 'list', 'watch rv=20']);
    expect(events).toEqual(['ADDED a@1', 'ADDED b@1', 'MODIFIED a@2', 'DELETED b@1', 'ADDED c@3']);
    expect(restarts).toEqual(['gone']);
    expect([...r.store.keys()].sort()).toEqual(['ns/a', 'ns/c']);
  });

  it('rewatches a failed watch from the last resourceVersion with doubling backoff, and relists once the backoff reaches 4 s', async () => {
    const fail = (rv: string): ScriptedWatch => ({ events: [['BOOKMARK', obj('bm', rv)]], end: new Error('ECONNRESET') });
    const { source, restarts } = reflect([page('10', []), page('50', [])], [fail('11'), fail('12'), fail('13'), fail('14'), {}]);
    await source.idle.promise;
    expect(source.calls).toEqual([
      'list', 'watch rv=10', 'sleep 500', 'watch rv=11', 'sleep 1000', 'watch rv=12', 'sleep 2000', 'watch rv=13', 'sleep 4000',
      'list', 'watch rv=50',
    ]);
    expect(restarts).toEqual(['error', 'error', 'error', 'error']);
  });

  it('rewatches at once a watch the server ended after its timeout, and backs off from one that closed right after it opened', async () => {
    const { source } = reflect([page('10', [])], [
      { end: 'closed', ranMs: 240_000 }, { end: 'closed', ranMs: 100 }, { end: 'closed', ranMs: 100 }, { end: 'closed', ranMs: 240_000 },
      { end: 'closed', ranMs: 100 }, {},
    ]);
    await source.idle.promise;
    expect(source.calls).toEqual([
      'list', 'watch rv=10', 'watch rv=10', 'sleep 500', 'watch rv=10', 'sleep 1000', 'watch rv=10',
      // the healthy watch reset the backoff
      'watch rv=10', 'sleep 500', 'watch rv=10',
    ]);
  });

  it('retries a failed list with backoff capped at 30 s, is synced only after a list succeeded, and pages through continue tokens', async () => {
    const lists = [...Array.from({ length: 8 }, () => new Error('connection refused')), page('', [obj('a', '1')], 'next'), page('30', [obj('b', '1')])];
    const { r, source } = reflect(lists, [{}]);
    expect(r.synced).toBe(false);
    await source.idle.promise;
    expect(source.calls).toEqual([
      'list', 'sleep 500', 'list', 'sleep 1000', 'list', 'sleep 2000', 'list', 'sleep 4000', 'list', 'sleep 8000', 'list', 'sleep 16000',
      'list', 'sleep 30000', 'list', 'sleep 30000', 'list', 'list continue=next', 'watch rv=30',
    ]);
    expect(r.synced).toBe(true);
    expect(r.list().map((o) => o.metadata.name).sort()).toEqual(['a', 'b']);
  });

  it('is unhealthy once a watch has given no sign of life for longer than any watch may last, and healthy again on the next event', async () => {
    const clock = new FakeClock();
    const { r, source } = reflect([page('10', [])], [{}], clock);
    await source.idle.promise;
    // watchSeconds defaults to 240-300 s; client-node aborts a silent watch 30 s after that.
    await clock.advance(300_000 + 90_000);
    expect(r.healthy()).toBe(true);
    await clock.advance(1);
    expect(r.healthy()).toBe(false);
    source.emit('BOOKMARK', obj('bm', '11'));
    expect(r.healthy()).toBe(true);
  });

  it('counts the wait for a failed list as progress: an API server that is down is not a stall', async () => {
    const clock = new FakeClock();
    const lists = Array.from({ length: 40 }, () => new Error('connection refused'));
    const { r } = reflect(lists, [], clock);
    for (let i = 0; i < 30; i++) {
      await clock.advance(30_000);
      expect(r.healthy()).toBe(true);
    }
  });
});
