// The internal hand-off listener: where a draining relay of the same fleet hands over its
// queue (docs/operator.md, "Scale-down, deletion and queued mail"). SMTP with STARTTLS
// required before AUTH CRAM-MD5 with the fleet token (the token itself never crosses the
// wire), reachable only from the fleet's pods (the operator's NetworkPolicy). What arrives
// was checked when it first came in: no sender policy, no From alignment, no DKIM signing
// again; the message is queued with the record that travelled with it (envelope, DSN
// parameters, arrival time, recipients done), so it keeps its remaining lifetime.
import fs from 'node:fs';
import type net from 'node:net';
import { SMTPServer, type SMTPServerOptions, type SMTPServerSession, type SMTPServerAddress, type SMTPServerDataStream, type SMTPServerAuthentication } from 'smtp-server';
import type { Logger } from '../log.ts';
import { QueueImportError, MessageTooLargeError, type QueuedMessage, type QueueStore } from '../queue/store.ts';
import { smtpError } from '../smtp/replies.ts';
import { decodeRecord, openRecipients, receiptFor, MAX_RECORD_LINE, RecordError, type HandoffRecord } from './record.ts';
import type { HandoffConfig } from './schema.ts';

export const HANDOFF_USER = 'mailfleet-handoff';

export interface ReceiverDeps {
  config(): HandoffConfig;
  hostname: string;
  tls: { key: Buffer; cert: Buffer };
  minTlsVersion: 'TLSv1.2' | 'TLSv1.3';
  ciphers: string;
  maxMessageSize(): number;
  store: QueueStore;
  onQueued(q: QueuedMessage): void;
  /** A draining relay takes no hand-offs: it is leaving too. */
  draining(): boolean;
  log: Logger;
}

/** Reads the fleet token; an empty or unreadable file opens nothing. */
export function readFleetToken(file: string): string {
  return fs.readFileSync(file, 'utf8').trim();
}

/** Splits the DATA stream into its first line (the record) and the rest (the message). */
async function splitFirstLine(stream: AsyncIterable<Buffer>): Promise<{ line: string; rest: AsyncIterable<Buffer> }> {
  const it = stream[Symbol.asyncIterator]();
  let head = Buffer.alloc(0);
  // Bounded: MAX_RECORD_LINE bytes at most.
  for (;;) {
    const end = head.indexOf('\r\n');
    if (end >= 0) {
      const leftover = head.subarray(end + 2);
      async function* rest(): AsyncGenerator<Buffer> {
        if (leftover.length) yield leftover;
        for (let r = await it.next(); !r.done; r = await it.next()) yield r.value;
      }
      return { line: head.subarray(0, end).toString('latin1'), rest: rest() };
    }
    if (head.length > MAX_RECORD_LINE) throw new RecordError(`the record line is longer than ${MAX_RECORD_LINE} bytes`);
    const r = await it.next();
    if (r.done) throw new RecordError('the DATA ended before the record line did');
    head = Buffer.concat([head, r.value]);
  }
}

export class HandoffReceiver {
  private readonly deps: ReceiverDeps;
  private smtp!: SMTPServer;
  private readonly sockets = new Set<net.Socket>();

  constructor(deps: ReceiverDeps) {
    this.deps = deps;
  }

  async start(): Promise<void> {
    const { log } = this.deps;
    const llog = log.child({ listener: 'handoff' });
    const options = {
      name: this.deps.hostname,
      banner: 'MailFleet hand-off',
      secure: false,
      key: this.deps.tls.key, cert: this.deps.tls.cert,
      minVersion: this.deps.minTlsVersion, ciphers: this.deps.ciphers, honorCipherOrder: true,
      authMethods: ['CRAM-MD5'],
      allowInsecureAuth: false,
      size: this.deps.maxMessageSize() + MAX_RECORD_LINE,
      // a record may carry every recipient of a message; the sender's limit already applied
      maxRecipients: 100_000,
      maxClients: 64,
      socketTimeout: 120_000,
      hideENHANCEDSTATUSCODES: false,
      hideDSN: true,
      disableReverseLookup: true,
      logger: false,
      onConnect: (session: SMTPServerSession, cb: (err?: Error | null) => void) => {
        if (this.deps.draining()) return cb(smtpError(421, '4.3.2', 'This relay is draining itself; hand off to another'));
        llog.debug({ client: session.remoteAddress }, 'hand-off session');
        cb();
      },
      onAuth: (auth: SMTPServerAuthentication, session: SMTPServerSession, cb: (err: Error | null | undefined, response?: { user: string }) => void) => {
        let token = '';
        try {
          token = readFleetToken(this.deps.config().tokenFile);
        } catch (err) {
          llog.error({ err: (err as Error).message }, 'fleet token file unreadable');
        }
        if (auth.method === 'CRAM-MD5' && auth.username === HANDOFF_USER && token && auth.validatePassword(token)) return cb(null, { user: HANDOFF_USER });
        llog.warn({ client: session.remoteAddress, user: auth.username }, 'hand-off auth failed');
        cb(smtpError(535, '5.7.8', 'Authentication credentials invalid'));
      },
      onMailFrom: (_address: SMTPServerAddress, session: SMTPServerSession, cb: (err?: Error | null) => void) => {
        if (session.user !== HANDOFF_USER) return cb(smtpError(530, '5.7.0', 'Authentication required'));
        if (this.deps.draining()) return cb(smtpError(421, '4.3.2', 'This relay is draining itself; hand off to another'));
        cb();
      },
      onData: (stream: SMTPServerDataStream, session: SMTPServerSession, cb: (err?: Error | null, message?: string) => void) => {
        this.receive(stream, session).then(({ id, existed, receipt }) => cb(null, `2.0.0 Ok: ${existed ? 'already queued' : 'handed off'} as ${id}${receipt ? ` receipt=${receipt}` : ''}`), (err: Error) => {
          stream.resume();
          if (err instanceof RecordError) return cb(smtpError(554, '5.6.0', err.message));
          if (err instanceof MessageTooLargeError) return cb(smtpError(552, '5.3.4', err.message));
          if (err instanceof QueueImportError) return cb(smtpError(554, '5.6.0', err.message));
          if ('responseCode' in err) return cb(err);
          llog.error({ client: session.remoteAddress, err: err.message }, 'hand-off queue write failed');
          cb(smtpError(451, '4.3.0', 'Local error writing the queue, try again later'));
        });
      },
    };
    this.smtp = new SMTPServer(options as SMTPServerOptions);
    this.smtp.on('error', (err: Error) => llog.debug({ err: err.message }, 'hand-off session error'));
    this.smtp.server.on('connection', (socket: net.Socket) => {
      this.sockets.add(socket);
      socket.once('close', () => this.sockets.delete(socket));
    });
    const { host, port } = this.deps.config();
    await new Promise<void>((resolve, reject) => {
      this.smtp.server.once('error', reject);
      this.smtp.listen(port, host, () => { this.smtp.server.removeListener('error', reject); resolve(); });
    });
    llog.info({ address: this.smtp.server.address() }, 'hand-off listener ready');
  }

  address(): { host: string; port: number } {
    const a = this.smtp.server.address() as net.AddressInfo;
    return { host: a.address, port: a.port };
  }

  /** Hand-off sessions open now: one may still commit a message here. */
  get openSessions(): number {
    return this.smtp?.connections.size ?? 0;
  }

  updateTls(tls: { key: Buffer; cert: Buffer }): void {
    this.smtp.updateSecureContext({ key: tls.key, cert: tls.cert });
  }

  /** Closes the listener; a transaction in progress is cut (its sender still owns the message). */
  async close(): Promise<void> {
    if (!this.smtp) return;
    this.smtp.options.closeTimeout = 1;
    await new Promise<void>((resolve) => this.smtp.close(() => resolve()));
    for (const s of this.sockets) s.destroy();
  }

  private async receive(stream: SMTPServerDataStream, session: SMTPServerSession): Promise<{ id: string; existed: boolean; receipt?: string }> {
    const { line, rest } = await splitFirstLine(stream as AsyncIterable<Buffer>);
    const { receipt: asked, ...record }: HandoffRecord = decodeRecord(line);
    // Read before the message is queued: a token that went unreadable since AUTH is a 451
    // the sender retries, not a queued copy it cannot be told about.
    const receipt = asked ? receiptFor(readFleetToken(this.deps.config().tokenFile), record.meta.id, asked.nonce) : undefined;
    const from = session.envelope.mailFrom ? session.envelope.mailFrom.address : '';
    const rcpts = session.envelope.rcptTo.map((r) => r.address);
    const open = openRecipients(record);
    // The envelope on the wire and the record must tell the same story.
    if (from !== record.meta.from || rcpts.length !== open.length || rcpts.some((r, i) => r !== open[i])) {
      throw new RecordError('the envelope (MAIL FROM, RCPT TO) does not match the record\'s sender and open recipients');
    }
    const log = this.deps.log.child({ queueId: record.meta.id });
    try {
      const q = await this.deps.store.acceptHandoff(record.meta, record.state, rest, this.deps.maxMessageSize());
      log.info({ from: record.meta.from, rcpts: open.length, receivedAt: new Date(record.meta.receivedAt).toISOString(), attempts: record.state.attempts, client: session.remoteAddress }, 'handed-off message queued');
      this.deps.onQueued(q);
      return { id: q.meta.id, existed: false, ...(receipt ? { receipt } : {}) };
    } catch (err) {
      if (err instanceof QueueImportError && err.reason === 'exists') {
        // Sent again after a lost 250: it is here already; the sender may drop its copy.
        for await (const _ of rest) { /* drain */ }
        log.info({ client: session.remoteAddress }, 'handed-off message was already queued');
        return { id: record.meta.id, existed: true, ...(receipt ? { receipt } : {}) };
      }
      throw err;
    }
  }
}
