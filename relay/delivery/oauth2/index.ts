// The relay's OAuth2 credentials, shared by every deliverer (the relay route and per-domain
// smarthosts), so one credential means one token cache whichever route uses it. Credentials
// are keyed by their config and a digest of their secrets: a rotated Secret is a new
// credential (a refused one gets a clean slate), an unchanged one keeps its token on reload.
import { createHash } from 'node:crypto';
import type { Registry } from 'prom-client';
import client from 'prom-client';
import type { Logger } from '../../log.ts';
import { OAuth2Credential, defaultRetry, type CredentialState, type RetryPolicy } from './credential.ts';
import { oauth2AuthHandler, CUSTOM_METHOD } from './sasl.ts';
import type { OAuth2Config } from './schema.ts';
import { tokenSource, type OAuth2Secrets } from './sources.ts';

export { CUSTOM_METHOD } from './sasl.ts';
export type { OAuth2Secrets } from './sources.ts';
export type { CredentialState } from './credential.ts';

/** What a pool needs to log in with OAuth2: the SMTP user and a handler for nodemailer's customAuth. */
export interface OAuth2Login {
  /** Identifies credential+mechanism in pool keys (no secret in it). */
  key: string;
  user: string;
  handler: ReturnType<typeof oauth2AuthHandler>;
}

function metricsOn(registry: Registry) {
  const get = <T>(name: string, make: () => T): T => (registry.getSingleMetric(name) as T | undefined) ?? make();
  return {
    requests: get('mailfleet_oauth2_token_requests_total', () => new client.Counter({
      name: 'mailfleet_oauth2_token_requests_total',
      help: 'Token requests to identity providers, by smarthost and result (ok, refused, unavailable)',
      labelNames: ['smarthost', 'result'], registers: [registry],
    })),
    healthy: get('mailfleet_oauth2_credential_healthy', () => new client.Gauge({
      name: 'mailfleet_oauth2_credential_healthy',
      help: '1 while the smarthost\'s OAuth2 credential works, 0 while the identity provider or the smarthost refuses it (mail is deferred)',
      labelNames: ['smarthost'], registers: [registry],
    })),
  };
}

export interface OAuth2TokensOptions {
  log: Logger;
  registry?: Registry | undefined;
  retry?: Partial<RetryPolicy> | undefined;
}

export class OAuth2Tokens {
  private readonly credentials = new Map<string, { credential: OAuth2Credential; usedAt: number }>();
  private readonly log: Logger;
  private readonly retry: RetryPolicy;
  private readonly metrics: ReturnType<typeof metricsOn> | undefined;

  constructor(opts: OAuth2TokensOptions) {
    this.log = opts.log;
    this.retry = { ...defaultRetry, ...opts.retry };
    this.metrics = opts.registry ? metricsOn(opts.registry) : undefined;
  }

  /** Returns the credential for this config and secrets, creating it (and checking its keys) when new. */
  credential(smarthost: string, cfg: OAuth2Config, secrets: OAuth2Secrets): OAuth2Credential {
    const digest = createHash('sha256').update(JSON.stringify({ smarthost, cfg, secrets })).digest('hex');
    const have = this.credentials.get(digest);
    if (have) {
      have.usedAt = Date.now();
      return have.credential;
    }
    const credential = new OAuth2Credential(digest.slice(0, 16), smarthost, tokenSource(cfg, secrets), {
      log: this.log,
      onRequest: (name, result) => this.metrics?.requests.inc({ smarthost: name, result }),
      onState: (s) => this.metrics?.healthy.set({ smarthost: s.smarthost }, s.healthy ? 1 : 0),
    }, this.retry);
    this.metrics?.healthy.set({ smarthost }, 1);
    this.credentials.set(digest, { credential, usedAt: Date.now() });
    this.forgetOld();
    return credential;
  }

  /** The login a pool target carries for this smarthost. */
  login(credential: OAuth2Credential, cfg: OAuth2Config, user: string, remote: string): OAuth2Login {
    return {
      key: `${credential.id}:${cfg.mechanism}`,
      user,
      handler: oauth2AuthHandler({ credential, mechanism: cfg.mechanism, log: this.log, remote }),
    };
  }

  /** Every credential's state (the newest per smarthost), for /status and the operator. */
  states(): CredentialState[] {
    const latest = new Map<string, { s: CredentialState; usedAt: number }>();
    for (const { credential, usedAt } of this.credentials.values()) {
      const prev = latest.get(credential.smarthost);
      if (!prev || usedAt >= prev.usedAt) latest.set(credential.smarthost, { s: credential.state, usedAt });
    }
    return [...latest.values()].map((v) => v.s);
  }

  // Reloads with rotated secrets leave old credentials behind; a bounded map forgets them.
  private forgetOld(): void {
    const MAX = 200;
    if (this.credentials.size <= MAX) return;
    const oldest = [...this.credentials.entries()].sort((a, b) => a[1].usedAt - b[1].usedAt).slice(0, this.credentials.size - MAX);
    for (const [k] of oldest) this.credentials.delete(k);
  }
}
