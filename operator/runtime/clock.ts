// Time as the runtime sees it: now and timers. Injected so the unit tier can drive the
// reflector's backoff and the leader election's deadlines without waiting.
export interface Timer {
  cancel(): void;
}

export interface Clock {
  now(): number;
  /** Calls fn after ms; the timer keeps the process alive like setTimeout unless weak. */
  after(ms: number, fn: () => void, opts?: { weak?: boolean }): Timer;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  after(ms, fn, opts) {
    // setTimeout fires at once for delays beyond 2^31-1 ms: cap (a wake-up that early is harmless).
    const t = setTimeout(fn, Math.min(ms, 2 ** 31 - 1));
    if (opts?.weak) t.unref();
    return { cancel: () => clearTimeout(t) };
  },
};

/** Resolves after ms, or at once when signal aborts. */
export function sleep(clock: Clock, ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const onAbort = () => { timer.cancel(); resolve(); };
    const timer = clock.after(ms, () => { signal.removeEventListener('abort', onAbort); resolve(); });
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
