// A counting semaphore with FIFO waiters and an adjustable limit (hot reload may raise or
// lower a destination's cap; lowering takes effect as running holders release).

export class Semaphore {
  private active = 0;
  private readonly waiters: (() => void)[] = [];
  private limit: number;

  constructor(limit: number) {
    this.limit = Math.max(1, limit);
  }

  setLimit(limit: number): void {
    this.limit = Math.max(1, limit);
    this.wake();
  }

  get inUse(): number { return this.active; }
  get waiting(): number { return this.waiters.length; }
  get idle(): boolean { return this.active === 0 && this.waiters.length === 0; }

  /**
   * Resolves with a release function once a slot is free; release is idempotent. Any of
   * the signals aborting takes the caller out of the line and rejects with its reason.
   * Listeners go on the signals only when the caller has to wait: a free slot (the common
   * case, once per delivered message) costs no listener and no combined signal.
   */
  async acquire(...signals: Array<AbortSignal | undefined>): Promise<() => void> {
    for (const s of signals) s?.throwIfAborted();
    if (this.active >= this.limit) {
      const watched = signals.filter((s): s is AbortSignal => s !== undefined);
      await new Promise<void>((resolve, reject) => {
        const detach = () => { for (const s of watched) s.removeEventListener('abort', onAbort); };
        const waiter = () => { detach(); resolve(); };
        const onAbort = (event: Event) => {
          const at = this.waiters.indexOf(waiter);
          if (at >= 0) this.waiters.splice(at, 1);
          detach();
          reject((event.target as AbortSignal).reason);
        };
        this.waiters.push(waiter);
        for (const s of watched) s.addEventListener('abort', onAbort, { once: true });
      });
    } else {
      this.active++;
    }
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.active--;
      this.wake();
    };
  }

  private wake(): void {
    while (this.active < this.limit && this.waiters.length > 0) {
      this.active++;
      this.waiters.shift()?.();
    }
  }
}
