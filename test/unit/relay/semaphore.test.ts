// The destination and pool semaphores, and the abort fan-out delivery attempts wait on:
// both add listeners to a signal only while someone waits, and leave none behind.
import { describe, expect, it } from 'vitest';
import { Semaphore } from '../../../relay/delivery/semaphore.ts';
import { AbortFanout } from '../../../relay/util/abort-fanout.ts';

/** EventTarget listeners on a signal, through Node's own symbol (only for this check). */
function listeners(signal: AbortSignal): number {
  const sym = Object.getOwnPropertySymbols(signal).find((s) => s.description === 'kEvents');
  const events = sym ? (signal as unknown as Record<symbol, Map<string, { size: number }>>)[sym] : undefined;
  return events?.get('abort')?.size ?? 0;
}

describe('semaphore', () => {
  it('a free slot adds no listener; a waiter is taken out of line by either signal', async () => {
    const sem = new Semaphore(1);
    const a = new AbortController();
    const b = new AbortController();
    const first = await sem.acquire(a.signal, b.signal);
    expect(listeners(a.signal) + listeners(b.signal)).toBe(0);
    const waiting = sem.acquire(a.signal, undefined, b.signal);
    await Promise.resolve();
    expect(sem.waiting).toBe(1);
    expect(listeners(a.signal)).toBe(1);
    b.abort(new Error('target went down'));
    await expect(waiting).rejects.toThrow('target went down');
    expect(sem.waiting).toBe(0);
    expect(listeners(a.signal) + listeners(b.signal)).toBe(0);
    first();
    expect(sem.inUse).toBe(0);
  });

  it('a waiter that gets its slot leaves no listener; an aborted signal refuses at once', async () => {
    const sem = new Semaphore(1);
    const a = new AbortController();
    const first = await sem.acquire();
    const second = sem.acquire(a.signal);
    first();
    const release = await second;
    expect(listeners(a.signal)).toBe(0);
    expect(sem.inUse).toBe(1);
    release();
    release(); // idempotent
    expect(sem.inUse).toBe(0);
    a.abort(new Error('shutdown'));
    await expect(sem.acquire(undefined, a.signal)).rejects.toThrow('shutdown');
  });
});

describe('abort fan-out', () => {
  it('one listener per signal however many wait; each waiter called once, cancelled ones not', () => {
    const fan = new AbortFanout();
    const ac = new AbortController();
    const calls: string[] = [];
    const cancels = ['a', 'b', 'c'].map((n) => fan.on(ac.signal, () => calls.push(n)));
    expect(listeners(ac.signal)).toBe(1);
    expect(fan.size(ac.signal)).toBe(3);
    cancels[1]!();
    expect(fan.size(ac.signal)).toBe(2);
    ac.abort();
    expect(calls).toEqual(['a', 'c']);
    expect(fan.size(ac.signal)).toBe(0);
    // after the abort: called at once
    fan.on(ac.signal, () => calls.push('late'));
    expect(calls).toEqual(['a', 'c', 'late']);
  });
});
