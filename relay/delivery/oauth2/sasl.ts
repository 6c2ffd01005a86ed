// SASL XOAUTH2 and OAUTHBEARER (RFC 7628) as a nodemailer custom auth handler. nodemailer's
// built-in XOAUTH2 answers a failure challenge without looking at it and has no OAUTHBEARER;
// here the challenge (base64 JSON: status, schemes, scope) is decoded into the log and the
// error, and the token comes from our per-credential cache, so a 535 on a cached token
// renews it once instead of fetching a token per connection.
import type { SMTPConnectionCustomAuthContext, SMTPConnectionCustomAuthResponse } from 'nodemailer/lib/smtp-connection';
import type { Logger } from '../../log.ts';
import type { OAuth2Credential } from './credential.ts';
import type { OAuth2Config } from './schema.ts';

/** The method name nodemailer routes to our handler; never sent on the wire. */
export const CUSTOM_METHOD = 'MAILFLEET-OAUTH2';

type Mechanism = 'XOAUTH2' | 'OAUTHBEARER';

export function xoauth2Response(user: string, token: string): string {
  return Buffer.from(`user=${user}\x01auth=Bearer ${token}\x01\x01`).toString('base64');
}

/** RFC 7628 §3.1 initial client response: GS2 header with the authorization identity, then key/values. */
export function oauthbearerResponse(user: string, token: string): string {
  const authzid = user.replace(/=/g, '=3D').replace(/,/g, '=2C');
  return Buffer.from(`n,a=${authzid},\x01auth=Bearer ${token}\x01\x01`).toString('base64');
}

/** Decodes a failure challenge ('334 <base64 JSON>'); undefined when it is not one. */
export function decodeChallenge(text: string): Record<string, unknown> | undefined {
  const b64 = text.trim();
  if (!b64 || !/^[A-Za-z0-9+/=]+$/.test(b64)) return undefined;
  try {
    const v: unknown = JSON.parse(Buffer.from(b64, 'base64').toString('utf8'));
    return v && typeof v === 'object' && !Array.isArray(v) ? v as Record<string, unknown> : undefined;
  } catch {
    return undefined;
  }
}

export function chooseMechanism(configured: OAuth2Config['mechanism'], offered: string[]): Mechanism {
  if (configured !== 'auto') return configured;
  // nodemailer lists only the mechanisms it knows; XOAUTH2 is among them, OAUTHBEARER is not
  return offered.includes('XOAUTH2') ? 'XOAUTH2' : 'OAUTHBEARER';
}

interface Refusal { reply: SMTPConnectionCustomAuthResponse; challenge?: Record<string, unknown> | undefined }

async function tryToken(ctx: SMTPConnectionCustomAuthContext, mechanism: Mechanism, user: string, token: string): Promise<Refusal | undefined> {
  const initial = mechanism === 'XOAUTH2' ? xoauth2Response(user, token) : oauthbearerResponse(user, token);
  const reply = await ctx.sendCommand(`AUTH ${mechanism} ${initial}`);
  if (reply.status === 235) return undefined;
  if (reply.status !== 334) return { reply };
  const challenge = decodeChallenge(reply.text);
  // XOAUTH2 ends the exchange with an empty line, OAUTHBEARER with %x01 (RFC 7628 §3.2.3)
  const final = await ctx.sendCommand(mechanism === 'XOAUTH2' ? '' : Buffer.from('\x01').toString('base64'));
  if (final.status === 235) return undefined;
  return { reply: final, challenge };
}

function describe(r: Refusal): string {
  const reply = r.reply.response.replace(/\s+/g, ' ').slice(0, 300);
  return r.challenge ? `${reply} (token error: ${JSON.stringify(r.challenge).slice(0, 300)})` : reply;
}

export interface HandlerOptions {
  credential: OAuth2Credential;
  mechanism: OAuth2Config['mechanism'];
  log: Logger;
  remote: string;
}

export function oauth2AuthHandler(opts: HandlerOptions) {
  const { credential, log, remote } = opts;
  return async (ctx: SMTPConnectionCustomAuthContext): Promise<void> => {
    const user = String(ctx.auth.user ?? '');
    const mechanism = chooseMechanism(opts.mechanism, ctx.authMethods);
    let token = await credential.token(user).catch((err: Error) => {
      throw new Error(`no OAuth2 token for ${user} (${err.message})`);
    });
    let refusal = await tryToken(ctx, mechanism, user, token.accessToken);
    if (refusal && credential.shouldRenewAfterRefusal(user, token)) {
      log.info({ smarthost: credential.smarthost, remote, user, mechanism, response: describe(refusal) }, 'smarthost refused a cached OAuth2 token; renewing it once');
      token = await credential.token(user, true).catch((err: Error) => {
        throw new Error(`no OAuth2 token for ${user} (${err.message})`);
      });
      refusal = await tryToken(ctx, mechanism, user, token.accessToken);
    }
    if (!refusal) {
      credential.authenticated(user);
      return;
    }
    const text = describe(refusal);
    credential.refusedBySmarthost(user, text);
    log.error({ smarthost: credential.smarthost, remote, user, mechanism, response: refusal.reply.response, challenge: refusal.challenge },
      'smarthost refused a fresh OAuth2 token (check the app\'s mailbox permission and that SMTP AUTH is enabled for the mailbox)');
    // the reply goes on the error so the delivery outcome carries the smarthost's words
    throw Object.assign(new Error(`smarthost refused the OAuth2 token of ${user}: ${text}`), { responseCode: refusal.reply.status || undefined });
  };
}
