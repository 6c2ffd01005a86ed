// One nodemailer SMTP pool per destination host (IP, port, TLS policy, credentials), shared
// by every job and recipient domain that resolves to it, so connections are reused.
//
// Feeding: each pool has a semaphore sized like its maxConnections, and a send waits on it
// before it is handed to nodemailer. nodemailer's own queue therefore never holds a backlog
// (it would fail everything queued on close() and hides how long a message waited); the
// wait happens here, in order, where a hot reload or shutdown can see it. nodemailer 10
// already disables Nagle on its sockets (smtp-connection `_onConnect`), so no getSocket hook.
import { createHash } from 'node:crypto';
import { hostname } from 'node:os';
import type { Readable } from 'node:stream';
import SMTPPool, { type SMTPPoolOptions, type SMTPPoolSentMessageInfo } from 'nodemailer/lib/smtp-pool';
import type MailMessage from 'nodemailer/lib/mailer/mail-message';
import type { Logger } from '../log.ts';
import { Semaphore } from './semaphore.ts';
import type { SendInfo } from './outcome.ts';
import { CUSTOM_METHOD, type OAuth2Login } from './oauth2/index.ts';

/** Settings shared by all pools; a change retires every pool. */
export interface PoolSettings {
  heloName?: string | undefined;
  connectTimeoutMs: number;
  greetingTimeoutMs: number;
  socketTimeoutMs: number;
  idleTimeoutMs: number;
  maxMessagesPerConnection: number;
}

export interface PoolTarget {
  route: 'mx' | 'smarthost';
  host: string;          // name used for TLS SNI/verification and in 'remote'
  ip: string;            // what to connect to (an IP for MX, the configured host for smarthosts)
  port: number;
  tls: 'starttls' | 'implicit' | 'none';
  requireTls: boolean;
  rejectUnauthorized: boolean;
  ca?: string | undefined;
  auth?: { user: string; pass: string } | undefined;
  /** Token login (SASL XOAUTH2/OAUTHBEARER); its key, not the handler, tells pools apart. */
  oauth2?: OAuth2Login | undefined;
  maxConnections: number;
}

export interface OutgoingMail {
  from: string;
  to: string[];
  raw: Readable;
  /** RFC 3461 parameters for this transaction; nodemailer sends them only to a hop that announces DSN. */
  dsn?: { ret?: string; envid?: string; notify?: string[]; orcpt?: string };
}

interface Pool {
  key: string;
  target: PoolTarget;
  transport: SMTPPool;
  slots: Semaphore;
  lastUsed: number;
  retired: boolean;
}

/**
 * Hands a ready-made message straight to the pool (nodemailer/lib/smtp-pool, a public
 * export). Mail.sendMail() would run nodemailer's whole composition pipeline (plugins, MIME
 * tree, address parsing, a message id) for bytes that are already a finished message —
 * about a third of the relay's CPU per message in the benchmark. What a transport's
 * `send(mail, cb)` reads of the message (`mail.data`, `mail.message.getEnvelope`,
 * `messageId`, `getHeader`, `createReadStream`) is the custom-transport contract nodemailer
 * documents; the shim implements exactly that, so it stands in for a whole MailMessage.
 */
type PoolMessage = MailMessage<SMTPPoolSentMessageInfo>;
type TransportMessage = { data: PoolMessage['data']; message: Pick<PoolMessage['message'], 'getEnvelope' | 'messageId' | 'getHeader' | 'createReadStream'> };

function sendRaw(pool: SMTPPool, mail: OutgoingMail, signal?: AbortSignal): Promise<SendInfo> {
  const shim: TransportMessage = {
    // the pool fails an aborted message and closes the connection carrying it (smtp-pool `signal`)
    data: { ...(signal ? { signal } : {}), ...(mail.dsn ? { dsn: mail.dsn } : {}) },
    message: {
      getEnvelope: () => ({ from: mail.from, to: [...mail.to] }),
      messageId: () => '',
      getHeader: () => '',
      createReadStream: () => mail.raw,
    },
  };
  return new Promise((resolve, reject) => {
    pool.send(shim as PoolMessage, (err, info) => (err || !info ? reject(err ?? new Error('smtp-pool reported neither a result nor an error')) : resolve(info)));
  });
}

/** The session options (TLS, EHLO name, credentials, timeouts) a target is reached with. */
export function connectionOptions(target: PoolTarget, s: PoolSettings): SMTPPoolOptions {
  const servername = /^[\d.]+$|:/.test(target.host) ? undefined : target.host;
  return {
    host: target.ip,
    port: target.port,
    secure: target.tls === 'implicit',
    ignoreTLS: target.tls === 'none',
    requireTLS: target.tls === 'starttls' && target.requireTls,
    // a STARTTLS the server refuses leaves an unrequired session in plaintext
    opportunisticTLS: !target.requireTls,
    tls: {
      ...(servername ? { servername } : {}),
      rejectUnauthorized: target.rejectUnauthorized,
      ...(target.ca ? { ca: target.ca } : {}),
    },
    name: s.heloName ?? hostname(),
    ...(target.auth ? { auth: { user: target.auth.user, pass: target.auth.pass } } : {}),
    // forceAuth: a server that does not offer AUTH gets the token anyway, so the failure is
    // ours to defer (EAUTH) rather than a 530 at MAIL FROM that would bounce the mail
    ...(target.oauth2 ? { auth: { type: 'custom', method: CUSTOM_METHOD, user: target.oauth2.user }, customAuth: { [CUSTOM_METHOD]: target.oauth2.handler }, forceAuth: true } : {}),
    connectionTimeout: s.connectTimeoutMs,
    greetingTimeout: s.greetingTimeoutMs,
    socketTimeout: s.socketTimeoutMs,
    idleTimeout: s.idleTimeoutMs,
  };
}

export function remoteOf(t: Pick<PoolTarget, 'host' | 'ip' | 'port'>): string {
  return `${t.host}[${t.ip}]:${t.port}`;
}

function fingerprint(value: unknown): string {
  return createHash('sha256').update(JSON.stringify(value)).digest('hex').slice(0, 24);
}

export class PoolRegistry {
  private readonly pools = new Map<string, Pool>();
  private settings: PoolSettings;
  private settingsId: string;
  private readonly log: Logger;
  private readonly sweeper: NodeJS.Timeout;

  constructor(settings: PoolSettings, log: Logger) {
    this.settings = settings;
    this.settingsId = fingerprint(settings);
    this.log = log;
    // Drop pools of destinations not used for a while (MX mode meets many hosts once).
    this.sweeper = setInterval(() => this.sweep(), Math.max(1_000, Math.min(settings.idleTimeoutMs, 60_000)));
    this.sweeper.unref();
  }

  /**
   * Applies new shared settings. Pools made under other settings, or whose target no longer
   * exists (`keep` says false), are retired: no new sends, closed once their sends finish.
   * A changed cap is a changed target (nodemailer's maxConnections is fixed at creation).
   */
  update(settings: PoolSettings, keep: (target: PoolTarget) => boolean): void {
    this.settings = settings;
    this.settingsId = fingerprint(settings);
    for (const pool of [...this.pools.values()]) {
      const target = pool.target;
      if (!pool.key.startsWith(this.settingsId) || !keep(target)) this.retire(pool);
    }
  }

  /**
   * Sends one transaction over the target's pool, waiting for a free slot first.
   * `waitSignal` ends only the wait for a slot (the target went down meanwhile); `signal`
   * also aborts the transaction itself (shutdown).
   */
  async send(target: PoolTarget, mail: OutgoingMail, signals: { waitSignal?: AbortSignal; signal?: AbortSignal } = {}): Promise<SendInfo> {
    const pool = this.poolFor(target);
    const { waitSignal, signal } = signals;
    const release = await pool.slots.acquire(waitSignal, signal);
    try {
      pool.lastUsed = Date.now();
      return await sendRaw(pool.transport, mail, signal);
    } finally {
      pool.lastUsed = Date.now();
      release();
      if (pool.retired && pool.slots.idle) pool.transport.close();
    }
  }

  /**
   * Opens a session with the target (greeting, EHLO, STARTTLS, AUTH) and quits without
   * sending mail: the health probe. Bounded by the connect and greeting timeouts.
   */
  async verify(target: PoolTarget): Promise<void> {
    await this.poolFor(target).transport.verify();
  }

  /** The session options sends to `target` use (for a session of its own, e.g. an EHLO probe). */
  sessionOptions(target: PoolTarget): SMTPPoolOptions {
    return connectionOptions(target, this.settings);
  }

  /** Number of open pools (for tests and metrics). */
  get size(): number { return this.pools.size; }

  /**
   * Closes every pool. Sends in flight finish first, for at most `waitMs` (default: the
   * socket timeout, which bounds each of them anyway); then busy connections are closed too.
   */
  async close(waitMs = this.settings.socketTimeoutMs): Promise<void> {
    clearInterval(this.sweeper);
    const pools = [...this.pools.values()];
    this.pools.clear();
    const deadline = Date.now() + waitMs;
    while (pools.some((p) => !p.slots.idle) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
    for (const p of pools) p.transport.close({ force: true });
  }

  private poolFor(target: PoolTarget): Pool {
    // The key is the target itself, as JSON: hashing it again on every send cost ~20 µs per
    // message. The password is in it by a digest only, never in clear; a rotated secret
    // makes a new pool.
    const { auth, ...rest } = target;
    const key = `${this.settingsId}:${JSON.stringify({ ...rest, user: auth?.user, pass: auth ? this.digestOf(auth.pass) : undefined })}`;
    const existing = this.pools.get(key);
    if (existing) return existing;
    const transport = new SMTPPool({
      ...connectionOptions(target, this.settings),
      maxConnections: target.maxConnections,
      maxMessages: this.settings.maxMessagesPerConnection,
      // one retry on another connection covers a pooled connection the server closed while
      // idle; more would hide a host that drops every connection from our failover logic
      maxRequeues: 1,
      logger: false,
      debug: false,
    });
    const pool: Pool = {
      key, transport, slots: new Semaphore(target.maxConnections), lastUsed: Date.now(), retired: false, target,
    };
    transport.on('error', (err: Error) => this.log.warn({ err: err.message, remote: remoteOf(target) }, 'delivery pool error'));
    this.pools.set(key, pool);
    this.log.debug({ remote: remoteOf(target), route: target.route, maxConnections: target.maxConnections }, 'delivery pool created');
    return pool;
  }

  // one entry per distinct password seen: smarthost credentials, a handful per relay
  private readonly passDigests = new Map<string, string>();
  private digestOf(pass: string): string {
    let d = this.passDigests.get(pass);
    if (d === undefined) {
      if (this.passDigests.size >= 1024) this.passDigests.clear();
      d = fingerprint(pass);
      this.passDigests.set(pass, d);
    }
    return d;
  }

  private retire(pool: Pool): void {
    this.pools.delete(pool.key);
    pool.retired = true;
    if (pool.slots.idle) pool.transport.close();
  }

  private sweep(): void {
    const cutoff = Date.now() - this.settings.idleTimeoutMs * 2;
    for (const pool of [...this.pools.values()]) {
      if (pool.slots.idle && pool.lastUsed < cutoff) this.retire(pool);
    }
  }
}
