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

  /** Resolves with a release function once a slot is free; release is idempotent. */
  async acquire(): Promise<() => void> {
    if (this.active >= this.limit) {
      await new Promise<void>((resolve) => this.waiters.push(resolve));
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
