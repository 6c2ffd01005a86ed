// Pure parts of smarthost OAuth2: the config contract, the SASL encodings, challenge
// decoding and how token endpoint answers are classified (refused vs unavailable).
import { describe, expect, it } from 'vitest';
import { deliverySchema } from '../../relay/delivery/schema.ts';
import { chooseMechanism, decodeChallenge, oauthbearerResponse, xoauth2Response } from '../../relay/delivery/oauth2/sasl.ts';
import { parseTokenAnswer } from '../../relay/delivery/oauth2/sources.ts';
import { MICROSOFT_SCOPE } from '../../relay/delivery/oauth2/schema.ts';

const smarthost = (auth: unknown) => deliverySchema.safeParse({ mode: 'smarthost', smarthosts: [{ host: 'smtp.office365.com', auth }] });
const issues = (r: ReturnType<typeof smarthost>) => (r.success ? [] : r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`));

describe('smarthost oauth2 config', () => {
  it('defaults Microsoft to the Exchange Online scope and auto mechanism', () => {
    const r = smarthost({ user: 'relay@contoso.com', oauth2: { microsoft: { tenantId: 'contoso.onmicrosoft.com', clientId: 'c', clientSecretFile: '/s/secret' } } });
    expect(r.success && r.data.smarthosts[0]!.auth!.oauth2).toMatchObject({ mechanism: 'auto', userFromSender: false, microsoft: { scope: MICROSOFT_SCOPE } });
  });

  it('refuses ambiguous or incomplete settings with a message naming the field', () => {
    expect(issues(smarthost({ user: 'u', passwordFile: '/p', oauth2: { google: { serviceAccountKeyFile: '/k' } } })))
      .toEqual(['smarthosts.0.auth: set exactly one of passwordFile or oauth2']);
    expect(issues(smarthost({ user: 'u', oauth2: {} }))).toEqual(['smarthosts.0.auth.oauth2: set exactly one token source: microsoft, google or refreshToken']);
    expect(issues(smarthost({ user: 'u', oauth2: { microsoft: { tenantId: 't', clientId: 'c' } } })))
      .toEqual(['smarthosts.0.auth.oauth2.microsoft: set clientSecretFile, or certificateFile and privateKeyFile (not both)']);
    expect(issues(smarthost({ user: 'u', oauth2: { microsoft: { tenantId: 't', clientId: 'c', certificateFile: '/c' } } })))
      .toEqual(['smarthosts.0.auth.oauth2.microsoft.privateKeyFile: a certificate credential needs both certificateFile and privateKeyFile']);
    expect(issues(smarthost({ user: 'u', oauth2: { refreshToken: { clientId: 'c', refreshTokenFile: '/r', tokenUrl: 'http://idp.example/token' } } })))
      .toEqual(['smarthosts.0.auth.oauth2.refreshToken.tokenUrl: must be an https:// URL (the token request carries a credential)']);
    expect(issues(smarthost({ user: 'u', oauth2: { userFromSender: true, refreshToken: { clientId: 'c', refreshTokenFile: '/r' } } })))
      .toEqual(['smarthosts.0.auth.oauth2.userFromSender: a refresh token belongs to one mailbox; userFromSender needs microsoft or google']);
    expect(issues(deliverySchema.safeParse({ mode: 'smarthost', smarthosts: [{ host: 'h', tls: 'none', requireTls: false, auth: { user: 'u', oauth2: { google: { serviceAccountKeyFile: '/k' } } } }] })))
      .toEqual(['smarthosts.0.requireTls: delivery.smarthosts[0] (h): oauth2 needs requireTls: a bearer token must never travel in plaintext']);
    // strict: a typo is an error, not a silently ignored field
    expect(issues(smarthost({ user: 'u', oauth2: { google: { serviceAccountKeyFile: '/k', subjet: 'x' } } }))[0]).toMatch(/google: Unrecognized key: "subjet"/);
  });
});

describe('SASL encodings', () => {
  it('XOAUTH2 and OAUTHBEARER initial responses', () => {
    expect(Buffer.from(xoauth2Response('a@b.test', 'tok'), 'base64').toString()).toBe('user=a@b.test\x01auth=Bearer tok\x01\x01');
    // RFC 7628 §3.1: GS2 header, saslname escaping of ',' and '='
    expect(Buffer.from(oauthbearerResponse('a,b=c@d.test', 'tok'), 'base64').toString()).toBe('n,a=a=2Cb=3Dc@d.test,\x01auth=Bearer tok\x01\x01');
  });

  it('auto prefers XOAUTH2 when offered, else OAUTHBEARER', () => {
    expect(chooseMechanism('auto', ['PLAIN', 'XOAUTH2'])).toBe('XOAUTH2');
    expect(chooseMechanism('auto', ['PLAIN'])).toBe('OAUTHBEARER');
    expect(chooseMechanism('OAUTHBEARER', ['XOAUTH2'])).toBe('OAUTHBEARER');
  });

  it('decodes a Gmail-style failure challenge, and nothing else', () => {
    const b64 = Buffer.from('{"status":"401","schemes":"Bearer","scope":"https://mail.google.com/"}').toString('base64');
    expect(decodeChallenge(b64)).toEqual({ status: '401', schemes: 'Bearer', scope: 'https://mail.google.com/' });
    expect(decodeChallenge('VXNlcm5hbWU6')).toBeUndefined(); // 'Username:' is not JSON
    expect(decodeChallenge('not base64 at all')).toBeUndefined();
  });
});

describe('token endpoint answers', () => {
  const body = (v: unknown) => Buffer.from(JSON.stringify(v));
  it('reads a token and its lifetime', () => {
    expect(parseTokenAnswer('E', body({ access_token: 'x', expires_in: 3599 }), 1000)).toEqual({ accessToken: 'x', expiresAt: 1000 + 3_599_000 });
  });
  it('an OAuth error is a refusal, except the transient ones; junk is unavailability', () => {
    expect(() => parseTokenAnswer('E', body({ error: 'invalid_client', error_description: 'AADSTS7000215: Invalid client secret provided.' })))
      .toThrow(expect.objectContaining({ kind: 'refused', message: 'E: invalid_client: AADSTS7000215: Invalid client secret provided.' }));
    expect(() => parseTokenAnswer('E', body({ error: 'temporarily_unavailable' }))).toThrow(expect.objectContaining({ kind: 'unavailable' }));
    expect(() => parseTokenAnswer('E', Buffer.from('<html>502 Bad Gateway</html>'))).toThrow(expect.objectContaining({ kind: 'unavailable' }));
    expect(() => parseTokenAnswer('E', body({ token_type: 'Bearer' }))).toThrow(expect.objectContaining({ kind: 'unavailable' }));
  });
});
