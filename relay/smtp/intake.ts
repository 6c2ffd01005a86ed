// SMTP intake: one smtp-server per listener. Authentication and sender checks happen here;
// DATA streams straight into the durable queue and the 250 is sent only after the commit.
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { SMTPServer, type SMTPServerOptions, type SMTPServerSession, type SMTPServerAddress, type SMTPServerDataStream, type SMTPServerAuthentication } from 'smtp-server';
import type { Logger } from '../log.ts';
import type { Metrics } from '../metrics.ts';
import type { ListenerConfig } from '../config/schema.ts';
import type { RelayRuntime } from '../config/runtime.ts';
import { PasswordGate, PasswordGateBusyError } from '../auth/password-gate.ts';
import { MessageTooLargeError, type QueueStore, type QueuedMessage, type MessageMeta } from '../queue/store.ts';
import { DataGate, type GatedHeaders } from './data-gate.ts';
import { connectionOf, guardSession, sessionAuthenticated, type GuardedConnection } from './session-guard.ts';
import { AddressConnectionLimits } from '../limits/connection-limits.ts';
import { readProxyHeader } from './proxy-protocol.ts';
import { CidrSet } from '../util/cidr.ts';
import { smtpError } from './replies.ts';
import { receivedHeader } from './received.ts';
import { domainOf } from '../util/address.ts';
import { envelopeDsn, mailDsn, rcptDsn } from './dsn-params.ts';

/** Hooks the sender-domain features (DKIM, limits, suppression) plug into. */
export interface IntakePolicy {
  /** Before a password is checked: throw (454) when the client or login is locked out. */
  authAllowed?(ip: string, user: string): Promise<void>;
  /** After a password check, for brute-force accounting (awaited: the next attempt sees it). */
  authResult?(ip: string, user: string, ok: boolean): Promise<void>;
  /** Before RCPT is accepted: refuse with an SmtpError, or resolve. */
  checkRecipient?(rcpt: string, session: SMTPServerSession): Promise<void>;
  /** Before MAIL FROM is accepted, after the domain check (rate limits). */
  checkSender?(from: string, domain: string, session: SMTPServerSession): Promise<void>;
  /**
   * Per message: a body observer and a finalizer that sees the gated header block (sender
   * alignment, DKIM signing). Both see exactly the bytes that are stored and sent.
   */
  messageHooks?(envelope: { from: string; domain: string }): MessageHooks;
}

export interface MessageHooks {
  /** Every body byte (after the blank line) as it will be stored. */
  body?(chunk: Buffer): void;
  /** After the last byte, before the commit; may refuse (SmtpError) or add to the envelope. */
  finalize?(meta: MessageMeta, headers: GatedHeaders): Promise<Partial<MessageMeta>>;
}

export interface IntakeDeps {
  runtime(): RelayRuntime;
  store: QueueStore;
  onQueued(q: QueuedMessage): void;
  log: Logger;
  metrics: Metrics;
  tls?: { key: Buffer; cert: Buffer };
  policy?: IntakePolicy;
}

interface Listening {
  config: ListenerConfig;
  smtp: SMTPServer;
  front: net.Server; // the socket that listens: smtp-server's own, or our PROXY front
  sockets: Set<net.Socket>; // accepted TCP sockets, destroyed at the end of a shutdown
}

// ESMTP parameters of the extensions the listeners announce (SIZE, 8BITMIME, SMTPUTF8,
// DSN). Anything else is refused rather than silently ignored.
const MAIL_PARAMETERS = new Set(['SIZE', 'BODY', 'SMTPUTF8', 'RET', 'ENVID']);
const RCPT_PARAMETERS = new Set(['NOTIFY', 'ORCPT']);

function unknownParameter(address: SMTPServerAddress, known: Set<string>): string | undefined {
  if (!address.args) return undefined;
  return Object.keys(address.args).find((k) => !known.has(k.toUpperCase()));
}

/** What closeIdleSessions reads of smtp-server's SMTPConnection (send(421) also closes it). */
interface SessionInternals {
  _upgrading?: boolean;
  session?: { envelope?: { mailFrom?: unknown } };
  send(code: number, message: string, context: false): void;
}

/** How long a closed session's socket may linger for the client's FIN at the end of a shutdown. */
const SOCKET_LINGER_MS = 200;

// Old relay tricks that turn "deliver to x" into "relay to y": the percent hack, bang
// paths, source routes. A submission server has no business accepting any of them.
function relayTrick(address: string): string | undefined {
  const at = address.lastIndexOf('@');
  const local = at < 0 ? address : address.slice(0, at);
  if (at < 0) return 'an address needs a domain';
  if (address.startsWith('@') || address.includes(':')) return 'source routes are not accepted';
  if (!local.startsWith('"') && (local.includes('%') || local.includes('!') || local.includes('@'))) return 'relay paths (%, !) are not accepted';
  if (local.startsWith('"') && /[%!@]/.test(local)) return 'quoted relay paths are not accepted';
  if (!/^[^\s@]+\.[^\s@.]+$/.test(address.slice(at + 1)) && !/^\[.*\]$/.test(address.slice(at + 1))) return 'the domain is not valid';
  if (/^\[/.test(address.slice(at + 1))) return 'address literals are not accepted';
  return undefined;
}

export class Intake {
  private readonly deps: IntakeDeps;
  private readonly listeners: Listening[] = [];
  private readonly passwords = new PasswordGate(4, 100);
  private readonly addressLimits = new AddressConnectionLimits();
  // Session id -> smtp-server's connection object, for the session guard.
  private readonly connections = new Map<string, GuardedConnection>();
  // Sockets waiting for their PROXY header, per listener: capped like sessions.
  private readonly awaitingProxy = new Map<string, number>();
  // Session ids whose PROXY header named no client (LOCAL/UNKNOWN).
  private readonly sourceless = new Set<string>();
  private accepting = true;

  constructor(deps: IntakeDeps) {
    this.deps = deps;
  }

  async start(configs: ListenerConfig[]): Promise<void> {
    for (const config of configs) this.listeners.push(await this.listen(config));
  }

  /** Where each listener ended up (port 0 in tests picks a free one). */
  addresses(): Record<string, { host: string; port: number }> {
    return Object.fromEntries(this.listeners.map((l) => {
      const a = l.front.address() as net.AddressInfo;
      return [l.config.name, { host: a.address, port: a.port }];
    }));
  }

  /** New certificate and key (a renewed Secret): used by every handshake from now on. */
  updateTls(tls: { key: Buffer; cert: Buffer }): void {
    for (const l of this.listeners) l.smtp.updateSecureContext({ key: tls.key, cert: tls.cert });
  }

  get openSessions(): number {
    return this.listeners.reduce((n, l) => n + l.smtp.connections.size, 0);
  }

  /**
   * Shutdown. Stops listening; a session with no transaction open gets 421 and is closed
   * at once (also as soon as a transaction ends: a new MAIL gets 421 from checkSender); a
   * transaction may finish until `deadline` (epoch ms). Then the rest get 421 and every
   * socket is gone shortly after (a session cut mid-DATA never got its 250, so the client
   * still owns that message).
   */
  async close(deadline: number): Promise<void> {
    this.accepting = false;
    for (const l of this.listeners) l.front.close();
    // Bounded by the deadline.
    for (;;) {
      this.closeIdleSessions();
      if (this.openSessions === 0 || Date.now() >= deadline) break;
      await new Promise((r) => setTimeout(r, Math.min(50, Math.max(deadline - Date.now(), 1))));
    }
    await Promise.all(this.listeners.map((l) => new Promise<void>((resolve) => {
      l.smtp.options.closeTimeout = 1;
      l.smtp.close(() => resolve());
    })));
    // smtp-server half-closes and waits up to 5 s for the client's FIN; a client that
    // never sends it would keep the process alive that long after its 421.
    await new Promise((r) => setTimeout(r, SOCKET_LINGER_MS));
    for (const l of this.listeners) for (const socket of l.sockets) socket.destroy();
  }

  /**
   * A scale-down drain: new sessions and new transactions get 421 4.3.2 and sessions between
   * transactions are closed, while the listeners stay open (the pod keeps running to hand
   * its queue over). Off again when the drain request is withdrawn.
   */
  setDraining(on: boolean): void {
    this.accepting = !on;
    if (on) this.closeIdleSessions();
  }

  /** Sessions between transactions: smtp-server's connection objects (guarded in test/relay/shutdown.test.ts). */
  private closeIdleSessions(): void {
    for (const l of this.listeners) {
      for (const conn of (l.smtp as unknown as { connections: Set<SessionInternals> }).connections) {
        if (conn._upgrading || conn.session?.envelope?.mailFrom) continue;
        // context false: our own enhanced code (smtp-server would say 4.4.2 for a 421)
        conn.send(421, '4.3.2 Service shutting down, try again later', false);
      }
    }
  }

  private async listen(config: ListenerConfig): Promise<Listening> {
    const { log, metrics } = this.deps;
    const llog = log.child({ listener: config.name });
    const limits = this.deps.runtime().config.limits;
    const tlsConfig = this.deps.runtime().config.tls;
    const plain = config.mode === 'plain';
    const counted = new Set<string>();
    const options = {
      name: this.deps.runtime().config.hostname,
      banner: 'MailFleet ESMTP',
      secure: config.mode === 'implicit',
      ...(this.deps.tls ? { key: this.deps.tls.key, cert: this.deps.tls.cert } : { hideSTARTTLS: true }),
      // smtp-server's own default would take TLS 1.0 and CBC suites.
      minVersion: tlsConfig.minVersion,
      ciphers: tlsConfig.ciphers,
      honorCipherOrder: true,
      authMethods: ['PLAIN', 'LOGIN'],
      allowInsecureAuth: false,
      authOptional: plain,
      disabledCommands: plain ? ['AUTH'] : [],
      size: limits.maxMessageSize,
      rejectOversized: true,
      maxRecipients: limits.maxRecipients,
      maxClients: limits.maxClients,
      // smtp-server's one idle timeout is the short pre-auth one (it also bounds the TLS
      // handshake and greeting-to-EHLO); guardSession gives authenticated and trusted
      // sessions limits.socketTimeout.
      socketTimeout: limits.preAuthTimeout,
      closeTimeout: limits.drainTimeout,
      greetingDelayMs: limits.greetingDelay,
      hideENHANCEDSTATUSCODES: false,
      // DSN parameters are kept in the queue record and passed on (dsn-params.ts, queue/dsn.ts)
      hideDSN: false,
      disableReverseLookup: true,
      logger: false,
      onConnect: (session: SMTPServerSession, cb: (err?: Error | null) => void) => {
        metrics.connections.inc({ listener: config.name });
        // smtp-server calls onClose also for connections it refused before onConnect
        // (maxClients): only sessions counted here are counted down there.
        counted.add(session.id);
        metrics.activeSessions.inc({ listener: config.name });
        if (!this.accepting) return cb(smtpError(421, '4.3.2', 'Service shutting down, try again later'));
        // AUTH is not even announced before TLS, so no client is tempted to send a password in clear.
        if (config.mode === 'starttls') session.disabledCommands = ['AUTH'];
        const rt = this.deps.runtime();
        const sourceless = this.sourceless.has(session.id);
        const trusted = !sourceless && rt.isTrusted(session.remoteAddress);
        if (plain && !sourceless && !trusted) {
          metrics.refusals.inc({ reason: 'untrusted_network' });
          llog.warn({ client: session.remoteAddress }, 'plain listener refused an untrusted client');
          return cb(smtpError(554, '5.7.1', `${session.remoteAddress} is not in a trusted network; use the submission port with AUTH`));
        }
        const exempt = sourceless || trusted;
        if (!exempt) {
          const refusal = this.addressLimits.admit(session.remoteAddress, session.id, rt.config.limits.maxConnectionsPerAddress, rt.config.limits.maxNewConnectionsPerMinutePerAddress);
          if (refusal) {
            metrics.refusals.inc({ reason: refusal === 'concurrent' ? 'address_concurrency' : 'address_rate' });
            llog.info({ client: session.remoteAddress, limit: refusal }, 'connection refused: per-address limit');
            return cb(smtpError(421, '4.7.0', refusal === 'concurrent'
              ? `Too many connections from ${session.remoteAddress} (limit ${rt.config.limits.maxConnectionsPerAddress}), try again later`
              : `Too many new connections from ${session.remoteAddress} per minute (limit ${rt.config.limits.maxNewConnectionsPerMinutePerAddress}), try again later`));
          }
        }
        const conn = connectionOf(smtp, session);
        if (conn) {
          this.connections.set(session.id, conn);
          guardSession(conn, {
            exempt, longTimeoutMs: rt.config.limits.socketTimeout, shortTimeoutMs: rt.config.limits.preAuthTimeout,
            maxCommandsBeforeAuth: rt.config.limits.maxCommandsBeforeAuth,
            onCommandCap: () => {
              metrics.refusals.inc({ reason: 'commands_before_auth' });
              llog.info({ client: session.remoteAddress }, 'connection closed: too many commands before authentication');
            },
          });
        }
        cb();
      },
      onSecure: (_socket: unknown, session: SMTPServerSession, cb: (err?: Error | null) => void) => {
        if (config.mode === 'starttls') session.disabledCommands = [];
        cb();
      },
      onAuth: (auth: SMTPServerAuthentication, session: SMTPServerSession, cb: (err: Error | null | undefined, response?: { user: string }) => void) => {
        this.authenticate(auth, session).then((user) => {
          metrics.authSuccesses.inc({ mechanism: auth.method });
          llog.info({ client: session.remoteAddress, user }, 'auth ok');
          sessionAuthenticated(this.connections.get(session.id), this.deps.runtime().config.limits.socketTimeout);
          cb(null, { user });
        }, (err: Error) => cb(err));
      },
      onMailFrom: (address: SMTPServerAddress, session: SMTPServerSession, cb: (err?: Error | null) => void) => {
        const unknown = unknownParameter(address, MAIL_PARAMETERS);
        if (unknown) return cb(smtpError(555, '5.5.4', `MAIL parameter ${unknown} is not supported`));
        const dsn = mailDsn(address);
        if (dsn instanceof Error) return cb(dsn);
        this.checkSender(address.address, session, config.mode === 'plain').then(() => cb(), (err: Error) => {
          metrics.refusals.inc({ reason: 'sender' });
          llog.warn({ client: session.remoteAddress, user: session.user, from: address.address, reply: err.message }, 'sender refused');
          cb(err);
        });
      },
      onRcptTo: (address: SMTPServerAddress, session: SMTPServerSession, cb: (err?: Error | null) => void) => {
        const unknown = unknownParameter(address, RCPT_PARAMETERS);
        if (unknown) return cb(smtpError(555, '5.5.4', `RCPT parameter ${unknown} is not supported`));
        const dsn = rcptDsn(address, session);
        if (dsn instanceof Error) return cb(dsn);
        this.checkRecipient(address.address, session).then(() => cb(), (err: Error) => {
          metrics.refusals.inc({ reason: 'recipient' });
          llog.info({ client: session.remoteAddress, rcpt: address.address, reply: err.message }, 'recipient refused');
          cb(err);
        });
      },
      onData: (stream: SMTPServerDataStream, session: SMTPServerSession, cb: (err?: Error | null, message?: string) => void) => {
        this.receive(stream, session, config.name).then((q) => cb(null, `2.0.0 Ok: queued as ${q.meta.id}`), (err: Error) => {
          stream.resume(); // drain whatever is left so the session can go on
          if (err instanceof MessageTooLargeError) {
            metrics.refusals.inc({ reason: 'size' });
            return cb(smtpError(552, '5.3.4', `Message too big (limit ${limits.maxMessageSize} bytes)`));
          }
          if ('responseCode' in err) return cb(err);
          llog.error({ client: session.remoteAddress, err: err.message }, 'queue write failed');
          cb(smtpError(451, '4.3.0', 'Local error writing the queue, try again later'));
        });
      },
      onClose: (session: SMTPServerSession | undefined) => {
        if (!session) return;
        this.sourceless.delete(session.id);
        this.connections.delete(session.id);
        this.addressLimits.release(session.id);
        if (counted.delete(session.id)) metrics.activeSessions.dec({ listener: config.name });
      },
    };
    const smtp = new SMTPServer(options as SMTPServerOptions);
    const listening: Listening = { config, smtp, front: smtp.server, sockets: new Set() };
    smtp.on('error', (err: Error) => llog.debug({ err: err.message }, 'smtp session error'));
    if (config.proxyProtocol) listening.front = this.proxyFront(config, smtp, llog);
    listening.front.on('connection', (socket: net.Socket) => {
      listening.sockets.add(socket);
      socket.once('close', () => listening.sockets.delete(socket));
    });
    await new Promise<void>((resolve, reject) => {
      listening.front.once('error', reject);
      listening.front.listen(config.port, config.host, () => { listening.front.removeListener('error', reject); resolve(); });
    });
    llog.info({ address: listening.front.address(), mode: config.mode, proxyProtocol: config.proxyProtocol }, 'listening');
    return listening;
  }

  // A TCP front that reads the PROXY header (v1 or v2) and then hands the socket to
  // smtp-server with the client's real address, doing the implicit TLS handshake first.
  private proxyFront(config: ListenerConfig, smtp: SMTPServer, llog: Logger): net.Server {
    const allowed = config.proxyFrom.length ? new CidrSet(config.proxyFrom) : undefined;
    return net.createServer((socket) => {
      socket.setNoDelay(true);
      socket.on('error', () => socket.destroy());
      if (allowed && !allowed.has(socket.remoteAddress ?? '')) {
        llog.warn({ peer: socket.remoteAddress }, 'PROXY header from a peer not in proxyFrom');
        socket.destroy();
        return;
      }
      const limits = this.deps.runtime().config.limits;
      const waiting = this.awaitingProxy.get(config.name) ?? 0;
      if (waiting >= limits.maxClients) {
        llog.warn({ peer: socket.remoteAddress, waiting }, 'too many connections waiting for a PROXY header: dropped');
        socket.destroy();
        return;
      }
      this.awaitingProxy.set(config.name, waiting + 1);
      const settled = () => this.awaitingProxy.set(config.name, (this.awaitingProxy.get(config.name) ?? 1) - 1);
      readProxyHeader(socket, limits.preAuthTimeout).finally(settled).then((info) => {
        const opts = {
          id: randomBytes(8).toString('hex'),
          remoteAddress: info.remoteAddress ?? socket.remoteAddress,
          remotePort: info.remotePort ?? socket.remotePort,
        };
        // LOCAL (a balancer's health check) or UNKNOWN: no client address. The balancer's
        // own address stands in so the greeting is served, but it must not lend its trust:
        // such a session may not AUTH or send.
        if (!info.remoteAddress) {
          this.sourceless.add(opts.id);
          llog.debug({ peer: socket.remoteAddress }, 'PROXY header without a client address (LOCAL/UNKNOWN): session may not send');
        }
        if (config.mode !== 'implicit') {
          socket.resume();
          return smtp.connect(socket, opts);
        }
        // _upgrade is smtp-server's own implicit-TLS handshake (SNI, its secure contexts);
        // test/unit/dependency-guards.test.ts fails if an upgrade removes it.
        smtp._upgrade(socket, (err, tls) => {
          if (err || !tls) return socket.destroy();
          smtp.connect(tls, opts);
        });
      }, (err: Error) => {
        llog.warn({ peer: socket.remoteAddress, err: err.message }, 'bad PROXY header');
        socket.destroy();
      });
    });
  }

  private async authenticate(auth: SMTPServerAuthentication, session: SMTPServerSession): Promise<string> {
    const { metrics, log } = this.deps;
    const user = auth.username ?? '';
    if (this.sourceless.has(session.id)) throw smtpError(530, '5.7.0', 'No client address (PROXY LOCAL/UNKNOWN): authentication is not possible on this connection');
    await this.deps.policy?.authAllowed?.(session.remoteAddress, user);
    const rt = this.deps.runtime();
    const login = rt.logins.get(user);
    const t = rt.config.authThrottle;
    this.passwords.configure(t.maxConcurrentPasswordChecks, t.maxWaitingPasswordChecks);
    let ok: boolean;
    try {
      // Unknown users are checked against a dummy hash with the default cost: the same
      // time, the same memory, the same queue as a real login.
      ok = await this.passwords.verify(auth.password ?? '', login?.passwordHash ?? DUMMY_HASH);
    } catch (err) {
      if (!(err instanceof PasswordGateBusyError)) throw err;
      metrics.authFailures.inc({ reason: 'busy' });
      throw smtpError(454, '4.7.0', 'Too many authentication attempts in progress, try again later');
    }
    await this.deps.policy?.authResult?.(session.remoteAddress, user, Boolean(login && ok));
    if (!login || !ok) {
      metrics.authFailures.inc({ reason: login ? 'bad_password' : 'unknown_user' });
      log.warn({ client: session.remoteAddress, user: auth.username }, 'auth failed');
      throw smtpError(535, '5.7.8', 'Authentication credentials invalid');
    }
    return login.username;
  }

  private allowedDomains(session: SMTPServerSession): Set<string> {
    const rt = this.deps.runtime();
    if (session.user) return rt.logins.get(String(session.user))?.domains ?? new Set();
    if (this.sourceless.has(session.id)) return new Set();
    return rt.domainsForClient(session.remoteAddress);
  }

  private async checkSender(from: string, session: SMTPServerSession, plainListener: boolean): Promise<void> {
    if (!this.accepting) throw smtpError(421, '4.3.2', 'Service shutting down, try again later');
    // Sending without AUTH is for trusted networks on the plain listener only.
    if (!session.user && !plainListener) throw smtpError(530, '5.7.0', 'Authentication required');
    const allowed = this.allowedDomains(session);
    if (!session.user && allowed.size === 0) throw smtpError(530, '5.7.0', 'Authentication required');
    if (from === '') throw smtpError(550, '5.7.1', 'The null sender is not accepted for submission');
    const trick = relayTrick(from);
    if (trick) throw smtpError(553, '5.1.7', `Sender address rejected: ${trick}`);
    const domain = domainOf(from);
    if (!allowed.has(domain)) {
      const who = session.user ? `login ${String(session.user)}` : `client ${session.remoteAddress}`;
      throw smtpError(550, '5.7.1', `Sender domain ${domain} is not allowed for ${who}`);
    }
    await this.deps.policy?.checkSender?.(from, domain, session);
  }

  private async checkRecipient(rcpt: string, session: SMTPServerSession): Promise<void> {
    const trick = relayTrick(rcpt);
    if (trick) throw smtpError(553, '5.1.3', `Recipient address rejected: ${trick}`);
    await this.deps.policy?.checkRecipient?.(rcpt, session);
  }

  private async receive(stream: SMTPServerDataStream, session: SMTPServerSession, listener: string): Promise<QueuedMessage> {
    const { store, metrics, log } = this.deps;
    const rt = this.deps.runtime();
    const from = session.envelope.mailFrom ? session.envelope.mailFrom.address : '';
    const recipients = session.envelope.rcptTo.map((r) => r.address);
    const domain = domainOf(from);
    const envelope: Omit<MessageMeta, 'id' | 'size' | 'receivedAt'> = {
      from, recipients, senderDomain: domain, ...envelopeDsn(session),
      client: { address: session.remoteAddress, listener, ...(session.user ? { user: String(session.user) } : {}), ...(session.hostNameAppearsAs ? { helo: session.hostNameAppearsAs } : {}) },
    };
    const started = process.hrtime.bigint();
    const limits = rt.config.limits;
    const gate = new DataGate({ bareLineEndings: limits.bareLineEndings, maxHeaderBytes: limits.maxHeaderBytes, maxMessageBytes: limits.maxMessageSize });
    const hooks = this.deps.policy?.messageHooks?.({ from, domain }) ?? {};
    gate.onBody = hooks.body;
    const q = await store.accept(envelope, gate.filter(stream), {
      maxSize: limits.maxMessageSize,
      finalize: async (meta) => {
        const headers = gate.headers!; // the gate throws before the store finalizes without one
        const received = receivedHeader(meta, session, rt.config.hostname, listener);
        const more = hooks.finalize ? await hooks.finalize(meta, headers) : {};
        return { ...more, prepend: `${received}${more.prepend ?? ''}` };
      },
    });
    if (gate.normalized) log.info({ queueId: q.meta.id, client: session.remoteAddress }, 'bare CR/LF normalized to CRLF');
    metrics.intakeDuration.observe(Number(process.hrtime.bigint() - started) / 1e9);
    metrics.received.inc({ listener });
    metrics.receivedBytes.inc(q.meta.size);
    log.info({ queueId: q.meta.id, from, rcpts: recipients.length, size: q.meta.size, client: session.remoteAddress, user: session.user, listener }, 'queued');
    this.deps.onQueued(q);
    return q;
  }
}

// A valid hash of a random password: verifying against it costs what a real check costs.
const DUMMY_HASH = 'scrypt$16384$8$1$c2FsdHNhbHRzYWx0c2FsdA==$3mJ3t0mZJ6l5oWqvB1l6H2pWwQ4QhPqv0i3hG9o3R7Q=';
