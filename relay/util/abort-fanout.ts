// One 'abort' listener per signal however many waiters it has. Every delivery attempt
// waits on the queue runner's shutdown signal; an EventTarget listener added and removed
// per attempt was a visible share of the relay's CPU per message in bench:relay, a Set
// entry is not.

export class AbortFanout {
  private readonly waiting = new WeakMap<AbortSignal, Set<() => void>>();

  /** Calls `fn` once when `signal` aborts (at once if it already has); the result cancels that. */
  on(signal: AbortSignal, fn: () => void): () => void {
    if (signal.aborted) {
      fn();
      return () => {};
    }
    let set = this.waiting.get(signal);
    if (!set) {
      const fresh = new Set<() => void>();
      this.waiting.set(signal, fresh);
      signal.addEventListener('abort', () => {
        const due = [...fresh];
        fresh.clear();
        for (const f of due) f();
      }, { once: true });
      set = fresh;
    }
    const entry = () => fn(); // its own identity: the same fn may wait twice
    set.add(entry);
    return () => { set.delete(entry); };
  }

  /** Waiters on `signal` right now (for tests). */
  size(signal: AbortSignal): number {
    return this.waiting.get(signal)?.size ?? 0;
  }
}
