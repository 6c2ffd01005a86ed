// Bounds the scrypt work AUTH can start: each check takes 16 MB and a libuv thread for
// tens of milliseconds, so 60 parallel AUTHs for unknown users grew the relay by 300 MB.
// At most `concurrency` checks run; up to `maxWaiting` more wait their turn (a waiting
// check costs a promise, not a hash); beyond that AUTH is refused at once (454 4.7.0)
// without touching scrypt.
import { Semaphore } from '../delivery/semaphore.ts';
import { verifyPassword } from './password.ts';

export class PasswordGateBusyError extends Error {
  constructor() {
    super('too many password checks in progress');
    this.name = 'PasswordGateBusyError';
  }
}

export class PasswordGate {
  private readonly slots: Semaphore;
  private maxWaiting: number;

  constructor(concurrency: number, maxWaiting: number) {
    this.slots = new Semaphore(concurrency);
    this.maxWaiting = maxWaiting;
  }

  /** Follows a config reload. */
  configure(concurrency: number, maxWaiting: number): void {
    this.slots.setLimit(concurrency);
    this.maxWaiting = maxWaiting;
  }

  get running(): number { return this.slots.inUse; }
  get waiting(): number { return this.slots.waiting; }

  /** verifyPassword within the bound; throws PasswordGateBusyError when the queue is full. */
  async verify(password: string, stored: string): Promise<boolean> {
    if (this.slots.waiting >= this.maxWaiting) throw new PasswordGateBusyError();
    const release = await this.slots.acquire();
    try {
      return await verifyPassword(password, stored);
    } finally {
      release();
    }
  }
}
