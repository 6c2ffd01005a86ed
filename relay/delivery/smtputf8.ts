// RFC 6531 at delivery. nodemailer adds the SMTPUTF8 parameter by itself when the next hop
// announces the extension, but sends a non-ASCII address without it when the hop does not,
// which RFC 6531 §3.5 forbids. So before such an envelope goes out, the hop's EHLO reply
// is read on a session of its own (same TLS and EHLO name as the pool's; cached per target),
// and the recipients the hop cannot take fail permanently with 553 5.6.7 (RFC 6531 §3.5,
// RFC 6533 "non-ASCII addresses not permitted").
import SMTPConnection from 'nodemailer/lib/smtp-connection';
import type { SMTPPoolOptions } from 'nodemailer/lib/smtp-pool';

const NON_ASCII = /[^\x00-\x7f]/;

/**
 * The recipients that need SMTPUTF8: all of them when the sender address is non-ASCII
 * (it is in the MAIL command of the one transaction), else those with non-ASCII addresses.
 */
export function needingSmtpUtf8(from: string, recipients: string[]): string[] {
  return NON_ASCII.test(from) ? recipients : recipients.filter((r) => NON_ASCII.test(r));
}

export const NO_SMTPUTF8 = { status: 'failed', code: 553, enhanced: '5.6.7' } as const;

export function noSmtpUtf8Response(remote: string): string {
  return `${remote} does not announce SMTPUTF8, which the non-ASCII address(es) of this message require (RFC 6531 section 3.5)`;
}

interface Known { ok: boolean; until: number }

/** What each target says about SMTPUTF8, asked at most once per `ttlMs` per target. */
export class Smtputf8Support {
  private readonly known = new Map<string, Known>();
  private readonly ttlMs: number;

  constructor(ttlMs = 10 * 60_000) {
    this.ttlMs = ttlMs;
  }

  /** Rejects with nodemailer's error when the target cannot be reached. */
  async supports(key: string, options: SMTPPoolOptions): Promise<boolean> {
    const hit = this.known.get(key);
    if (hit && hit.until > Date.now()) return hit.ok;
    const ok = await announces(options, 'SMTPUTF8');
    // MX mode meets many hosts once: keep the map bounded
    if (this.known.size >= 10_000) this.known.clear();
    this.known.set(key, { ok, until: Date.now() + this.ttlMs });
    return ok;
  }
}

/** Greeting, EHLO (and STARTTLS with a second EHLO), then QUIT: does the last EHLO reply list `keyword`? */
function announces(options: SMTPPoolOptions, keyword: string): Promise<boolean> {
  // no credentials: the extension list comes before AUTH, and a probe must not count as a login
  const { auth: _auth, customAuth: _custom, ...rest } = options;
  const conn = new SMTPConnection({ ...rest, logger: false, debug: false });
  return new Promise<boolean>((resolve, reject) => {
    conn.once('error', (err: Error) => { conn.close(); reject(err); });
    conn.connect(() => {
      // lastServerResponse is the reply to the last EHLO: 250-host / 250-EXT / 250 EXT lines
      const ehlo = String(conn.lastServerResponse || '');
      conn.quit();
      resolve(new RegExp(`^250[ -]${keyword}\\b`, 'im').test(ehlo));
    });
  });
}
