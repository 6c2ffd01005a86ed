// The durable queue. One file per message, written while DATA streams in (bounded memory),
// with the envelope appended as a trailer. A message counts as accepted only when its file
// is fsync'd, renamed from tmp/ into msg/ and msg/ itself is fsync'd; that directory fsync
// is shared by every arrival that is waiting for it (group commit), so concurrent sessions
// pay for one directory sync instead of one each. docs/queue.md has the full design.
import crypto from 'node:crypto';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { closeFd, fdatasync, openFd, rename, unlink, writeAll } from '../util/fd.ts';
import { fsyncPath } from '../util/fsync.ts';
import { storedDsnProblem, type StoredDsn } from './dsn.ts';
import { MemoryCopies } from './memory-copies.ts';

export interface ClientInfo {
  address: string;
  listener: string;
  user?: string;
  helo?: string;
}

/** The envelope trailer of a queue file. DSN parameters (RET, ENVID, NOTIFY, ORCPT): dsn.ts. */
export interface MessageMeta extends StoredDsn {
  id: string;
  from: string; // '' is the null sender (DSNs)
  recipients: string[];
  receivedAt: number;
  size: number; // bytes of the message as received (no prepend)
  prepend?: string; // header lines put in front at delivery: Received, DKIM-Signature
  isDsn?: boolean; // a bounce: never bounced itself
  senderDomain?: string;
  client?: ClientInfo;
}

export type FinalStatus = 'delivered' | 'failed' | 'expired';
export interface RecipientResult {
  status: FinalStatus;
  response: string;
  code?: number;
  enhanced?: string;
  remote?: string;
  at: number;
  /**
   * Delivered to a next hop that announced DSN, with the recipient's DSN parameters:
   * notices after that hop are its business (RFC 3461 §5.2.2). Absent (older records, or a
   * hop without DSN): a NOTIFY=SUCCESS recipient gets a "relayed" notice from this relay.
   */
  nextHopDsn?: boolean;
}

export interface DeliveryState {
  attempts: number;
  nextAttemptAt: number;
  done: Record<string, RecipientResult>;
  lastResponse?: string;
  /** Put on hold by `mailfleet queue hold`: not delivered until released. */
  held?: boolean;
  /** Recipients (NOTIFY=DELAY) that were sent a "delayed" notice: one each per message. */
  delayNotified?: string[];
}

export interface QueuedMessage {
  meta: MessageMeta;
  state: DeliveryState;
  path: string;
  /** A state file exists on disk (only after a first attempt that did not finish). */
  stateOnDisk?: boolean;
}

export class QueueImportError extends Error {
  readonly reason: 'invalid' | 'exists';
  constructor(message: string, reason: 'invalid' | 'exists' = 'invalid') {
    super(message);
    this.name = 'QueueImportError';
    this.reason = reason;
  }
}

export class MessageTooLargeError extends Error {
  constructor(limit: number) {
    super(`message exceeds the size limit of ${limit} bytes`);
    this.name = 'MessageTooLargeError';
  }
}

const MAGIC = 'MFQ1';
const FOOTER_LEN = MAGIC.length + 10 + 1; // MFQ1 + 10-digit trailer length + \n
const WRITE_BATCH = 256 * 1024;

function ignoreMissing(err: NodeJS.ErrnoException): void {
  if (err.code !== 'ENOENT') throw err;
}

// Random bytes for queue ids, drawn from the CSPRNG 4 KB at a time: a randomBytes call
// per message was ~25 µs of the relay's time per message in bench:relay.
const ID_RANDOM_POOL = 4096;
let idRandom = Buffer.alloc(0);
let idRandomAt = 0;

export function newQueueId(now = Date.now()): string {
  if (idRandomAt + 5 > idRandom.length) {
    idRandom = crypto.randomBytes(ID_RANDOM_POOL);
    idRandomAt = 0;
  }
  const random = idRandom.toString('hex', idRandomAt, idRandomAt + 5).toUpperCase();
  idRandomAt += 5;
  return now.toString(36).toUpperCase() + random;
}

function trailerFor(meta: MessageMeta): Buffer {
  const json = Buffer.from(`\n${JSON.stringify(meta)}\n`);
  return Buffer.concat([json, Buffer.from(`${MAGIC}${String(json.length).padStart(10, '0')}\n`)]);
}

export async function readTrailer(file: string): Promise<MessageMeta> {
  const fh = await fsp.open(file, 'r');
  try {
    const { size } = await fh.stat();
    if (size < FOOTER_LEN) throw new Error(`${file}: too short for a queue file`);
    const footer = Buffer.alloc(FOOTER_LEN);
    await fh.read(footer, 0, FOOTER_LEN, size - FOOTER_LEN);
    const text = footer.toString('latin1');
    if (!text.startsWith(MAGIC)) throw new Error(`${file}: no queue trailer`);
    const len = Number(text.slice(MAGIC.length, MAGIC.length + 10));
    const json = Buffer.alloc(len);
    await fh.read(json, 0, len, size - FOOTER_LEN - len);
    return JSON.parse(json.toString('utf8')) as MessageMeta;
  } finally {
    await fh.close();
  }
}

/** Shares one fsync of a directory among every caller waiting while it is in flight. */
export class DirSyncer {
  private readonly dir: string;
  private running: Promise<void> | undefined;
  private next: Promise<void> | undefined;
  constructor(dir: string) { this.dir = dir; }

  sync(): Promise<void> {
    if (!this.running) return (this.running = this.run());
    // A sync already running may have started before our rename: wait for the one after it.
    // Queued behind the running sync whatever its outcome: a failed sync must not hand its
    // error to the next batch, nor stay behind as a settled `next` that every later
    // caller would get instead of a real sync.
    this.next ??= this.running.catch(() => {}).then(() => {
      this.next = undefined;
      return (this.running = this.run());
    });
    return this.next;
  }

  private async run(): Promise<void> {
    try {
      await fsyncPath(this.dir);
    } finally {
      this.running = undefined;
    }
  }
}

export interface AcceptOptions {
  maxSize: number;
  /** Sees every chunk of the message as it streams to disk (e.g. a DKIM body hasher). */
  observe?: (chunk: Buffer) => void;
  /** Runs after the last byte and before the commit; may add to the envelope (e.g. DKIM-Signature). */
  finalize?: (meta: MessageMeta) => Promise<Partial<MessageMeta>> | Partial<MessageMeta>;
}

export class QueueStore {
  readonly dir: string;
  private readonly tmpDir: string;
  private readonly msgDir: string;
  private readonly stateDir: string;
  private readonly syncer: DirSyncer;
  private readonly index = new Map<string, QueuedMessage>();
  private readonly fsync: boolean;
  private readonly copies: MemoryCopies;

  private constructor(dir: string, fsync: boolean, memoryCopyBytes: number) {
    this.dir = dir;
    this.tmpDir = path.join(dir, 'tmp');
    this.msgDir = path.join(dir, 'msg');
    this.stateDir = path.join(dir, 'state');
    this.syncer = new DirSyncer(this.msgDir);
    this.fsync = fsync;
    this.copies = new MemoryCopies(memoryCopyBytes);
  }

  /** Opens (creating if needed) the queue and recovers every committed message. */
  static async open(dir: string, opts: { fsync?: boolean; memoryCopyBytes?: number } = {}): Promise<{ store: QueueStore; recovered: number; discarded: number; corrupt: string[] }> {
    const store = new QueueStore(dir, opts.fsync ?? true, opts.memoryCopyBytes ?? 0);
    for (const d of [store.tmpDir, store.msgDir, store.stateDir]) await fsp.mkdir(d, { recursive: true, mode: 0o700 });
    // Files in tmp/ were never acknowledged with a 250: the client still has them.
    const tmp = await fsp.readdir(store.tmpDir);
    await Promise.all(tmp.map((f) => fsp.rm(path.join(store.tmpDir, f), { force: true })));
    let recovered = 0;
    const corrupt: string[] = [];
    for (const name of await fsp.readdir(store.msgDir)) {
      const file = path.join(store.msgDir, name);
      let meta: MessageMeta;
      try {
        meta = await readTrailer(file);
      } catch {
        // One unreadable file must not keep the relay (and every other message) down:
        // it is set aside in corrupt/ for a person to look at.
        await fsp.mkdir(path.join(dir, 'corrupt'), { recursive: true, mode: 0o700 });
        await fsp.rename(file, path.join(dir, 'corrupt', name));
        corrupt.push(name);
        continue;
      }
      const { state, onDisk } = await store.readState(meta.id, meta.receivedAt);
      store.index.set(meta.id, { meta, state, path: file, stateOnDisk: onDisk });
      recovered++;
    }
    // State files whose message is gone belong to messages finished just before a crash.
    for (const name of await fsp.readdir(store.stateDir)) {
      const id = name.replace(/\.json(\.tmp)?$/, '');
      if (!store.index.has(id)) await fsp.rm(path.join(store.stateDir, name), { force: true });
    }
    return { store, recovered, discarded: tmp.length, corrupt };
  }

  private async readState(id: string, receivedAt: number): Promise<{ state: DeliveryState; onDisk: boolean }> {
    try {
      return { state: JSON.parse(await fsp.readFile(path.join(this.stateDir, `${id}.json`), 'utf8')) as DeliveryState, onDisk: true };
    } catch {
      return { state: { attempts: 0, nextAttemptAt: receivedAt, done: {} }, onDisk: false };
    }
  }

  /**
   * Streams a message to disk and commits it durably. Resolves only once the message
   * would survive a crash: the caller may then answer 250.
   */
  async accept(envelope: Omit<MessageMeta, 'id' | 'size' | 'receivedAt'>, body: AsyncIterable<Buffer>, opts: AcceptOptions): Promise<QueuedMessage> {
    const receivedAt = Date.now();
    const id = newQueueId(receivedAt);
    const tmpFile = path.join(this.tmpDir, id);
    // undefined once closed: a plain descriptor must never be closed twice
    let fd: number | undefined = await openFd(tmpFile, 'wx', 0o600);
    let size = 0;
    let committed = false;
    // the chunks again, for the first delivery attempt (memory-copies.ts), while they fit
    let copy: Buffer[] | undefined = this.copies.admits(0) ? [] : undefined;
    try {
      let pending: Buffer[] = [];
      let pendingBytes = 0;
      let tooLarge = false;
      for await (const chunk of body) {
        size += chunk.length;
        // Keep reading past the limit so the client gets our reply, but stop writing.
        if (size > opts.maxSize) { tooLarge = true; continue; }
        opts.observe?.(chunk);
        pending.push(chunk);
        if (copy && !this.copies.admits(size)) copy = undefined;
        copy?.push(chunk);
        pendingBytes += chunk.length;
        if (pendingBytes >= WRITE_BATCH) {
          await writeAll(fd, pending);
          pending = [];
          pendingBytes = 0;
        }
      }
      if (tooLarge || (body as { sizeExceeded?: boolean }).sizeExceeded) throw new MessageTooLargeError(opts.maxSize);
      let meta: MessageMeta = { ...envelope, id, size, receivedAt };
      if (opts.finalize) meta = { ...meta, ...(await opts.finalize(meta)) };
      pending.push(trailerFor(meta));
      await writeAll(fd, pending);
      if (this.fsync) await fdatasync(fd);
      const written = fd;
      fd = undefined;
      await closeFd(written);
      const file = path.join(this.msgDir, id);
      await rename(tmpFile, file);
      // The client gets a 451 if the directory sync fails: take the file back out, or a
      // restart would deliver it besides the copy the client sends again.
      if (this.fsync) await this.syncer.sync().catch(async (err: unknown) => { await fsp.rm(file, { force: true }); throw err; });
      committed = true;
      const queued: QueuedMessage = { meta, state: { attempts: 0, nextAttemptAt: receivedAt, done: {} }, path: file };
      this.index.set(id, queued);
      if (copy) this.copies.keep(id, copy, size);
      return queued;
    } finally {
      if (!committed) {
        if (fd !== undefined) await closeFd(fd).catch(() => {});
        await fsp.rm(tmpFile, { force: true });
      }
    }
  }

  /** Queues a message the relay made itself (a DSN): small, so it comes as a Buffer. */
  async acceptBuffer(envelope: Omit<MessageMeta, 'id' | 'size' | 'receivedAt'>, data: Buffer): Promise<QueuedMessage> {
    return this.accept(envelope, Readable.from([data]), { maxSize: Number.MAX_SAFE_INTEGER });
  }

  /**
   * Takes in a queue file written by another relay (its bytes: message and trailer) with
   * its delivery state, under its own queue id: `mailfleet queue import` of a data dir whose
   * pod is gone. Committed like an arrival (fsync, rename, directory sync). Refuses an id
   * this queue already has (imported before) and a file without a valid trailer.
   */
  async importMessage(file: Readable, state?: DeliveryState): Promise<QueuedMessage> {
    const tmpFile = path.join(this.tmpDir, `import-${crypto.randomBytes(8).toString('hex')}`);
    let fd: number | undefined = await openFd(tmpFile, 'wx', 0o600);
    let committed = false;
    try {
      let size = 0;
      for await (const chunk of file as AsyncIterable<Buffer>) {
        await writeAll(fd, [chunk]);
        size += chunk.length;
      }
      if (this.fsync) await fdatasync(fd);
      const written = fd;
      fd = undefined;
      await closeFd(written);
      const meta = await readTrailer(tmpFile).catch((err: Error) => {
        throw new QueueImportError(`not a queue file: ${err.message.replace(`${tmpFile}: `, '')}`);
      });
      // The id names a file here: nothing but the queue's own id alphabet.
      if (typeof meta.id !== 'string' || !/^[0-9A-Z]{8,40}$/.test(meta.id)) throw new QueueImportError(`invalid queue id ${JSON.stringify(meta.id)}`);
      if (!Array.isArray(meta.recipients) || meta.recipients.length === 0 || typeof meta.from !== 'string' || !(meta.size <= size)) {
        throw new QueueImportError(`${meta.id}: the trailer does not describe a queued message`);
      }
      const dsnProblem = storedDsnProblem(meta);
      if (dsnProblem) throw new QueueImportError(`${meta.id}: invalid DSN parameters in the trailer: ${dsnProblem}`);
      if (this.index.has(meta.id)) throw new QueueImportError(`${meta.id} is already in this queue`, 'exists');
      const dest = path.join(this.msgDir, meta.id);
      await fsp.link(tmpFile, dest).catch((err: NodeJS.ErrnoException) => {
        if (err.code === 'EEXIST') throw new QueueImportError(`${meta.id} is already in this queue`, 'exists');
        throw err;
      });
      await fsp.rm(tmpFile, { force: true });
      if (this.fsync) await this.syncer.sync().catch(async (err: unknown) => { await fsp.rm(dest, { force: true }); throw err; });
      committed = true;
      const queued: QueuedMessage = { meta, state: { attempts: 0, nextAttemptAt: Date.now(), done: {} }, path: dest };
      this.index.set(meta.id, queued);
      if (state) await this.saveState(meta.id, { ...state, done: state.done ?? {}, nextAttemptAt: Math.min(state.nextAttemptAt ?? Date.now(), Date.now()) });
      return queued;
    } finally {
      if (!committed) {
        if (fd !== undefined) await closeFd(fd).catch(() => {});
        await fsp.rm(tmpFile, { force: true });
      }
    }
  }

  /**
   * Takes in a message another relay of the fleet hands off while it drains: its bytes as
   * a stream, and the record (envelope, arrival time, state) that travelled with them. The
   * queue id stays, so a hand-off repeated after a lost 250 finds the message already here
   * ('exists') instead of queueing it twice. Committed like an import.
   */
  async acceptHandoff(meta: MessageMeta, state: DeliveryState, body: AsyncIterable<Buffer>, maxSize: number): Promise<QueuedMessage> {
    if (this.index.has(meta.id)) throw new QueueImportError(`${meta.id} is already in this queue`, 'exists');
    async function* file(): AsyncGenerator<Buffer> {
      let size = 0;
      for await (const chunk of body) {
        size += chunk.length;
        if (size > maxSize) throw new MessageTooLargeError(maxSize);
        yield chunk;
      }
      yield trailerFor({ ...meta, size });
    }
    return this.importMessage(Readable.from(file()), state);
  }

  /** The on-disk files of a message: for export to another relay. */
  filesOf(id: string): { message: string; state?: string } | undefined {
    const q = this.index.get(id);
    if (!q) return undefined;
    return { message: q.path, ...(q.stateOnDisk ? { state: path.join(this.stateDir, `${id}.json`) } : {}) };
  }

  /**
   * Records delivery progress. Not fsync'd on purpose: losing it in a crash only means
   * a recipient may be tried again (at-least-once), and it keeps retries cheap.
   */
  async saveState(id: string, state: DeliveryState): Promise<void> {
    const q = this.index.get(id);
    if (q) q.state = state;
    const file = path.join(this.stateDir, `${id}.json`);
    await fsp.writeFile(`${file}.tmp`, JSON.stringify(state));
    await fsp.rename(`${file}.tmp`, file);
    if (q) q.stateOnDisk = true;
  }

  /**
   * The message's bytes (as in its file from offset 0, `meta.size` long) when they are still
   * in memory from its arrival: only until its first delivery attempt ends.
   */
  memoryCopy(id: string): Buffer | undefined {
    return this.copies.get(id);
  }

  /** Ends the in-memory copy of a message: its first attempt is over, later ones read the file. */
  dropMemoryCopy(id: string): void {
    this.copies.drop(id);
  }

  /** Bytes held by in-memory copies now. */
  get memoryCopyBytes(): number {
    return this.copies.usedBytes;
  }

  /** Budget for in-memory copies of new messages (bytes; 0 keeps none). */
  setMemoryCopyBytes(bytes: number): void {
    this.copies.maxBytes = bytes;
  }

  /** Removes a message whose every recipient has a final outcome. */
  async remove(id: string): Promise<void> {
    const q = this.index.get(id);
    this.index.delete(id);
    this.copies.drop(id);
    // unlink, not rm: rm stats and walks first, and this runs once per delivered message.
    await unlink(q?.path ?? path.join(this.msgDir, id)).catch(ignoreMissing);
    if (!q || q.stateOnDisk) await unlink(path.join(this.stateDir, `${id}.json`)).catch(ignoreMissing);
  }

  get(id: string): QueuedMessage | undefined {
    return this.index.get(id);
  }

  messages(): IterableIterator<QueuedMessage> {
    return this.index.values();
  }

  get size(): number {
    return this.index.size;
  }

  oldestReceivedAt(): number | undefined {
    let oldest: number | undefined;
    for (const q of this.index.values()) if (oldest === undefined || q.meta.receivedAt < oldest) oldest = q.meta.receivedAt;
    return oldest;
  }

  /** The whole message as received (no prepend), for a RET=FULL notice; undefined when larger than `limit`. */
  async readMessage(id: string, limit: number): Promise<Buffer | undefined> {
    const q = this.index.get(id);
    if (!q) throw new Error(`queue id ${id} not found`);
    if (q.meta.size > limit) return undefined;
    const fh = await fsp.open(q.path, 'r');
    try {
      const buf = Buffer.alloc(q.meta.size);
      const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
      return buf.subarray(0, bytesRead);
    } finally {
      await fh.close();
    }
  }

  /** Reads the start of a message (its header block) for DSNs, without loading the body. */
  async readHeaders(id: string, limit = 64 * 1024): Promise<Buffer> {
    const q = this.index.get(id);
    if (!q) throw new Error(`queue id ${id} not found`);
    const fh = await fsp.open(q.path, 'r');
    try {
      const buf = Buffer.alloc(Math.min(limit, q.meta.size));
      const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
      const head = buf.subarray(0, bytesRead);
      const end = head.indexOf('\r\n\r\n');
      return end >= 0 ? head.subarray(0, end + 2) : head;
    } finally {
      await fh.close();
    }
  }
}

