// The one place a message's bytes are judged and fixed before anything else sees them.
//
// Invariant (docs/security.md, "Line endings"): every byte after this gate is in canonical
// form: lines end in CRLF and nowhere else is there a CR or an LF, and the header block
// is well-formed RFC 5322 (each line a field or a fold of one), bounded in size, with
// exactly one From field and no Bcc field. The sender policy, the DKIM signer and the queue all read the gate's output
// and the header list it parsed, so what is checked, what is signed, what is stored and
// what leaves are the same bytes. Before this gate a bare CR was one line to the policy
// and two lines to the next hop (nodemailer's data stream turns it into CRLF), which let
// a second From through the alignment check.
//
// A refusal does not stop reading: the rest of DATA is drained so the client gets our
// reply at its end, and the error is thrown once the source is exhausted.
import type { SmtpError } from './replies.ts';
import { smtpError } from './replies.ts';
import { parseHeaders, type ParsedHeader } from '../dkim/mailauth-internals.ts';

const CR = 0x0d;
const LF = 0x0a;
const CRLF = Buffer.from('\r\n');
const HEADER_END = Buffer.from('\r\n\r\n');

export type BareLineEndings = 'reject' | 'normalize';

export interface DataGateOptions {
  bareLineEndings: BareLineEndings;
  /** Largest header block accepted (bytes, after line endings were normalized). */
  maxHeaderBytes: number;
  /** Largest message accepted, counted as received (the SIZE limit). */
  maxMessageBytes: number;
}

// RFC 5322 §3.6.8 field-name (printable ASCII but colon), then the obsolete WSP before
// the colon that §4.5.8 still asks receivers to read.
const FIELD_START = /^[\x21-\x39\x3b-\x7e]+[ \t]*:/;
// RFC 6409 §8.1 / RFC 5322 §3.6.3: Bcc is for the submitter; a copy to every recipient
// would tell each of them who else got it.
const STRIPPED_FIELDS = new Set(['bcc']);

export interface GatedHeaders {
  /** The header block as stored: CRLF-terminated fields, no blank separator line. */
  block: Buffer;
  /** The same fields parsed (mailauth's parser): lower-cased name, original line. */
  fields: ParsedHeader[];
}

export class DataGate {
  readonly #opts: DataGateOptions;
  // A CR that ended the previous chunk: its meaning depends on the next byte.
  #pendingCr = false;
  #inHeaders = true;
  #head: Buffer[] = [];
  #headBytes = 0;
  #error: SmtpError | undefined;
  #received = 0;
  #headers: GatedHeaders | undefined;
  /** Called with every body byte that will be stored (after the blank line). */
  onBody: ((chunk: Buffer) => void) | undefined;
  /** Whether a bare CR or LF was rewritten (normalize mode). */
  normalized = false;

  constructor(opts: DataGateOptions) {
    this.#opts = opts;
  }

  /** The header block once the gate has passed it (after the blank line, or at the end). */
  get headers(): GatedHeaders | undefined {
    return this.#headers;
  }

  /** The bytes to store, chunk by chunk. Throws the refusal (an SmtpError) after draining. */
  async *filter(source: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
    for await (const raw of source) {
      this.#received += (raw as Buffer).length;
      if (this.#received > this.#opts.maxMessageBytes && !this.#error) {
        this.#head = [];
        this.#error = smtpError(552, '5.3.4', `Message too big (limit ${this.#opts.maxMessageBytes} bytes)`);
      }
      if (this.#error) continue;
      const chunk = this.#lineEndings(raw as Buffer, false);
      const out = chunk && this.#route(chunk);
      if (out) yield out;
    }
    if (!this.#error) {
      const tail = this.#lineEndings(Buffer.alloc(0), true);
      const out = tail && this.#route(tail);
      if (out) yield out;
    }
    if (!this.#error && this.#inHeaders) {
      // No blank line: the whole message is header (RFC 5322 §3.5), the body empty.
      const all = Buffer.concat(this.#head, this.#headBytes);
      const out = this.#finishHeaders(all, all.length);
      if (out) yield out;
    }
    if (this.#error) throw this.#error;
  }

  // What to pass on for this chunk: at most one buffer (a plain return, not a generator:
  // this runs for every chunk of every message).
  #route(chunk: Buffer): Buffer | undefined {
    if (!this.#inHeaders) {
      this.onBody?.(chunk);
      return chunk;
    }
    // Where the block ends is searched in the held bytes plus this chunk: the blank line
    // may straddle chunks. The held part is bounded by maxHeaderBytes.
    const prev = this.#headBytes;
    this.#head.push(chunk);
    this.#headBytes += chunk.length;
    const all = this.#head.length === 1 ? chunk : Buffer.concat(this.#head, this.#headBytes);
    const end = all.length >= 2 && all[0] === CR && all[1] === LF ? -2 : all.indexOf(HEADER_END, Math.max(0, prev - 3));
    if (end === -1) {
      if (this.#headBytes > this.#opts.maxHeaderBytes) this.#refuseHeaderSize();
      else this.#head = [all];
      return undefined;
    }
    const blockEnd = end + 2; // past the CRLF of the last field; -2 → 0 for an empty block
    return this.#finishHeaders(all, blockEnd);
  }

  #refuseHeaderSize(): void {
    this.#head = [];
    this.#error = smtpError(552, '5.3.4', `Message header block exceeds ${this.#opts.maxHeaderBytes} bytes`);
  }

  // Validates and parses the header block (all[0, blockEnd)), strips Bcc; returns the
  // bytes to store: the header block, then whatever followed it (separator and body).
  #finishHeaders(all: Buffer, blockEnd: number): Buffer | undefined {
    this.#inHeaders = false;
    this.#head = [];
    if (blockEnd > this.#opts.maxHeaderBytes) {
      this.#refuseHeaderSize();
      return undefined;
    }
    const block = all.subarray(0, blockEnd);
    const malformed = malformedLine(block);
    if (malformed !== undefined) {
      this.#error = smtpError(550, '5.6.0', `Malformed header line ${JSON.stringify(malformed.slice(0, 60))}: a header line is "Name: value" or a continuation that starts with a space or tab`);
      return undefined;
    }
    let fields = block.length ? parseHeaders(block).parsed : [];
    // RFC 5322 §3.6: exactly one From. With two, each reader picks its own, and the one
    // the policy checked need not be the one a mailbox shows.
    const froms = fields.reduce((n, f) => n + (f.key === 'from' ? 1 : 0), 0);
    if (froms !== 1) {
      this.#error = smtpError(550, '5.7.1', froms === 0 ? 'The message has no From header field' : `The message has ${froms} From header fields; RFC 5322 allows exactly one`);
      return undefined;
    }
    const rest = all.subarray(blockEnd);
    // rest starts with the blank separator line; the body proper follows it.
    if (rest.length > 2) this.onBody?.(rest.subarray(2));
    if (!fields.some((f) => f.key !== null && STRIPPED_FIELDS.has(f.key))) {
      this.#headers = { block, fields };
      return all.length ? all : undefined;
    }
    fields = fields.filter((f) => !(f.key !== null && STRIPPED_FIELDS.has(f.key)));
    // parseHeaders drops each field's final CRLF; the stored block keeps them.
    const stored = Buffer.concat(fields.flatMap((f) => [f.line, CRLF]));
    this.#headers = { block: stored, fields };
    return Buffer.concat([stored, rest]);
  }

  // Checks (reject) or rewrites (normalize) line endings so that only CRLF pairs remain.
  // Returns the bytes to pass on, or undefined when there are none (or on refusal).
  #lineEndings(chunk: Buffer, atEnd: boolean): Buffer | undefined {
    const carried = this.#pendingCr;
    this.#pendingCr = false;
    let data = chunk;
    if (carried) data = Buffer.concat([Buffer.from([CR]), chunk]);
    if (!atEnd && data.length > 0 && data[data.length - 1] === CR) {
      // Hold a trailing CR back until the next chunk says whether an LF follows it.
      this.#pendingCr = true;
      data = data.subarray(0, data.length - 1);
    }
    if (data.length === 0) return undefined;
    const bare = firstBare(data);
    if (bare < 0) return data;
    if (this.#opts.bareLineEndings === 'reject') {
      this.#error = smtpError(550, '5.6.11', `Message contains a bare ${data[bare] === CR ? 'CR' : 'LF'}; lines must end with CRLF (RFC 5321 §2.3.8)`);
      return undefined;
    }
    this.normalized = true;
    return normalize(data, bare);
  }
}

// Index of the first CR not followed by LF or LF not preceded by CR; -1 if none. Scans a
// latin1 view with String.indexOf (one byte per char, a native search without a binding
// call per line, which Buffer.indexOf costs): this runs over every byte of every message.
function firstBare(data: Buffer): number {
  const s = data.toString('latin1');
  let lastLf = -1;
  // Bounded: each turn moves i past one LF.
  for (let i = s.indexOf('\n'); i >= 0; i = s.indexOf('\n', i + 1)) {
    if (i === 0 || s.charCodeAt(i - 1) !== CR) return i;
    // Every CR between the previous LF and this one, other than the one before this LF, is bare.
    const cr = s.indexOf('\r', lastLf + 1);
    if (cr >= 0 && cr < i - 1) return cr;
    lastLf = i;
  }
  return s.indexOf('\r', lastLf + 1);
}

// Bare CR and bare LF each become CRLF, which is what the next hop would make of them.
function normalize(data: Buffer, from: number): Buffer {
  const out = Buffer.allocUnsafe(from + (data.length - from) * 2);
  data.copy(out, 0, 0, from);
  let o = from;
  for (let i = from; i < data.length; i++) {
    const b = data[i]!;
    if (b === CR || b === LF) {
      out[o++] = CR;
      out[o++] = LF;
      if (b === CR && data[i + 1] === LF) i++;
    } else {
      out[o++] = b;
    }
  }
  return out.subarray(0, o);
}

// The first line of a header block that is neither a field nor a fold of the one above.
// Receivers disagree about such lines (one ends the header there, another joins it to
// the field above): whatever the relay decided, a next hop could read a From it did not.
function malformedLine(block: Buffer): string | undefined {
  if (block.length === 0) return undefined;
  const text = block.toString('latin1');
  let start = 0;
  let first = true;
  // Bounded: each turn moves start past one CRLF.
  while (start < text.length) {
    let end = text.indexOf('\r\n', start);
    if (end < 0) end = text.length;
    const line = text.slice(start, end);
    const fold = line.length > 0 && (line[0] === ' ' || line[0] === '\t');
    if ((first && fold) || (!fold && !FIELD_START.test(line))) return line;
    first = false;
    start = end + 2;
  }
  return undefined;
}
