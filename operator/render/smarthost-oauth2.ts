// A smarthost's `oauth2` (CRD) → the relay's `auth.oauth2` with *File paths, the values those
// files hold (for the relay's Secret), and what the controller needs to ask the identity
// provider whether the credential works (for the SmarthostAuthenticated condition). Pure.
import { OAUTH2_SECRET_KEYS, type smarthostOAuth2 } from '../api/common.ts';
import { oauth2Schema, type OAuth2Config } from '../../relay/delivery/oauth2/schema.ts';
import { tokenSource, type OAuth2Secrets } from '../../relay/delivery/oauth2/sources.ts';
import type { ProbeResult } from '../../relay/delivery/oauth2/probe.ts';
import { condition, type ConditionInput } from './conditions.ts';
import type { z } from 'zod';
import { formatIssues } from '../../relay/util/zod-issues.ts';

export type SmarthostOAuth2Spec = z.output<typeof smarthostOAuth2>;

/** Reads user Secrets: `required` records an error naming the Secret and key when absent. */
export interface SecretReader {
  read(name: string, key: string, what: string): string | undefined;
  optional(name: string, key: string): string | undefined;
  put(file: string, value: string): string;
  /** Problems found so far; a key that cannot be used is one (the relay would refuse it too). */
  readonly errors: string[];
}

/** One credential the controller can check with a token request. */
export interface OAuth2Check {
  /** Where it is configured, for the condition message, e.g. `delivery.smarthosts[0] (m365)`. */
  what: string;
  config: OAuth2Config;
  secrets: OAuth2Secrets;
  user: string;
}

export interface RenderedOAuth2 {
  auth: { user: string; oauth2: z.input<typeof oauth2Schema> };
  check: OAuth2Check;
}

/**
 * `filePrefix` names this smarthost's files in the relay's Secret (e.g. `smarthost-0`).
 * Returns undefined when a required Secret key is missing (the reader has the error).
 */
export function renderSmarthostOAuth2(o: SmarthostOAuth2Spec, secrets: SecretReader, filePrefix: string, what: string): RenderedOAuth2 | undefined {
  const name = o.secretRef.name;
  const need = (key: string) => secrets.read(name, key, `${what} oauth2`);
  const values: OAuth2Secrets = {};
  const files: Record<string, string> = {};
  const take = (field: keyof OAuth2Secrets, key: string, value: string | undefined) => {
    if (value === undefined) return;
    values[field] = value;
    files[field] = secrets.put(`${filePrefix}.${key}`, value);
  };
  const out: z.input<typeof oauth2Schema> = { mechanism: o.mechanism, userFromSender: o.userFromSender };
  let complete = true;
  const required = (field: keyof OAuth2Secrets, key: string) => {
    const v = need(key);
    if (v === undefined) complete = false;
    take(field, key, v);
  };
  if (o.microsoft) {
    const m = o.microsoft;
    if (m.credential === 'certificate') {
      required('certificate', OAUTH2_SECRET_KEYS.certificate);
      required('privateKey', OAUTH2_SECRET_KEYS.privateKey);
    } else {
      required('clientSecret', OAUTH2_SECRET_KEYS.clientSecret);
    }
    out.microsoft = {
      tenantId: m.tenantId, clientId: m.clientId, scope: m.scope,
      ...(m.tokenUrl ? { tokenUrl: m.tokenUrl } : {}),
      ...(files.clientSecret ? { clientSecretFile: files.clientSecret } : {}),
      ...(files.certificate ? { certificateFile: files.certificate } : {}),
      ...(files.privateKey ? { privateKeyFile: files.privateKey } : {}),
    };
  } else if (o.google) {
    required('serviceAccountKey', OAUTH2_SECRET_KEYS.serviceAccountKey);
    out.google = {
      scope: o.google.scope, serviceAccountKeyFile: files.serviceAccountKey ?? '',
      ...(o.google.tokenUrl ? { tokenUrl: o.google.tokenUrl } : {}),
    };
  } else if (o.refreshToken) {
    required('refreshToken', OAUTH2_SECRET_KEYS.refreshToken);
    // a public OAuth client has no secret
    take('clientSecret', OAUTH2_SECRET_KEYS.clientSecret, secrets.optional(name, OAUTH2_SECRET_KEYS.clientSecret));
    out.refreshToken = {
      clientId: o.refreshToken.clientId, refreshTokenFile: files.refreshToken ?? '',
      ...(o.refreshToken.tokenUrl ? { tokenUrl: o.refreshToken.tokenUrl } : {}),
      ...(o.refreshToken.scope ? { scope: o.refreshToken.scope } : {}),
      ...(files.clientSecret ? { clientSecretFile: files.clientSecret } : {}),
    };
  }
  if (!complete) return undefined;
  // the CRD restates the relay's rules; should they ever differ, this is a config error, not a crash
  const parsed = oauth2Schema.safeParse(out);
  if (!parsed.success) {
    secrets.errors.push(...formatIssues(parsed.error, `${what} oauth2 `));
    return undefined;
  }
  const config = parsed.data;
  try {
    tokenSource(config, values); // parses the certificate, key or service account JSON
  } catch (err) {
    secrets.errors.push(`${what} oauth2: Secret ${name}: ${(err as Error).message}`);
    return undefined;
  }
  return { auth: { user: o.user, oauth2: out }, check: { what, config, secrets: values, user: o.user } };
}

/** The identity provider's answer for one check, as the controller got it. */
export interface OAuth2CheckResult {
  what: string;
  result: ProbeResult;
}

const REASONS: Record<NonNullable<ProbeResult['kind']>, string> = {
  refused: 'TokenRefused',
  unavailable: 'TokenEndpointUnavailable',
  invalid: 'CredentialUnusable',
};

/**
 * Condition SmarthostAuthenticated: True when every OAuth2 smarthost credential got a token,
 * else False with the identity provider's words for each failing one (no secrets: the texts
 * are the provider's error codes and descriptions). None when no smarthost uses oauth2.
 */
export function smarthostAuthCondition(results: OAuth2CheckResult[]): ConditionInput | undefined {
  if (!results.length) return undefined;
  const failed = results.filter((r) => !r.result.ok);
  if (!failed.length) return condition('SmarthostAuthenticated', true, 'TokenIssued', `the identity provider issued a token for ${results.map((r) => r.what).join(', ')}`);
  const first = failed[0]!.result.kind ?? 'unavailable';
  return condition('SmarthostAuthenticated', false, REASONS[first],
    `${failed.map((f) => `${f.what}: ${f.result.message}`).join('; ')} (mail for these smarthosts is deferred, not bounced)`.slice(0, 4000));
}

/**
 * The check for one oauth2 block straight from its Secret's data (undefined: not found),
 * for a controller that does not render a relay config (the SenderDomain's). An unreadable
 * or unusable Secret is a failed check.
 */
export function oauth2CheckFromSecret(o: SmarthostOAuth2Spec, data: Record<string, string> | undefined, what: string): OAuth2Check | OAuth2CheckResult {
  const errors: string[] = [];
  const reader: SecretReader = {
    errors,
    read: (name, key, w) => {
      const v = data?.[key];
      if (v === undefined) errors.push(`${w}: Secret ${name} ${data ? `has no key ${key}` : 'not found'}`);
      return v;
    },
    optional: (_name, key) => data?.[key],
    put: (file) => file,
  };
  const r = renderSmarthostOAuth2(o, reader, 'check', what);
  return r ? r.check : { what, result: { ok: false, kind: 'invalid', message: errors.join('; '), checkedAt: Date.now() } };
}
