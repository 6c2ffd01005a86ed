// A real SMTP destination (smtp-server) for relay tests: it accepts mail on a chosen
// loopback address and port, records what it got, and can be scripted to answer like a
// difficult peer (4xx/5xx per recipient or per message, 421 greeting, AUTH, TLS modes).
// It is also used by throughput tests, so recording is cheap: messages are hashed while
// they stream in, and their bytes are kept only when `keepData` is on (the default).
//
// Replies are sent verbatim: the sink does not advertise ENHANCEDSTATUSCODES (so
// smtp-server adds none), and a scripted message such as '5.1.1 no such user' yields
// exactly '550 5.1.1 no such user'.
import { createHash } from 'node:crypto';
import type { AddressInfo, Socket } from 'node:net';
import { SMTPServer } from 'smtp-server';
import type { SMTPServerOptions, SMTPServerSession } from 'smtp-server';
import { testCert } from './certs.ts';

export interface SinkMessage {
  from: string;              // envelope sender, '' for the null sender
  to: string[];              // accepted recipients of this transaction
  data?: Buffer;             // the message bytes (absent when keepData is false)
  size: number;
  sha256: string;            // hex digest of the message bytes
  remoteAddress: string;
  secure: boolean;           // TLS was in use (implicit or STARTTLS)
  authUser?: string;
  connection: number;        // 1-based index of the connection that carried it
  mailArgs: Record<string, unknown>;  // ESMTP parameters of MAIL FROM (upper-case keys), e.g. { SMTPUTF8: true }
  helo: string;              // the name the client gave in EHLO/HELO
}

export interface Reply { code: number; message: string }

export interface SinkOptions {
  host?: string;             // default '127.0.0.1'; any 127.0.0.0/8 address works on Linux
  port?: number;             // default 0 (a free port)
  /**
   * 'starttls' (default): STARTTLS advertised and accepted.
   * 'hidden': not advertised, still accepted if a client sends it anyway (smtp-server's hideSTARTTLS).
   * 'none': neither advertised nor accepted, like a server without TLS.
   * 'implicit': TLS from the first byte (port 465 style).
   */
  tls?: 'starttls' | 'hidden' | 'none' | 'implicit';
  /** Require AUTH (PLAIN/LOGIN) with these credentials before MAIL. */
  auth?: { user: string; pass: string };
  /**
   * Require AUTH XOAUTH2: called with the user and bearer token; undefined accepts, an
   * object is the failure challenge (sent base64 in a 334, then 535, like Gmail).
   */
  xoauth2?: (user: string, token: string) => Record<string, unknown> | undefined;
  /** Keep message bytes in memory (default true). Turn off for large or many messages. */
  keepData?: boolean;
  /** Reply to the greeting instead of 220, e.g. {code: 421, ...}; `connection` is 1-based. */
  greetingReply?: (connection: number) => Reply | undefined;
  /** Reply to MAIL FROM; `attempt` counts transactions from this sender, 1-based. */
  mailReply?: (from: string, attempt: number) => Reply | undefined;
  /** Reply to RCPT TO; `attempt` counts how often this recipient was offered, 1-based. */
  rcptReply?: (rcpt: string, attempt: number) => Reply | undefined;
  /** Reply to the end of DATA; `attempt` counts messages received, 1-based. */
  dataReply?: (message: SinkMessage, attempt: number) => Reply | undefined;
  /** Holds each end-of-DATA reply this long, to make concurrency observable. */
  dataDelayMs?: number;
  /** Announce SMTPUTF8 in EHLO (default true; false is a hop like Postfix's smtp-sink without it). */
  smtputf8?: boolean;
  /** Maximum message size advertised with SIZE (default 50 MB). */
  size?: number;
  /** Announce DSN in EHLO (default true; false is a hop that takes no NOTIFY/ORCPT/RET/ENVID). */
  dsn?: boolean;
  /** TLS key and certificate (PEM); default the self-signed testCert() for loopback names. */
  cert?: { key: string; cert: string };
}

export interface Sink {
  host: string;
  port: number;
  messages: SinkMessage[];
  /** Every MAIL FROM the sink was given (accepted or not), with its ESMTP parameters. */
  mailCommands: { address: string; args: Record<string, unknown> }[];
  /** Every RCPT TO the sink was given (accepted or not), with its ESMTP parameters. */
  rcptCommands: { address: string; args: Record<string, unknown> }[];
  /** TCP connections accepted so far. */
  connections(): number;
  /** Largest number of connections that were open at the same time. */
  maxConcurrent(): number;
  /** Resolves once `count` messages were accepted; rejects after timeoutMs, saying what arrived. */
  waitFor(count: number, timeoutMs?: number): Promise<SinkMessage[]>;
  close(): Promise<void>;
}

function replyError(reply: Reply): Error & { responseCode: number } {
  return Object.assign(new Error(reply.message), { responseCode: reply.code });
}

export async function startSink(opts: SinkOptions = {}): Promise<Sink> {
  const host = opts.host ?? '127.0.0.1';
  const tlsMode = opts.tls ?? 'starttls';
  const keepData = opts.keepData ?? true;
  const messages: SinkMessage[] = [];
  const mailCommands: Sink['mailCommands'] = [];
  const rcptCommands: Sink['rcptCommands'] = [];
  const waiters = new Set<() => void>();
  const mailAttempts = new Map<string, number>();
  const rcptAttempts = new Map<string, number>();
  const connIndex = new WeakMap<object, number>();
  let dataAttempts = 0;
  let connections = 0;
  let open = 0;
  let maxOpen = 0;
  const sockets = new Set<Socket>();

  const bump = (m: Map<string, number>, key: string) => {
    const n = (m.get(key) ?? 0) + 1;
    m.set(key, n);
    return n;
  };

  const { key, cert } = opts.cert ?? testCert();
  const options: SMTPServerOptions = {
    secure: tlsMode === 'implicit',
    key,
    cert,
    hideSTARTTLS: tlsMode === 'hidden',
    disabledCommands: [
      ...(tlsMode === 'none' ? ['STARTTLS'] : []),
      ...(opts.auth || opts.xoauth2 ? [] : ['AUTH']),
    ],
    authMethods: opts.xoauth2 ? ['PLAIN', 'LOGIN', 'XOAUTH2'] : ['PLAIN', 'LOGIN'],
    // a test sink without TLS still has to accept AUTH, or the 'none' + auth combination is untestable
    allowInsecureAuth: true,
    authOptional: !opts.auth && !opts.xoauth2,
    hideENHANCEDSTATUSCODES: true,
    hideSMTPUTF8: opts.smtputf8 === false,
    hideDSN: opts.dsn === false,
    size: opts.size ?? 50 * 1024 * 1024,
    logger: false,
    banner: 'mailfleet test sink',
    // a stopped sink must not wait for pooled client connections to say QUIT
    closeTimeout: 100,
    onConnect(session, callback) {
      const n = connections; // counted on the TCP 'connection' event, before this runs
      connIndex.set(session, n);
      const reply = opts.greetingReply?.(n);
      callback(reply ? replyError(reply) : null);
    },
    onAuth(auth, _session, callback) {
      if (auth.method === 'XOAUTH2' && opts.xoauth2) {
        const challenge = opts.xoauth2(auth.username ?? '', auth.accessToken ?? '');
        callback(null, challenge ? { data: challenge } : { user: auth.username });
        return;
      }
      if (opts.auth && auth.username === opts.auth.user && auth.password === opts.auth.pass) {
        callback(null, { user: auth.username });
        return;
      }
      callback(Object.assign(new Error('5.7.8 authentication failed'), { responseCode: 535 }));
    },
    onMailFrom(address, _session, callback) {
      mailCommands.push({ address: address.address, args: { ...(address.args || {}) } });
      const reply = opts.mailReply?.(address.address, bump(mailAttempts, address.address));
      callback(reply ? replyError(reply) : null);
    },
    onRcptTo(address, _session, callback) {
      rcptCommands.push({ address: address.address, args: { ...(address.args || {}) } });
      const reply = opts.rcptReply?.(address.address, bump(rcptAttempts, address.address.toLowerCase()));
      callback(reply ? replyError(reply) : null);
    },
    onData(stream, session, callback) {
      const hash = createHash('sha256');
      const chunks: Buffer[] = [];
      let size = 0;
      stream.on('data', (chunk: Buffer) => {
        hash.update(chunk);
        size += chunk.length;
        if (keepData) chunks.push(chunk);
      });
      stream.once('error', (err) => callback(err));
      stream.once('end', () => {
        const msg: SinkMessage = {
          from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
          to: session.envelope.rcptTo.map((r) => r.address),
          ...(keepData ? { data: Buffer.concat(chunks) } : {}),
          size,
          sha256: hash.digest('hex'),
          remoteAddress: session.remoteAddress,
          secure: sessionSecure(session),
          ...(typeof session.user === 'string' ? { authUser: session.user } : {}),
          connection: connIndex.get(session) ?? 0,
          mailArgs: { ...(session.envelope.mailFrom ? session.envelope.mailFrom.args || {} : {}) },
          helo: session.hostNameAppearsAs,
        };
        const finish = () => {
          const reply = opts.dataReply?.(msg, ++dataAttempts);
          if (reply) {
            callback(replyError(reply));
            return;
          }
          messages.push(msg);
          for (const w of waiters) w();
          callback(null, 'queued by mailfleet test sink');
        };
        if (opts.dataDelayMs) setTimeout(finish, opts.dataDelayMs);
        else finish();
      });
    },
  };
  const server = new SMTPServer(options);
  server.on('error', () => { /* client resets and TLS failures are part of the tests */ });

  const net = (server as unknown as { server: import('node:net').Server }).server;
  net.on('connection', (socket: Socket) => {
    connections++;
    open++;
    maxOpen = Math.max(maxOpen, open);
    sockets.add(socket);
    socket.once('close', () => { open--; sockets.delete(socket); });
  });

  await new Promise<void>((resolve, reject) => {
    net.once('error', reject);
    server.listen(opts.port ?? 0, host, () => { net.off('error', reject); resolve(); });
  });
  const port = (net.address() as AddressInfo).port;

  return {
    host,
    port,
    messages,
    mailCommands,
    rcptCommands,
    connections: () => connections,
    maxConcurrent: () => maxOpen,
    waitFor(count, timeoutMs = 10_000) {
      return new Promise((resolve, reject) => {
        if (messages.length >= count) { resolve(messages); return; }
        const check = () => {
          if (messages.length < count) return;
          clearTimeout(timer);
          waiters.delete(check);
          resolve(messages);
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`sink ${host}:${port}: ${messages.length} of ${count} messages after ${timeoutMs} ms ` +
            `(${connections} connections; recipients so far: ${messages.flatMap((m) => m.to).slice(0, 20).join(', ')})`));
        }, timeoutMs);
        waiters.add(check);
      });
    },
    async close() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        // pooled clients keep idle connections open; end them so close() returns promptly
        for (const s of sockets) s.destroy();
      });
    },
  };
}

function sessionSecure(session: SMTPServerSession): boolean {
  return Boolean((session as SMTPServerSession & { secure?: boolean }).secure);
}
