// Per client address: sessions open at once and new sessions per minute, across every
// listener of the relay. One address holding 1,000 idle connections used to fill
// maxClients for everyone; now it gets 421 4.7.0 past its own share. Addresses are keyed
// like the AUTH throttle's (IPv6 by /64).
import { addressKey } from './auth-throttle.ts';

export type ConnectionRefusal = 'concurrent' | 'rate';

const MAX_TRACKED = 100_000;

export class AddressConnectionLimits {
  private readonly open = new Map<string, number>();
  private readonly recent = new Map<string, { count: number; windowEnd: number }>();
  private readonly held = new Map<string, string>(); // session id -> address key
  private readonly now: () => number;

  constructor(now: () => number = Date.now) {
    this.now = now;
  }

  /** Admits a session (remember to release it) or says which limit refuses it. */
  admit(ip: string, sessionId: string, maxConcurrent: number, perMinute: number): ConnectionRefusal | undefined {
    const key = addressKey(ip);
    const now = this.now();
    let w = this.recent.get(key);
    if (!w || w.windowEnd <= now) {
      if (this.recent.size >= MAX_TRACKED) this.sweep(now);
      w = { count: 0, windowEnd: now + 60_000 };
      this.recent.set(key, w);
    }
    if ((this.open.get(key) ?? 0) >= maxConcurrent) return 'concurrent';
    if (w.count >= perMinute) return 'rate';
    w.count++;
    this.open.set(key, (this.open.get(key) ?? 0) + 1);
    this.held.set(sessionId, key);
    return undefined;
  }

  release(sessionId: string): void {
    const key = this.held.get(sessionId);
    if (key === undefined) return;
    this.held.delete(sessionId);
    const n = (this.open.get(key) ?? 1) - 1;
    if (n <= 0) this.open.delete(key); else this.open.set(key, n);
  }

  openFor(ip: string): number {
    return this.open.get(addressKey(ip)) ?? 0;
  }

  private sweep(now: number): void {
    for (const [k, w] of this.recent) if (w.windowEnd <= now) this.recent.delete(k);
    // Still full of live windows (a spray of addresses): forget the oldest half.
    if (this.recent.size >= MAX_TRACKED) {
      let drop = this.recent.size / 2;
      for (const k of this.recent.keys()) { if (drop-- <= 0) break; this.recent.delete(k); }
    }
  }
}
