// What a next hop says about itself, asked on a session of its own (greeting, EHLO,
// STARTTLS and the second EHLO, then QUIT; no mail, no credentials) and cached per target:
// - the extensions of its last EHLO reply: SMTPUTF8 (smtputf8.ts), DSN (passing NOTIFY on);
// - whether a session with TLS required and the certificate verified works (MTA-STS
//   `testing` policies report what `enforce` would have refused).
// nodemailer's send result says neither, so a probe is the one public way to know.
import SMTPConnection from 'nodemailer/lib/smtp-connection';
import type { SMTPPoolOptions } from 'nodemailer/lib/smtp-pool';

interface Known<T> { value: T; until: number }

/** One answer per key, asked at most once per `ttlMs`; concurrent asks share one probe. */
class ProbeCache<T> {
  private readonly known = new Map<string, Known<T>>();
  private readonly inflight = new Map<string, Promise<T>>();
  private readonly ttlMs: number;
  constructor(ttlMs: number) { this.ttlMs = ttlMs; }

  async get(key: string, run: () => Promise<T>): Promise<T> {
    const hit = this.known.get(key);
    if (hit && hit.until > Date.now()) return hit.value;
    let p = this.inflight.get(key);
    if (!p) {
      p = run().finally(() => this.inflight.delete(key));
      this.inflight.set(key, p);
      void p.then((value) => {
        // MX mode meets many hosts once: keep the map bounded
        if (this.known.size >= 10_000) this.known.clear();
        this.known.set(key, { value, until: Date.now() + this.ttlMs });
      }, () => {});
    }
    return p;
  }
}

/** Greeting, EHLO (and STARTTLS with a second EHLO), then QUIT: the last EHLO reply. Rejects with nodemailer's error. */
export function lastEhlo(options: SMTPPoolOptions): Promise<string> {
  // no credentials: the extension list comes before AUTH, and a probe must not count as a login
  const { auth: _auth, customAuth: _custom, ...rest } = options;
  const conn = new SMTPConnection({ ...rest, logger: false, debug: false });
  return new Promise<string>((resolve, reject) => {
    conn.once('error', (err: Error) => { conn.close(); reject(err); });
    conn.connect(() => {
      // lastServerResponse is the reply to the last EHLO: 250-host / 250-EXT / 250 EXT lines
      const ehlo = String(conn.lastServerResponse || '');
      conn.quit();
      resolve(ehlo);
    });
  });
}

export function announces(ehlo: string, keyword: string): boolean {
  return new RegExp(`^250[ -]${keyword}\\b`, 'im').test(ehlo);
}

export class HopProbe {
  private readonly ehlos: ProbeCache<string>;
  private readonly tls: ProbeCache<string | undefined>;

  constructor(ttlMs = 10 * 60_000) {
    this.ehlos = new ProbeCache(ttlMs);
    this.tls = new ProbeCache(ttlMs);
  }

  /** Whether the hop's EHLO reply lists `keyword`. `key` names the target and its TLS mode. */
  async announces(key: string, options: SMTPPoolOptions, keyword: string): Promise<boolean> {
    return announces(await this.ehlos.get(key, () => lastEhlo(options)), keyword);
  }

  /** Undefined when a session with TLS required and verified works, else why not. */
  async verifiedTlsProblem(key: string, options: SMTPPoolOptions): Promise<string | undefined> {
    return this.tls.get(key, () => lastEhlo({
      ...options, ignoreTLS: false, requireTLS: !options.secure, opportunisticTLS: false,
      tls: { ...options.tls, rejectUnauthorized: true },
    }).then(() => undefined, (err: Error) => err.message));
  }
}
