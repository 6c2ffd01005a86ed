// The due-time pump under the queue runner and the webhook dispatcher: due order, the
// running limit, stale items skipped, future items started once due, nothing after stop().
import { describe, expect, it, vi } from 'vitest';
import { DuePump } from '../../../relay/util/due-pump.ts';

describe('DuePump', () => {
  it('runs due items in due order, never more than the limit at once, skipping stale ones', async () => {
    const started: string[] = [];
    let running = 0;
    let most = 0;
    const release: Array<() => void> = [];
    const pump = new DuePump<string>({
      limit: () => 2,
      run: (item) => {
        if (item.startsWith('stale')) return undefined;
        started.push(item);
        running++;
        most = Math.max(most, running);
        return new Promise<void>((resolve) => release.push(() => { running--; resolve(); }));
      },
    });
    const now = Date.now();
    for (const [at, item] of [[now - 5, 'c'], [now - 30, 'a'], [now - 20, 'stale-1'], [now - 10, 'b'], [now - 1, 'd']] as const) pump.schedule(at, item);
    pump.start();
    expect(started).toEqual(['a', 'b']);
    release.shift()!(); // a ends: its slot goes to c
    await vi.waitFor(() => expect(started).toEqual(['a', 'b', 'c']));
    release.shift()!();
    await vi.waitFor(() => expect(started).toEqual(['a', 'b', 'c', 'd']));
    release.splice(0).forEach((r) => r());
    expect(most).toBe(2);
    pump.stop();
  });

  it('starts a future item once it is due, and nothing after stop()', async () => {
    const started: string[] = [];
    const pump = new DuePump<string>({ limit: () => 4, run: (item) => { started.push(item); return Promise.resolve(); }, unref: true });
    pump.start();
    pump.schedule(Date.now() + 30, 'later');
    pump.pump();
    expect(started).toEqual([]);
    await vi.waitFor(() => expect(started).toEqual(['later']), { timeout: 5_000, interval: 10 });
    pump.stop();
    pump.schedule(Date.now() - 1, 'after-stop');
    pump.pump();
    expect(started).toEqual(['later']);
  });
});
