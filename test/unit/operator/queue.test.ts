// The work queue's contract (client-go semantics): one wait per key, never a key in two
// workers at once, per-key exponential backoff, the earlier of two delays, and a close
// that releases every waiting worker.
import { describe, expect, it } from 'vitest';
import { WorkQueue } from '../../../operator/runtime/queue.ts';
import { FakeClock, flush } from './fakes.ts';

const queue = (opts: { baseDelayMs?: number; maxDelayMs?: number } = {}) => {
  const clock = new FakeClock();
  const depths: number[] = [];
  return { q: new WorkQueue({ ...opts, clock, onDepth: (d) => depths.push(d) }), clock, depths };
};

/** What get() hands out without waiting. */
async function drain(q: WorkQueue): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < 1000 && q.depth > 0; i++) out.push((await q.get()) as string);
  return out;
}

describe('WorkQueue', () => {
  it('hands out keys in order, each once however often it was added', async () => {
    const { q, depths } = queue();
    for (const k of ['a', 'b', 'a', 'c', 'b']) q.add(k);
    expect(q.depth).toBe(3);
    expect(await drain(q)).toEqual(['a', 'b', 'c']);
    expect(depths.at(-1)).toBe(0);
  });

  it('never hands out a key that is being processed; one re-added meanwhile comes back after done()', async () => {
    const { q } = queue();
    q.add('a');
    expect(await q.get()).toBe('a');
    q.add('a');
    q.add('a');
    expect(q.depth).toBe(0);
    q.done('a');
    expect(await drain(q)).toEqual(['a']);
    q.done('a');
    expect(q.depth).toBe(0);
  });

  it('wakes a waiting worker when a key arrives', async () => {
    const { q } = queue();
    const got = q.get();
    q.add('x');
    expect(await got).toBe('x');
  });

  it('adds a delayed key when its time comes; of two delays for a key the earlier wins', async () => {
    const { q, clock } = queue();
    q.addAfter('k', 10_000);
    q.addAfter('k', 3_000);
    q.addAfter('k', 20_000);
    await clock.advance(2_999);
    expect(q.depth).toBe(0);
    await clock.advance(1);
    expect(await drain(q)).toEqual(['k']);
    await clock.advance(60_000);
    expect(q.depth).toBe(0);
    q.addAfter('now', 0);
    expect(q.depth).toBe(1);
  });

  it('backs off per key exponentially up to the cap, and forget() starts over', () => {
    const { q } = queue({ baseDelayMs: 500, maxDelayMs: 5_000 });
    expect([1, 2, 3, 4, 5, 6].map(() => q.addRateLimited('a'))).toEqual([500, 1000, 2000, 4000, 5000, 5000]);
    expect(q.addRateLimited('b')).toBe(500);
    q.forget('a');
    expect(q.addRateLimited('a')).toBe(500);
  });

  it('close() releases waiting workers with undefined, cancels delayed keys and refuses new ones', async () => {
    const { q, clock } = queue();
    const waiting = [q.get(), q.get()];
    q.addAfter('later', 1_000);
    expect(clock.pending).toBe(1);
    q.close();
    expect(await Promise.all(waiting)).toEqual([undefined, undefined]);
    q.add('x');
    q.addAfter('y', 1);
    await clock.advance(5_000);
    await flush();
    expect(q.depth).toBe(0);
    expect(await q.get()).toBeUndefined();
  });
});
