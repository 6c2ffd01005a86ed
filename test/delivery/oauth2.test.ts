// Smarthost OAuth2 end to end on loopback: a real HTTPS identity provider (test CA) issuing
// tokens by the three grants, and a real smtp-server smarthost that takes XOAUTH2 only with
// a token the provider issued to that user and that has not expired.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import client from 'prom-client';
import { Deliverer } from '../../relay/delivery/deliverer.ts';
import { OAuth2Tokens } from '../../relay/delivery/oauth2/index.ts';
import { OAuth2ProbeCache } from '../../relay/delivery/oauth2/probe.ts';
import { oauth2Schema } from '../../relay/delivery/oauth2/schema.ts';
import type { DeliveryConfigInput } from '../../relay/delivery/schema.ts';
import { testCert } from '../support/certs.ts';
import { eventually } from '../support/eventually.ts';
import { smarthostCheck, startIdentityProvider, type IdentityProvider } from '../support/identity-provider.ts';
import { startSink, type Sink } from '../support/sink.ts';
import { config, makeJob, tempDir } from './helpers.ts';
import { loopbackSinks } from '../support/outbound.ts';

const tmp = tempDir();
const app = testCert(['mailfleet-test-app']);          // the app registration's certificate
const serviceKey = testCert(['mailfleet-test-sa']);    // the service account's key pair
const secret = 'cs~Very-Secret-Client-Value';
const refreshToken = '1//refresh-token-for-ops';
let idp: IdentityProvider;
let smarthost: Sink;

function file(name: string, content: string): string {
  const p = join(tmp.dir, name);
  writeFileSync(p, content);
  return p;
}

beforeAll(async () => {
  idp = await startIdentityProvider({
    clients: { 'app-1': { secret, certificatePem: app.cert } },
    serviceAccounts: { 'relay@project.iam.gserviceaccount.com': { publicKeyPem: serviceKey.cert } },
    refreshTokens: { [refreshToken]: { clientId: 'web-1', clientSecret: 'web-secret', user: 'ops@example.test' } },
  });
  smarthost = await startSink({ host: '127.0.0.6', xoauth2: smarthostCheck(idp) });
});

afterAll(async () => {
  await smarthost?.close();
  await idp?.close();
  tmp.cleanup();
});

interface Harness { d: Deliverer; lines: string[]; registry: client.Registry; tokens: OAuth2Tokens }

function harness(auth: NonNullable<NonNullable<DeliveryConfigInput['smarthosts']>[number]['auth']>, extra: Partial<DeliveryConfigInput> = {}): Harness {
  const lines: string[] = [];
  const log = pino({ level: 'debug' }, { write: (l: string) => { lines.push(l); } });
  const registry = new client.Registry();
  // short waits so recovery is observable in a test; the default waits are minutes
  const tokens = new OAuth2Tokens({ log, registry, retry: { unavailableMs: 50, unavailableMaxMs: 200, freshMs: 0 } });
  const d = new Deliverer({
    log, oauth2: tokens, outbound: loopbackSinks,
    config: config({
      mode: 'smarthost', connectTimeoutMs: 3000, greetingTimeoutMs: 3000, socketTimeoutMs: 10_000, ...extra,
      smarthosts: [{ name: 'm365', host: '127.0.0.6', port: smarthost.port, tlsRejectUnauthorized: false, auth }],
    }),
  });
  return { d, lines, registry, tokens };
}

const grants = (grant: string) => idp.requests.filter((r) => r.grant === grant);
const events = (h: Harness, msg: string) => h.lines.map((l) => JSON.parse(l)).filter((l) => l.msg === msg);
async function healthy(h: Harness): Promise<number | undefined> {
  const m = await h.registry.getSingleMetric('mailfleet_oauth2_credential_healthy')!.get();
  return m.values.find((v) => v.labels.smarthost === 'm365')?.value;
}

describe('smarthost OAuth2', () => {
  it('Microsoft client secret: delivers as the mailbox over XOAUTH2 with one token for many messages, and never logs a secret', async () => {
    const before = grants('client_credentials').length;
    // one message per connection: every message logs in again, from the cache
    const h = harness({
      user: 'relay@example.test',
      oauth2: { microsoft: { tenantId: 'contoso.onmicrosoft.com', clientId: 'app-1', clientSecretFile: file('client-secret', `${secret}\n`), tokenUrl: idp.url }, tokenCaFile: idp.caFile },
    }, { maxMessagesPerConnection: 1 });
    try {
      for (let i = 0; i < 3; i++) {
        const [o] = await h.d.deliver(makeJob(tmp.dir, [`rcpt${i}@far.test`]));
        expect(o).toMatchObject({ status: 'delivered', route: 'smarthost' });
      }
      expect(smarthost.messages.filter((m) => m.to[0]?.startsWith('rcpt')).map((m) => m.authUser)).toEqual(Array(3).fill('relay@example.test'));
      expect(smarthost.messages.filter((m) => m.to[0]?.startsWith('rcpt')).every((m) => m.secure)).toBe(true);
      expect(grants('client_credentials').length - before).toBe(1);
      const all = h.lines.join('\n');
      expect(all).not.toContain(secret);
      expect(all).not.toMatch(/at-[A-Za-z0-9_-]{10}/); // no access token either
    } finally {
      await h.d.close();
    }
  });

  it('Microsoft certificate: the client assertion is signed with the key and names the certificate', async () => {
    const before = grants('client_credentials').filter((r) => r.ok).length;
    const h = harness({
      user: 'relay@example.test',
      oauth2: {
        mechanism: 'XOAUTH2',
        microsoft: { tenantId: '00000000-0000-0000-0000-000000000001', clientId: 'app-1', certificateFile: app.certPath, privateKeyFile: app.keyPath, tokenUrl: idp.url },
        tokenCaFile: idp.caFile,
      },
    });
    try {
      const [o] = await h.d.deliver(makeJob(tmp.dir, ['cert@far.test']));
      expect(o).toMatchObject({ status: 'delivered' });
      expect(grants('client_credentials').filter((r) => r.ok).length - before).toBe(1);
    } finally {
      await h.d.close();
    }
  });

  it('Google service account: each envelope sender is the delegation subject and the SMTP user; the null sender uses the configured user', async () => {
    const h = harness({
      user: 'bounces@example.test',
      oauth2: {
        userFromSender: true,
        google: { serviceAccountKeyFile: file('sa.json', JSON.stringify({ type: 'service_account', client_email: 'relay@project.iam.gserviceaccount.com', private_key: serviceKey.key, token_uri: idp.url })) },
        tokenCaFile: idp.caFile,
      },
    });
    try {
      for (const from of ['alice@example.test', 'bob@example.test', '']) {
        const [o] = await h.d.deliver(makeJob(tmp.dir, [`to-${from.split('@')[0] || 'null'}@far.test`], { from }));
        expect(o).toMatchObject({ status: 'delivered' });
      }
      const got = (to: string) => smarthost.messages.find((m) => m.to.includes(to))?.authUser;
      expect([got('to-alice@far.test'), got('to-bob@far.test'), got('to-null@far.test')])
        .toEqual(['alice@example.test', 'bob@example.test', 'bounces@example.test']);
      expect(grants('urn:ietf:params:oauth:grant-type:jwt-bearer').filter((r) => r.ok).map((r) => r.user))
        .toEqual(expect.arrayContaining(['alice@example.test', 'bob@example.test', 'bounces@example.test']));
    } finally {
      await h.d.close();
    }
  });

  it('refresh token: renews before expiry, and once on a 535 whose challenge says the token expired (decoded into the log)', async () => {
    const tokenFile = file('refresh-token', refreshToken);
    const h = harness({
      user: 'ops@example.test',
      oauth2: { refreshToken: { tokenUrl: idp.url, clientId: 'web-1', clientSecretFile: file('web-secret', 'web-secret'), refreshTokenFile: tokenFile }, tokenCaFile: idp.caFile },
    }, { maxMessagesPerConnection: 1 });
    const before = grants('refresh_token').length;
    idp.expiresIn = 2;
    try {
      expect((await h.d.deliver(makeJob(tmp.dir, ['r1@far.test'])))[0]).toMatchObject({ status: 'delivered' });
      // a token near its end is replaced before it is used (no failed AUTH on the way)
      await eventually('a renewal before expiry', async () => {
        const [o] = await h.d.deliver(makeJob(tmp.dir, ['r2@far.test']));
        expect(o).toMatchObject({ status: 'delivered' });
        return grants('refresh_token').length - before >= 2;
      }, 20_000, { everyMs: 200 });
      expect(events(h, 'smarthost refused a cached OAuth2 token; renewing it once')).toHaveLength(0);

      idp.expiresIn = 3600;
      expect((await h.d.deliver(makeJob(tmp.dir, ['r3@far.test'])))[0]).toMatchObject({ status: 'delivered' });
      const mid = grants('refresh_token').length;
      idp.expireAll(); // the smarthost now sees an expired token the relay still believes in
      expect((await h.d.deliver(makeJob(tmp.dir, ['r4@far.test'])))[0]).toMatchObject({ status: 'delivered' });
      expect(grants('refresh_token').length - mid).toBe(1);
      const [renewed] = events(h, 'smarthost refused a cached OAuth2 token; renewing it once');
      expect(renewed.response).toContain('"status":"401"');
    } finally {
      idp.expiresIn = 3600;
      await h.d.close();
    }
  });

  it('identity provider down: mail is deferred (4.7.0, not bounced), the metric says so, and delivery recovers when it is back', async () => {
    const h = harness({
      user: 'relay@example.test',
      oauth2: { microsoft: { tenantId: 'contoso.onmicrosoft.com', clientId: 'app-1', clientSecretFile: file('client-secret-2', secret), tokenUrl: idp.url }, tokenCaFile: idp.caFile },
    });
    idp.setDown(true);
    try {
      const [o] = await h.d.deliver(makeJob(tmp.dir, ['down@far.test']));
      expect(o).toMatchObject({ status: 'deferred', enhanced: '4.7.0' });
      expect(o!.response).toMatch(/no OAuth2 token for relay@example.test/);
      expect(await healthy(h)).toBe(0);
      expect(events(h, 'identity provider unavailable; mail is deferred')[0]).toMatchObject({ kind: 'unavailable', endpoint: idp.url });
      idp.setDown(false);
      await eventually('delivery after the provider is back', async () => {
        const [again] = await h.d.deliver(makeJob(tmp.dir, ['back@far.test']));
        return again?.status === 'delivered';
      }, 20_000, { everyMs: 100 });
      expect(await healthy(h)).toBe(1);
      expect(h.tokens.states()).toEqual([expect.objectContaining({ smarthost: 'm365', healthy: true })]);
    } finally {
      idp.setDown(false);
      await h.d.close();
    }
  });

  it('revoked refresh token: deferred with the provider\'s words, reported, not asked again per message; a new token file fixes it without a restart', async () => {
    const revokedToken = '1//about-to-be-revoked';
    idp.addRefreshToken(revokedToken, { clientId: 'web-1', clientSecret: 'web-secret', user: 'ops@example.test' });
    idp.revokeRefreshToken(revokedToken);
    const tokenFile = file('refresh-token-2', revokedToken);
    const auth = {
      user: 'ops@example.test',
      oauth2: { refreshToken: { tokenUrl: idp.url, clientId: 'web-1', clientSecretFile: file('web-secret-2', 'web-secret'), refreshTokenFile: tokenFile }, tokenCaFile: idp.caFile },
    };
    const h = harness(auth);
    const before = grants('refresh_token').length;
    try {
      for (let i = 0; i < 3; i++) {
        const [o] = await h.d.deliver(makeJob(tmp.dir, [`rev${i}@far.test`]));
        expect(o).toMatchObject({ status: 'deferred', enhanced: '4.7.0' });
        expect(o!.response).toContain('invalid_grant: Token has been expired or revoked.');
      }
      expect(grants('refresh_token').length - before).toBe(1);
      expect(h.tokens.states()).toEqual([expect.objectContaining({ healthy: false, failing: 'token', error: `${idp.url}: invalid_grant: Token has been expired or revoked.` })]);
      expect(events(h, 'identity provider refused the OAuth2 credential; mail is deferred until the Secret is fixed')).toHaveLength(1);
      expect(h.lines.join('\n')).not.toContain(revokedToken);

      writeFileSync(tokenFile, refreshToken); // the Secret is updated; the reload re-reads it
      h.d.updateConfig(config({
        mode: 'smarthost', connectTimeoutMs: 3000, greetingTimeoutMs: 3000, socketTimeoutMs: 10_000,
        smarthosts: [{ name: 'm365', host: '127.0.0.6', port: smarthost.port, tlsRejectUnauthorized: false, auth }],
      }));
      const [o] = await h.d.deliver(makeJob(tmp.dir, ['fixed@far.test']));
      expect(o).toMatchObject({ status: 'delivered' });
    } finally {
      await h.d.close();
    }
  });

  it('a smarthost that refuses a fresh token (no mailbox permission) defers, logs the decoded challenge, and does not loop on the token endpoint', async () => {
    const refusing = await startSink({ host: '127.0.0.7', xoauth2: () => ({ status: '400', schemes: 'Bearer', scope: 'https://outlook.office.com/SMTP.Send' }) });
    const lines: string[] = [];
    const log = pino({ level: 'debug' }, { write: (l: string) => { lines.push(l); } });
    const tokens = new OAuth2Tokens({ log, retry: { freshMs: 60_000 } });
    const d = new Deliverer({
      log, oauth2: tokens, outbound: loopbackSinks,
      config: config({
        mode: 'smarthost', maxMessagesPerConnection: 1,
        smarthosts: [{ name: 'm365', host: '127.0.0.7', port: refusing.port, tlsRejectUnauthorized: false, auth: {
          user: 'relay@example.test',
          oauth2: { microsoft: { tenantId: 'contoso.onmicrosoft.com', clientId: 'app-1', clientSecretFile: file('client-secret-3', secret), tokenUrl: idp.url }, tokenCaFile: idp.caFile },
        } }],
      }),
    });
    const before = grants('client_credentials').length;
    try {
      for (let i = 0; i < 3; i++) {
        const [o] = await d.deliver(makeJob(tmp.dir, [`perm${i}@far.test`]));
        expect(o).toMatchObject({ status: 'deferred', enhanced: '4.7.0', code: 535 });
      }
      expect(grants('client_credentials').length - before).toBe(1);
      const refused = lines.map((l) => JSON.parse(l)).filter((l) => l.msg.startsWith('smarthost refused a fresh OAuth2 token'));
      expect(refused[0].challenge).toEqual({ status: '400', schemes: 'Bearer', scope: 'https://outlook.office.com/SMTP.Send' });
      expect(tokens.states()[0]).toMatchObject({ healthy: false, failing: 'smarthost' });
      expect(tokens.states()[0]!.error).toContain('"scope":"https://outlook.office.com/SMTP.Send"');
    } finally {
      await d.close();
      await refusing.close();
    }
  });

  it('a smarthost that does not offer AUTH still gets asked, and the refusal defers instead of sending unauthenticated', async () => {
    const noAuth = await startSink({ host: '127.0.0.9' });
    const d = new Deliverer({
      log: pino({ level: 'silent' }), outbound: loopbackSinks,
      config: config({
        mode: 'smarthost',
        smarthosts: [{ name: 'm365', host: '127.0.0.9', port: noAuth.port, tlsRejectUnauthorized: false, auth: {
          user: 'relay@example.test',
          oauth2: { microsoft: { tenantId: 't', clientId: 'app-1', clientSecretFile: file('client-secret-5', secret), tokenUrl: idp.url }, tokenCaFile: idp.caFile },
        } }],
      }),
    });
    try {
      const [o] = await d.deliver(makeJob(tmp.dir, ['noauth@far.test']));
      expect(o).toMatchObject({ status: 'deferred', enhanced: '4.7.0' });
      expect(noAuth.messages).toHaveLength(0);
    } finally {
      await d.close();
      await noAuth.close();
    }
  });

  it('a bad key or a missing secret file is a config error naming the field, and the old config stays', async () => {
    const h = harness({
      user: 'relay@example.test',
      oauth2: { microsoft: { tenantId: 't', clientId: 'app-1', clientSecretFile: file('client-secret-4', secret), tokenUrl: idp.url }, tokenCaFile: idp.caFile },
    });
    try {
      const bad = (auth: object) => () => h.d.updateConfig(config({ mode: 'smarthost', smarthosts: [{ name: 'm365', host: '127.0.0.6', auth } as never] }));
      expect(bad({ user: 'u@example.test', oauth2: { google: { serviceAccountKeyFile: file('bad.json', '{"client_email":"x"}') } } }))
        .toThrow(/smarthosts\[0\] \(m365\): auth.oauth2: the service account key has no client_email or private_key/);
      expect(bad({ user: 'u@example.test', oauth2: { microsoft: { tenantId: 't', clientId: 'c', certificateFile: app.certPath, privateKeyFile: join(tmp.dir, 'missing.pem') } } }))
        .toThrow(/smarthosts\[0\] \(m365\): cannot read privateKeyFile/);
      const [o] = await h.d.deliver(makeJob(tmp.dir, ['still@far.test']));
      expect(o).toMatchObject({ status: 'delivered' });
    } finally {
      await h.d.close();
    }
  });
});

describe('credential probe (what the operator runs for its status condition)', () => {
  it('reports the provider\'s refusal, success, an unusable key, and caches the answer', async () => {
    const cfg = oauth2Schema.parse({ microsoft: { tenantId: 't', clientId: 'app-1', clientSecretFile: '/unused', tokenUrl: idp.url } });
    const cache = new OAuth2ProbeCache();
    const before = grants('client_credentials').length;
    const bad = await cache.check(cfg, { clientSecret: 'nope', ca: testCert().cert }, 'relay@example.test');
    expect(bad).toMatchObject({ ok: false, kind: 'refused', message: `${idp.url}: invalid_client: AADSTS7000215: Invalid client secret provided.` });
    expect(await cache.check(cfg, { clientSecret: 'nope', ca: testCert().cert }, 'relay@example.test')).toBe(bad);
    expect(grants('client_credentials').length - before).toBe(1);
    expect(await cache.check(cfg, { clientSecret: secret, ca: testCert().cert }, 'relay@example.test')).toMatchObject({ ok: true });
    const google = oauth2Schema.parse({ google: { serviceAccountKeyFile: '/unused' } });
    expect(await cache.check(google, { serviceAccountKey: '{"client_email":"a"}' }, 'u@example.test'))
      .toMatchObject({ ok: false, kind: 'invalid', message: 'the service account key has no client_email or private_key' });
    idp.setDown(true);
    try {
      expect(await new OAuth2ProbeCache().check(cfg, { clientSecret: secret, ca: testCert().cert }, 'relay@example.test')).toMatchObject({ ok: false, kind: 'unavailable' });
    } finally {
      idp.setDown(false);
    }
  });
});
