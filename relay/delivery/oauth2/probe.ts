// One token request to check that an OAuth2 credential works, for whoever holds the secrets
// but does not send mail (the operator, to put the identity provider's answer into a status
// condition). Results are cached per credential so a reconcile loop asks the provider at most
// once per `okTtlMs` while it works and once per `failedTtlMs` while it does not.
import { createHash } from 'node:crypto';
import type { OAuth2Config } from './schema.ts';
import { TokenError, tokenSource, type OAuth2Secrets } from './sources.ts';

export interface ProbeResult {
  ok: boolean;
  /** 'invalid': the secret material itself is unusable (bad key, bad JSON). */
  kind?: 'refused' | 'unavailable' | 'invalid' | undefined;
  /** The provider's words (or why the key is unusable); never a secret. */
  message: string;
  checkedAt: number;
}

export async function probeOAuth2(cfg: OAuth2Config, secrets: OAuth2Secrets, user: string, now = Date.now): Promise<ProbeResult> {
  let source;
  try {
    source = tokenSource(cfg, secrets);
  } catch (err) {
    return { ok: false, kind: 'invalid', message: (err as Error).message, checkedAt: now() };
  }
  try {
    await source.fetch(user);
    return { ok: true, message: `${source.endpoint} issued a token for ${user}`, checkedAt: now() };
  } catch (err) {
    const e = err instanceof TokenError ? err : new TokenError('unavailable', (err as Error).message);
    return { ok: false, kind: e.kind, message: e.message, checkedAt: now() };
  }
}

export interface ProbeCacheOptions {
  okTtlMs?: number;
  failedTtlMs?: number;
  now?: () => number;
  probe?: typeof probeOAuth2;
}

export class OAuth2ProbeCache {
  private readonly results = new Map<string, ProbeResult>();
  private readonly pending = new Map<string, Promise<ProbeResult>>();
  private readonly okTtlMs: number;
  private readonly failedTtlMs: number;
  private readonly now: () => number;
  private readonly probe: typeof probeOAuth2;

  constructor(opts: ProbeCacheOptions = {}) {
    this.okTtlMs = opts.okTtlMs ?? 3_600_000;
    this.failedTtlMs = opts.failedTtlMs ?? 300_000;
    this.now = opts.now ?? Date.now;
    this.probe = opts.probe ?? probeOAuth2;
  }

  async check(cfg: OAuth2Config, secrets: OAuth2Secrets, user: string): Promise<ProbeResult> {
    const key = createHash('sha256').update(JSON.stringify({ cfg, secrets, user })).digest('hex');
    const have = this.results.get(key);
    if (have && this.now() - have.checkedAt < (have.ok ? this.okTtlMs : this.failedTtlMs)) return have;
    let p = this.pending.get(key);
    if (!p) {
      p = this.probe(cfg, secrets, user, this.now).then((r) => {
        this.results.set(key, r);
        if (this.results.size > 1000) this.results.delete(this.results.keys().next().value!);
        return r;
      }).finally(() => this.pending.delete(key));
      this.pending.set(key, p);
    }
    return p;
  }
}
