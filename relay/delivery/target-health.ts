// Per-target health (a circuit breaker) for outbound delivery. A host that timed out,
// refused the connection or would not start a session is marked down and skipped for a
// backoff (doubling up to a cap); after it, one probe — a connection that greets, EHLOs,
// STARTTLSes and authenticates, but carries no mail — decides whether it is back. So a hung
// host costs one connect/greeting timeout per backoff period, not one per message or per
// pool slot, and the attempts that would have waited for it go to the next target at once.
//
// A target starts either 'up' (MX hosts: the relay meets thousands once, an extra
// connection for each would double the connections) or 'unknown' (smarthosts: a short
// fixed list, probed before first use, so a primary that hangs from the very start does not
// hold the first burst of mail for a greeting timeout).

/** Settings of the breaker, from the delivery config. */
export interface HealthPolicy {
  /** First time a failed target is skipped; doubles with every failed probe. */
  backoffMs: number;
  /** Longest skip. */
  maxBackoffMs: number;
}

export interface HealthTarget {
  /** Identifies the host: host[ip]:port. */
  remote: string;
}

type State =
  | { kind: 'up' }
  | { kind: 'probing'; settled: Promise<void>; failures: number }
  | { kind: 'down'; until: number; failures: number; reason: string; enhanced: string };

export type Choice<T> =
  | { kind: 'use'; target: T; signal: AbortSignal }
  | { kind: 'down'; reason: string; enhanced: string };

interface Entry {
  state: State;
  /** Aborted when the target goes down: attempts still waiting for one of its slots give up. */
  down: AbortController;
  touched: number;
}

/** Entries kept before 'up' ones (the same as no entry for MX hosts) are forgotten. */
const MAX_ENTRIES = 10_000;

export class TargetHealth<T extends HealthTarget> {
  private policy: HealthPolicy;
  private readonly entries = new Map<string, Entry>();
  private readonly probe: (target: T) => Promise<void>;
  private readonly onChange: (remote: string, state: 'up' | 'down', detail: Record<string, unknown>) => void;

  constructor(opts: {
    policy: HealthPolicy;
    /** Resolves when the target took a session; rejects with the reason it did not. */
    probe: (target: T) => Promise<void>;
    onChange?: (remote: string, state: 'up' | 'down', detail: Record<string, unknown>) => void;
  }) {
    this.policy = opts.policy;
    this.probe = opts.probe;
    this.onChange = opts.onChange ?? (() => {});
  }

  setPolicy(policy: HealthPolicy): void {
    this.policy = policy;
  }

  /**
   * The target to try now, in list order: the first one that is up. Targets not known to be
   * up are probed; while their probes run, a later target that is up is used instead, and
   * when none is, the call waits for a probe to settle. When every target is down the
   * answer is 'down' with the last failure, so the caller defers without a connection.
   */
  async choose(targets: T[], initial: 'up' | 'unknown', signal?: AbortSignal): Promise<Choice<T>> {
    // Bounded: every turn waits for a probe to settle, and each target is probed at most
    // once per call (a settled probe leaves the target up or down for a backoff).
    for (let turn = 0; turn <= targets.length + 1; turn++) {
      const probing: Promise<void>[] = [];
      let lastDown: Extract<State, { kind: 'down' }> | undefined;
      for (const target of targets) {
        const entry = this.entry(target.remote, initial);
        let state = entry.state;
        if (state.kind === 'down' && state.until <= Date.now()) state = this.startProbe(target, entry, state.failures);
        if (state.kind === 'up') return { kind: 'use', target, signal: entry.down.signal };
        if (state.kind === 'probing') probing.push(state.settled);
        else lastDown = state;
      }
      if (probing.length === 0) {
        return { kind: 'down', reason: lastDown?.reason ?? 'no destination to try', enhanced: lastDown?.enhanced ?? '4.4.1' };
      }
      if (signal?.aborted) break;
      await untilAborted(signal, Promise.race(probing));
    }
    return { kind: 'down', reason: signal?.aborted ? 'relay is shutting down' : 'no target became available', enhanced: '4.3.2' };
  }

  /** The target answered an SMTP transaction: it is up. */
  succeeded(remote: string): void {
    const entry = this.entries.get(remote);
    if (!entry || entry.state.kind === 'up') return;
    // An answer from a target still being probed settles nothing: the probe decides.
    if (entry.state.kind === 'down') this.markUp(remote, entry);
  }

  /** The target could not be reached or would not start a session: skip it for a while. */
  failed(remote: string, reason: string, enhanced: string): void {
    const entry = this.entries.get(remote) ?? this.entry(remote, 'up');
    // Attempts already on their way when it went down fail too: one failure, one backoff.
    if (entry.state.kind === 'down') return;
    const failures = entry.state.kind === 'probing' ? entry.state.failures : 0;
    this.markDown(remote, entry, failures + 1, reason, enhanced);
  }

  /** For tests and metrics: how a target stands. */
  stateOf(remote: string): 'up' | 'probing' | 'down' | 'unknown' {
    return this.entries.get(remote)?.state.kind ?? 'unknown';
  }

  private entry(remote: string, initial: 'up' | 'unknown'): Entry {
    let entry = this.entries.get(remote);
    if (!entry) {
      if (this.entries.size >= MAX_ENTRIES) {
        for (const [k, e] of this.entries) if (e.state.kind === 'up') this.entries.delete(k);
      }
      entry = { state: { kind: 'up' }, down: new AbortController(), touched: Date.now() };
      this.entries.set(remote, entry);
      // 'unknown' is a probe not started yet; the caller starts it with the target in hand.
      if (initial === 'unknown') entry.state = { kind: 'down', until: 0, failures: 0, reason: 'not probed yet', enhanced: '4.4.1' };
    }
    entry.touched = Date.now();
    return entry;
  }

  private startProbe(target: T, entry: Entry, failures: number): State {
    const settled = this.probe(target).then(
      () => { if (entry.state === state) this.markUp(target.remote, entry); },
      (err: Error & { enhanced?: string }) => {
        if (entry.state === state) this.markDown(target.remote, entry, failures + 1, err.message, err.enhanced ?? '4.4.1');
      },
    );
    const state: State = { kind: 'probing', settled, failures };
    entry.state = state;
    return state;
  }

  private markUp(remote: string, entry: Entry): void {
    const was = entry.state;
    entry.state = { kind: 'up' };
    if (was.kind === 'down' || (was.kind === 'probing' && was.failures > 0)) this.onChange(remote, 'up', {});
  }

  private markDown(remote: string, entry: Entry, failures: number, reason: string, enhanced: string): void {
    const backoffMs = Math.min(this.policy.backoffMs * 2 ** Math.min(failures - 1, 30), this.policy.maxBackoffMs);
    entry.state = { kind: 'down', until: Date.now() + backoffMs, failures, reason, enhanced };
    entry.down.abort(new Error(`${remote} is marked down: ${reason}`));
    entry.down = new AbortController();
    this.onChange(remote, 'down', { reason, failures, backoffMs });
  }
}

/** Waits for `p`, or less when the signal aborts first; leaves no listener behind. */
async function untilAborted(signal: AbortSignal | undefined, p: Promise<unknown>): Promise<void> {
  if (!signal) { await p; return; }
  let onAbort: (() => void) | undefined;
  try {
    await Promise.race([p, new Promise<void>((resolve) => { onAbort = resolve; signal.addEventListener('abort', onAbort, { once: true }); })]);
  } finally {
    signal.removeEventListener('abort', onAbort!);
  }
}
