// A loopback OAuth 2.0 identity provider for smarthost tests: HTTPS with the test CA, one
// token endpoint (/token) serving the three grants the relay uses, each checked the way the
// real platforms check them:
//  - client_credentials (Microsoft): client secret, or a client assertion JWT verified
//    against the registered certificate (RS256, x5t thumbprint, aud = this endpoint);
//  - urn:ietf:params:oauth:grant-type:jwt-bearer (Google service accounts): the assertion is
//    verified with the service account's public key; the token is bound to its `sub`;
//  - refresh_token: client id/secret and a refresh token that can be revoked.
// Tokens expire after `expiresIn` seconds; `check()` is what a smarthost asks.
import https from 'node:https';
import { X509Certificate, createHash, createPublicKey, randomBytes, verify, type KeyObject } from 'node:crypto';
import type { AddressInfo, Socket } from 'node:net';
import { testCert } from './certs.ts';

export interface IdpOptions {
  host?: string;
  expiresIn?: number;
  clients?: Record<string, { secret?: string; certificatePem?: string }>;
  serviceAccounts?: Record<string, { publicKeyPem: string }>;
  refreshTokens?: Record<string, { clientId: string; clientSecret?: string; user: string }>;
}

interface Issued { user?: string | undefined; client: string; expiresAt: number; grant: string }

export interface IdentityProvider {
  url: string;            // the token endpoint
  caFile: string;
  requests: Array<{ grant: string; ok: boolean; user?: string | undefined }>;
  expiresIn: number;
  /** 'ok' | 'expired' | 'unknown' (never issued, or bound to another user). */
  check(token: string, user: string): 'ok' | 'expired' | 'unknown';
  /** Makes every token issued so far expired (as if their lifetime ran out at the smarthost). */
  expireAll(): void;
  revokeRefreshToken(token: string): void;
  addRefreshToken(token: string, entry: { clientId: string; clientSecret?: string; user: string }): void;
  /** While down, connections are reset before any answer. */
  setDown(down: boolean): void;
  close(): Promise<void>;
}

function b64json(part: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
}

function verifyJwt(jwt: string, key: KeyObject): { header: Record<string, unknown>; claims: Record<string, unknown> } | undefined {
  const parts = jwt.split('.');
  if (parts.length !== 3) return undefined;
  const header = b64json(parts[0]!);
  if (header.alg !== 'RS256') return undefined;
  const ok = verify('sha256', Buffer.from(`${parts[0]}.${parts[1]}`), key, Buffer.from(parts[2]!, 'base64url'));
  return ok ? { header, claims: b64json(parts[1]!) } : undefined;
}

export async function startIdentityProvider(opts: IdpOptions = {}): Promise<IdentityProvider> {
  const host = opts.host ?? '127.0.0.1';
  const cert = testCert();
  const issued = new Map<string, Issued>();
  const refresh = new Map(Object.entries(opts.refreshTokens ?? {}));
  const revoked = new Set<string>();
  const requests: IdentityProvider['requests'] = [];
  const sockets = new Set<Socket>();
  let down = false;
  let url = '';

  const state = { expiresIn: opts.expiresIn ?? 3600 };
  const issue = (grant: string, client: string, user?: string) => {
    const token = `at-${randomBytes(18).toString('base64url')}`;
    issued.set(token, { user, client, grant, expiresAt: Date.now() + state.expiresIn * 1000 });
    requests.push({ grant, ok: true, user });
    return { access_token: token, token_type: 'Bearer', expires_in: state.expiresIn };
  };
  const refuse = (grant: string, error: string, description: string) => {
    requests.push({ grant, ok: false });
    return { status: 400, body: { error, error_description: description } };
  };

  const handle = (form: URLSearchParams): { status: number; body: object } => {
    const grant = form.get('grant_type') ?? '';
    if (grant === 'client_credentials') {
      const clientId = form.get('client_id') ?? '';
      const client = opts.clients?.[clientId];
      if (!client) return refuse(grant, 'unauthorized_client', `AADSTS700016: Application with identifier '${clientId}' was not found in the directory.`);
      if (form.get('scope') !== 'https://outlook.office365.com/.default') return refuse(grant, 'invalid_scope', `AADSTS70011: The provided value for scope ${form.get('scope')} is not valid.`);
      if (form.has('client_secret')) {
        if (form.get('client_secret') !== client.secret) return refuse(grant, 'invalid_client', 'AADSTS7000215: Invalid client secret provided.');
      } else {
        if (!client.certificatePem || form.get('client_assertion_type') !== 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer') {
          return refuse(grant, 'invalid_client', 'AADSTS7000216: client_assertion or client_secret is required.');
        }
        const x509 = new X509Certificate(client.certificatePem);
        const jwt = verifyJwt(form.get('client_assertion') ?? '', x509.publicKey);
        const thumb = createHash('sha1').update(x509.raw).digest('base64url');
        const now = Date.now() / 1000;
        if (!jwt || jwt.header.x5t !== thumb || jwt.claims.aud !== url || jwt.claims.iss !== clientId || jwt.claims.sub !== clientId
          || Number(jwt.claims.exp) < now || Number(jwt.claims.nbf) > now + 60) {
          return refuse(grant, 'invalid_client', 'AADSTS700027: Client assertion contains an invalid signature.');
        }
      }
      return { status: 200, body: issue(grant, clientId) };
    }
    if (grant === 'urn:ietf:params:oauth:grant-type:jwt-bearer') {
      const assertion = form.get('assertion') ?? '';
      const iss = String(b64json(assertion.split('.')[1] ?? '').iss ?? '');
      const account = opts.serviceAccounts?.[iss];
      if (!account) return refuse(grant, 'invalid_grant', 'Invalid JWT Signature.');
      const jwt = verifyJwt(assertion, createPublicKey(account.publicKeyPem));
      if (!jwt || jwt.claims.aud !== url || jwt.claims.scope !== 'https://mail.google.com/' || typeof jwt.claims.sub !== 'string') {
        return refuse(grant, 'invalid_grant', 'Invalid JWT Signature.');
      }
      if (!String(jwt.claims.sub).endsWith('@example.test')) return refuse(grant, 'unauthorized_client', 'Client is unauthorized to retrieve access tokens using this method, or client not authorized for any of the scopes requested.');
      return { status: 200, body: issue(grant, iss, String(jwt.claims.sub)) };
    }
    if (grant === 'refresh_token') {
      const token = form.get('refresh_token') ?? '';
      const entry = refresh.get(token);
      if (!entry || entry.clientId !== form.get('client_id') || (entry.clientSecret ?? '') !== (form.get('client_secret') ?? '')) {
        return refuse(grant, 'invalid_client', 'The OAuth client was not found.');
      }
      if (revoked.has(token)) return refuse(grant, 'invalid_grant', 'Token has been expired or revoked.');
      return { status: 200, body: issue(grant, entry.clientId, entry.user) };
    }
    return refuse(grant, 'unsupported_grant_type', `grant_type ${grant} is not supported`);
  };

  const server = https.createServer({ key: cert.key, cert: cert.cert }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const path = (req.url ?? '').split('?')[0];
      const reply = req.method === 'POST' && path === '/token'
        ? handle(new URLSearchParams(Buffer.concat(chunks).toString('utf8')))
        : { status: 404, body: { error: 'not_found' } };
      res.writeHead(reply.status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(reply.body));
    });
  });
  server.on('connection', (s: Socket) => {
    if (down) { s.destroy(); return; }
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  url = `https://${host}:${(server.address() as AddressInfo).port}/token`;

  return {
    url,
    caFile: cert.certPath,
    requests,
    get expiresIn() { return state.expiresIn; },
    set expiresIn(v: number) { state.expiresIn = v; },
    check(token, user) {
      const t = issued.get(token);
      if (!t || (t.user !== undefined && t.user.toLowerCase() !== user.toLowerCase())) return 'unknown';
      return t.expiresAt > Date.now() ? 'ok' : 'expired';
    },
    expireAll() { for (const t of issued.values()) t.expiresAt = 0; },
    revokeRefreshToken(token) { revoked.add(token); },
    addRefreshToken(token, entry) { refresh.set(token, entry); },
    setDown(v) {
      down = v;
      if (v) for (const s of sockets) s.destroy();
    },
    close: () => new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    }),
  };
}

/** A smarthost check for startSink({ xoauth2 }): Gmail-style challenges for bad tokens. */
export function smarthostCheck(idp: IdentityProvider) {
  return (user: string, token: string): Record<string, unknown> | undefined => {
    const r = idp.check(token, user);
    if (r === 'ok') return undefined;
    return { status: r === 'expired' ? '401' : '400', schemes: 'Bearer', scope: 'https://mail.google.com/' };
  };
}
