// The due-time heap the queue runner and the webhook dispatcher schedule with.
import { describe, expect, it } from 'vitest';
import { TimerHeap } from '../../../relay/util/timer-heap.ts';

describe('timer heap', () => {
  it('pops what is due in due order, ties in insertion order', () => {
    const h = new TimerHeap<string>();
    const times = [50, 10, 40, 10, 30, 20, 60, 0];
    times.forEach((t, i) => h.push(t, `m${i}`));
    expect(h.popDue(-1)).toBeUndefined();
    const out: string[] = [];
    for (let v = h.popDue(100); v !== undefined; v = h.popDue(100)) out.push(v);
    expect(out).toEqual(['m7', 'm1', 'm3', 'm5', 'm4', 'm2', 'm0', 'm6']);
  });
});
