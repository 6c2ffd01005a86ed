// One OAuth2 credential (a token source with its secrets): caches tokens per user, renews
// them before they expire, asks the provider at most once at a time, and after a failure
// answers from memory for a while instead of asking again for every message. It is the
// single place that knows whether the credential works, for logs, metrics and status.
import type { Logger } from '../../log.ts';
import { TokenError, type TokenSource } from './sources.ts';

export interface CachedToken {
  accessToken: string;
  expiresAt: number;   // epoch ms, 0 = unknown
  obtainedAt: number;
}

export interface RetryPolicy {
  /** First wait after an unavailable provider; doubles per failure up to unavailableMaxMs. */
  unavailableMs: number;
  unavailableMaxMs: number;
  /** Wait after a refusal (revoked refresh token, wrong secret): the same secret gets the same answer. */
  refusedMs: number;
  /** A token younger than this that the smarthost refuses is not renewed (renewing would not help). */
  freshMs: number;
}

export const defaultRetry: RetryPolicy = { unavailableMs: 5_000, unavailableMaxMs: 300_000, refusedMs: 300_000, freshMs: 30_000 };

/** What the operator, /status and alerts see; texts carry the provider's words, never a secret. */
export interface CredentialState {
  smarthost: string;
  source: TokenSource['kind'];
  endpoint: string;
  healthy: boolean;
  /** 'token' when the identity provider failed, 'smarthost' when the smarthost refused a fresh token. */
  failing?: 'token' | 'smarthost' | undefined;
  error?: string | undefined;
  since: number;
}

export interface CredentialHooks {
  log: Logger;
  /** Called with every token request's result and every state change. */
  onRequest?(smarthost: string, result: 'ok' | 'refused' | 'unavailable'): void;
  onState?(state: CredentialState): void;
  now?(): number;
}

interface Failure { error: TokenError; until: number; attempts: number }

// Renew when less than this share of the lifetime (at most 5 minutes) is left, so a token
// never expires between being handed out and the smarthost checking it.
function renewAt(t: CachedToken): number {
  if (!t.expiresAt) return Infinity;
  const lifetime = t.expiresAt - t.obtainedAt;
  return t.expiresAt - Math.min(300_000, Math.max(0, lifetime) / 5);
}

export class OAuth2Credential {
  /** Names config+secrets (a digest prefix), for pool keys; not a secret. */
  readonly id: string;
  readonly smarthost: string;
  private readonly source: TokenSource;
  private readonly retry: RetryPolicy;
  private readonly hooks: CredentialHooks;
  private readonly tokens = new Map<string, CachedToken>();
  private readonly pending = new Map<string, Promise<CachedToken>>();
  private readonly failures = new Map<string, Failure>();
  /** Users whose fresh token the smarthost refused, until when no renewal is tried on a refusal. */
  private readonly rejected = new Map<string, number>();
  private current: CredentialState;

  constructor(id: string, smarthost: string, source: TokenSource, hooks: CredentialHooks, retry: RetryPolicy = defaultRetry) {
    this.id = id;
    this.smarthost = smarthost;
    this.source = source;
    this.hooks = hooks;
    this.retry = retry;
    this.current = { smarthost, source: source.kind, endpoint: source.endpoint, healthy: true, since: this.now() };
  }

  get state(): CredentialState { return this.current; }

  private now(): number { return this.hooks.now?.() ?? Date.now(); }

  private keyOf(user: string): string { return this.source.perUser ? user.toLowerCase() : ''; }

  /**
   * A token for `user`: the cached one while it is valid, else a new one. `renew` forces a
   * new one (the smarthost refused the cached token). Throws a TokenError, from memory while
   * the last failure's wait runs.
   */
  async token(user: string, renew = false): Promise<CachedToken> {
    const key = this.keyOf(user);
    const now = this.now();
    const cached = this.tokens.get(key);
    if (cached && !renew && now < renewAt(cached)) return cached;
    const failure = this.failures.get(key);
    if (failure && now < failure.until) throw failure.error;
    let p = this.pending.get(key);
    if (!p) {
      p = this.request(key, user).finally(() => this.pending.delete(key));
      this.pending.set(key, p);
    }
    return p;
  }

  private async request(key: string, user: string): Promise<CachedToken> {
    try {
      const grant = await this.source.fetch(user);
      const token = { accessToken: grant.accessToken, expiresAt: grant.expiresAt, obtainedAt: this.now() };
      this.tokens.set(key, token);
      this.failures.delete(key);
      this.hooks.onRequest?.(this.smarthost, 'ok');
      this.hooks.log.debug({ smarthost: this.smarthost, user, endpoint: this.source.endpoint, expiresInS: grant.expiresAt ? Math.round((grant.expiresAt - token.obtainedAt) / 1000) : undefined }, 'OAuth2 token obtained');
      if (this.current.failing === 'token') this.setState({ healthy: true });
      return token;
    } catch (err) {
      const error = err instanceof TokenError ? err : new TokenError('unavailable', `${this.source.endpoint}: ${(err as Error).message}`);
      const attempts = (this.failures.get(key)?.attempts ?? 0) + 1;
      const wait = error.kind === 'refused'
        ? this.retry.refusedMs
        : Math.min(this.retry.unavailableMaxMs, this.retry.unavailableMs * 2 ** Math.min(attempts - 1, 20));
      this.failures.set(key, { error, until: this.now() + wait, attempts });
      // a refused credential's cached token is worthless too (revoked consent, deleted app)
      if (error.kind === 'refused') this.tokens.delete(key);
      this.hooks.onRequest?.(this.smarthost, error.kind);
      this.hooks.log.error({ smarthost: this.smarthost, user, endpoint: this.source.endpoint, kind: error.kind, error: error.message, retryInS: Math.round(wait / 1000) },
        error.kind === 'refused' ? 'identity provider refused the OAuth2 credential; mail is deferred until the Secret is fixed' : 'identity provider unavailable; mail is deferred');
      this.setState({ healthy: false, failing: 'token', error: error.message });
      throw error;
    }
  }

  /**
   * The smarthost refused `token` for `user`. Returns whether one renewal is worth trying:
   * only for a token from the cache (it may have expired or been revoked there), and not
   * again soon after a fresh token was refused too.
   */
  shouldRenewAfterRefusal(user: string, token: CachedToken): boolean {
    const now = this.now();
    const key = this.keyOf(user);
    if ((this.rejected.get(key) ?? 0) > now) return false;
    return now - token.obtainedAt >= this.retry.freshMs;
  }

  /** The smarthost refused a token it should have taken; the text is the smarthost's. */
  refusedBySmarthost(user: string, text: string): void {
    this.rejected.set(this.keyOf(user), this.now() + this.retry.refusedMs);
    this.setState({ healthy: false, failing: 'smarthost', error: text });
  }

  authenticated(user: string): void {
    this.rejected.delete(this.keyOf(user));
    if (!this.current.healthy) this.setState({ healthy: true });
  }

  private setState(s: Pick<CredentialState, 'healthy'> & Partial<CredentialState>): void {
    const next: CredentialState = {
      smarthost: this.smarthost, source: this.source.kind, endpoint: this.source.endpoint,
      healthy: s.healthy, failing: s.healthy ? undefined : s.failing, error: s.healthy ? undefined : s.error,
      since: this.current.healthy === s.healthy && this.current.error === s.error ? this.current.since : this.now(),
    };
    const changed = next.healthy !== this.current.healthy || next.error !== this.current.error;
    this.current = next;
    if (changed) {
      if (next.healthy) this.hooks.log.info({ smarthost: this.smarthost, endpoint: this.source.endpoint }, 'OAuth2 credential works again');
      this.hooks.onState?.(next);
    }
  }
}
