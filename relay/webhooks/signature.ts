// Signed webhooks, the scheme Stripe popularised:
//   X-MailFleet-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>
// Receivers recompute the HMAC over the raw body bytes they received (before any JSON
// parsing), compare in constant time, and refuse timestamps outside a tolerance so a
// captured request cannot be replayed later. t is fresh on every attempt, so retries of
// an old event still verify; the event id (X-MailFleet-Event-Id) is stable for de-duplication.
import { createHmac, timingSafeEqual } from 'node:crypto';

export const signatureHeader = 'X-MailFleet-Signature';
export const eventIdHeader = 'X-MailFleet-Event-Id';

function hmac(secret: string, t: number, body: string | Buffer): Buffer {
  return createHmac('sha256', secret).update(`${t}.`).update(body).digest();
}

export function signWebhook(secret: string, body: string | Buffer, nowSec = Math.floor(Date.now() / 1000)): string {
  return `t=${nowSec},v1=${hmac(secret, nowSec, body).toString('hex')}`;
}

/**
 * For receivers: true when `header` carries a v1 signature of `body` by `secret` whose
 * timestamp is within toleranceSec of now. Several v1 entries are accepted (secret rotation).
 */
export function verifyWebhookSignature(
  secret: string,
  header: string | undefined | null,
  body: string | Buffer,
  toleranceSec = 300,
  nowSec = Date.now() / 1000,
): boolean {
  if (!header) return false;
  let t: number | undefined;
  const sigs: Buffer[] = [];
  for (const part of header.split(',')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    const k = part.slice(0, eq).trim();
    const v = part.slice(eq + 1).trim();
    if (k === 't' && /^\d{1,12}$/.test(v)) t = Number(v);
    else if (k === 'v1' && /^[0-9a-f]{64}$/i.test(v)) sigs.push(Buffer.from(v, 'hex'));
  }
  if (t === undefined || sigs.length === 0 || Math.abs(nowSec - t) > toleranceSec) return false;
  const expected = hmac(secret, t, body);
  return sigs.some((s) => timingSafeEqual(s, expected));
}
