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
   * Resolves with a release function once a slot is free; release is idempotent. An
   * aborted signal takes the caller out of the line and rejects with the signal's reason.
   */
  async acquire(signal?: AbortSignal): Promise<() => void> {
    signal?.throwIfAborted();
    if (this.active >= this.limit) {
      await new Promise<void>((resolve, reject) => {
        const waiter = () => { signal?.removeEventListener('abort', onAbort); resolve(); };
        const onAbort = () => {
          const at = this.waiters.indexOf(waiter);
          if (at >= 0) this.waiters.splice(at, 1);
          reject(signal!.reason);
        };
        this.waiters.push(waiter);
        signal?.addEventListener('abort', onAbort, { once: true });
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
