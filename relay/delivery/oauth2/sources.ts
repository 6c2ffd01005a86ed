// Token sources: one request to an identity provider's token endpoint per call, no caching
// (that is credential.ts's job). nodemailer's XOAuth2 runs the refresh-token and the Google
// service-account (JWT bearer) grants, including the RS256 signature, and does the HTTPS
// POST; the Microsoft client credentials grant is not one of its flows, so its form is
// built here and sent through the same XOAuth2.postRequest.
import { X509Certificate, createHash, createPrivateKey, randomUUID, sign } from 'node:crypto';
import XOAuth2 from 'nodemailer/lib/xoauth2';
import type { OAuth2Config } from './schema.ts';
import { GOOGLE_TOKEN_URL, microsoftTokenUrl } from './schema.ts';

/** Secret material an oauth2 block references, already read from its files. */
export interface OAuth2Secrets {
  clientSecret?: string | undefined;
  certificate?: string | undefined;
  privateKey?: string | undefined;
  serviceAccountKey?: string | undefined;
  refreshToken?: string | undefined;
  ca?: string | undefined;
}

export interface Grant {
  accessToken: string;
  /** Epoch ms; 0 when the provider did not say. */
  expiresAt: number;
}

/**
 * 'refused': the provider answered with an OAuth error (invalid_grant, invalid_client, ...):
 * asking again with the same secret gives the same answer. 'unavailable': no usable answer
 * (network, timeout, 5xx, temporarily_unavailable); asking again later may work.
 */
export class TokenError extends Error {
  readonly kind: 'refused' | 'unavailable';
  constructor(kind: 'refused' | 'unavailable', message: string) {
    super(message);
    this.name = 'TokenError';
    this.kind = kind;
  }
}

export interface TokenSource {
  readonly kind: 'microsoft' | 'google' | 'refreshToken';
  readonly endpoint: string;
  /** Tokens differ per SMTP user (Google: the user is the delegation subject). */
  readonly perUser: boolean;
  fetch(user: string): Promise<Grant>;
}

const REQUEST_TIMEOUT_MS = 30_000;
// RFC 6749 §5.2 errors that a retry with the same credential cannot fix
const TRANSIENT_OAUTH_ERRORS = new Set(['temporarily_unavailable', 'server_error']);

/** Maps what XOAuth2 (or our own parse) reports to a TokenError; no secret is in these texts. */
function classify(endpoint: string, err: Error & { code?: string }): TokenError {
  if (err instanceof TokenError) return err;
  if (err.code === 'EOAUTH2') {
    const code = /^([a-z_]+)\b/.exec(err.message)?.[1] ?? '';
    // 'No access token' / 'Invalid authentication response' are malformed answers, not refusals
    const oauthError = /^[a-z]+(_[a-z]+)+$|^invalid_\w+$/.test(code) && !TRANSIENT_OAUTH_ERRORS.has(code);
    return new TokenError(oauthError ? 'refused' : 'unavailable', `${endpoint}: ${oneLine(err.message)}`);
  }
  if (err instanceof SyntaxError) return new TokenError('unavailable', `${endpoint}: the answer is not JSON (the endpoint is down or not a token endpoint)`);
  return new TokenError('unavailable', `${endpoint}: ${oneLine(err.message)}`);
}

function oneLine(s: string): string {
  return s.replace(/\s+/g, ' ').slice(0, 400);
}

function tlsOptions(secrets: OAuth2Secrets): { ca: string } | undefined {
  return secrets.ca ? { ca: secrets.ca } : undefined;
}

function runXOAuth2(xo: XOAuth2, endpoint: string): Promise<Grant> {
  return new Promise((resolve, reject) => {
    xo.generateToken((err, accessToken) => {
      if (err) return reject(classify(endpoint, err));
      resolve({ accessToken, expiresAt: xo.expires || 0 });
    });
  });
}

function base64url(data: Buffer | string): string {
  return Buffer.from(data).toString('base64url');
}

/**
 * The client assertion of the Microsoft identity platform's certificate credential: an RS256
 * JWT naming the certificate by its SHA-1 thumbprint (x5t), audience = the token endpoint.
 */
export function clientAssertion(clientId: string, endpoint: string, certificatePem: string, privateKeyPem: string, now = Date.now()): string {
  const der = new X509Certificate(certificatePem).raw;
  const header = { alg: 'RS256', typ: 'JWT', x5t: base64url(createHash('sha1').update(der).digest()) };
  const iat = Math.floor(now / 1000);
  const claims = { aud: endpoint, iss: clientId, sub: clientId, jti: randomUUID(), nbf: iat, iat, exp: iat + 600 };
  const input = `${base64url(JSON.stringify(header))}.${base64url(JSON.stringify(claims))}`;
  return `${input}.${base64url(sign('sha256', Buffer.from(input), createPrivateKey(privateKeyPem)))}`;
}

/** Reads a token endpoint's JSON answer the way XOAuth2 does (RFC 6749 §5.1/§5.2). */
export function parseTokenAnswer(endpoint: string, body: Buffer, now = Date.now()): Grant {
  let data: { access_token?: unknown; expires_in?: unknown; error?: unknown; error_description?: unknown };
  try {
    data = JSON.parse(body.toString('utf8'));
  } catch {
    throw new TokenError('unavailable', `${endpoint}: the answer is not JSON (the endpoint is down or not a token endpoint)`);
  }
  if (data && typeof data.error === 'string') {
    const text = `${data.error}${typeof data.error_description === 'string' ? `: ${data.error_description}` : ''}`;
    throw new TokenError(TRANSIENT_OAUTH_ERRORS.has(data.error) ? 'unavailable' : 'refused', `${endpoint}: ${oneLine(text)}`);
  }
  if (!data || typeof data.access_token !== 'string' || !data.access_token) {
    throw new TokenError('unavailable', `${endpoint}: the answer has no access_token`);
  }
  const ttl = Number(data.expires_in);
  return { accessToken: data.access_token, expiresAt: Number.isFinite(ttl) && ttl > 0 ? now + ttl * 1000 : 0 };
}

function microsoftSource(m: NonNullable<OAuth2Config['microsoft']>, secrets: OAuth2Secrets): TokenSource {
  const endpoint = m.tokenUrl ?? microsoftTokenUrl(m.tenantId);
  // for postRequest only: its options carry the TLS settings and the request timeout
  const transport = new XOAuth2({ accessUrl: endpoint, requestTimeout: REQUEST_TIMEOUT_MS, ...(secrets.ca ? { tls: tlsOptions(secrets) } : {}) }, false);
  if (m.certificateFile) {
    // fail at config load, not at the first delivery
    new X509Certificate(secrets.certificate ?? '');
    createPrivateKey(secrets.privateKey ?? '');
  }
  return {
    kind: 'microsoft', endpoint, perUser: false,
    fetch: () => new Promise((resolve, reject) => {
      const form: Record<string, string> = { client_id: m.clientId, scope: m.scope, grant_type: 'client_credentials' };
      if (secrets.clientSecret !== undefined) form.client_secret = secrets.clientSecret;
      else {
        form.client_assertion_type = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
        form.client_assertion = clientAssertion(m.clientId, endpoint, secrets.certificate!, secrets.privateKey!);
      }
      transport.postRequest(endpoint, form, transport.options, (err, body) => {
        if (err) return reject(classify(endpoint, err));
        try {
          resolve(parseTokenAnswer(endpoint, body ?? Buffer.alloc(0)));
        } catch (e) {
          reject(e as Error);
        }
      });
    }),
  };
}

interface ServiceAccountKey { client_email: string; private_key: string; token_uri?: string }

export function parseServiceAccountKey(text: string): ServiceAccountKey {
  let key: Partial<ServiceAccountKey>;
  try {
    key = JSON.parse(text);
  } catch {
    throw new Error('the service account key is not JSON (download a JSON key for the service account)');
  }
  if (typeof key.client_email !== 'string' || typeof key.private_key !== 'string') {
    throw new Error('the service account key has no client_email or private_key');
  }
  createPrivateKey(key.private_key); // a mangled key fails here, with no key material in the message
  return { client_email: key.client_email, private_key: key.private_key, ...(typeof key.token_uri === 'string' ? { token_uri: key.token_uri } : {}) };
}

function googleSource(g: NonNullable<OAuth2Config['google']>, secrets: OAuth2Secrets): TokenSource {
  const key = parseServiceAccountKey(secrets.serviceAccountKey ?? '');
  const endpoint = g.tokenUrl ?? key.token_uri ?? GOOGLE_TOKEN_URL;
  return {
    kind: 'google', endpoint, perUser: true,
    fetch: (user) => runXOAuth2(new XOAuth2({
      user, serviceClient: key.client_email, privateKey: key.private_key, scope: g.scope,
      accessUrl: endpoint, requestTimeout: REQUEST_TIMEOUT_MS, ...(secrets.ca ? { tls: tlsOptions(secrets) } : {}),
    }, false), endpoint),
  };
}

function refreshSource(r: NonNullable<OAuth2Config['refreshToken']>, secrets: OAuth2Secrets): TokenSource {
  const endpoint = r.tokenUrl;
  return {
    kind: 'refreshToken', endpoint, perUser: false,
    fetch: (user) => runXOAuth2(new XOAuth2({
      user, clientId: r.clientId, clientSecret: secrets.clientSecret ?? '', refreshToken: secrets.refreshToken ?? '',
      accessUrl: endpoint, requestTimeout: REQUEST_TIMEOUT_MS, ...(secrets.ca ? { tls: tlsOptions(secrets) } : {}),
      ...(r.scope ? { customParams: { scope: r.scope } } : {}),
    }, false), endpoint),
  };
}

/** Builds the source; throws (config error) when a key or certificate cannot be used. */
export function tokenSource(cfg: OAuth2Config, secrets: OAuth2Secrets): TokenSource {
  if (cfg.microsoft) return microsoftSource(cfg.microsoft, secrets);
  if (cfg.google) return googleSource(cfg.google, secrets);
  if (cfg.refreshToken) return refreshSource(cfg.refreshToken, secrets);
  throw new Error('oauth2 has no token source');
}
