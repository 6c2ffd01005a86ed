// Watches a raw message go by (as smtp-server delivers it during DATA: dot-unstuffed, in
// arbitrary chunks) and keeps only what DKIM signing needs: the header block, bounded in
// size, and the relaxed body hash. The body itself is never retained, so a 25 MB message
// costs the same memory as a 4 KB one. Intake tees every chunk into feed() while it writes
// the spool file, then signs from end().
import { RelaxedBodyHash } from './relaxed-body.ts';

const CR = 0x0d;
const LF = 0x0a;

export const DEFAULT_MAX_HEADER_BYTES = 1024 * 1024;

export class DkimInputError extends Error {
  readonly code: 'EHEADERTOOLARGE' | 'EFINISHED';
  constructor(message: string, code: DkimInputError['code']) {
    super(message);
    this.name = 'DkimInputError';
    this.code = code;
  }
}

export interface HashedMessage {
  /** Header fields as received, each with its own line ending; without the blank separator line. */
  headers: Buffer;
  /** base64 SHA-256 of the relaxed-canonical body: the bh= for both rsa-sha256 and ed25519-sha256. */
  bodyHash: string;
  /** Raw bytes fed in (headers, separator and body). */
  messageBytes: number;
  /** Canonical body bytes that went into bodyHash. */
  canonicalBodyBytes: number;
}

export class DkimBodyHasher {
  readonly #maxHeaderBytes: number;
  readonly #body = new RelaxedBodyHash();
  #headerChunks: Buffer[] = [];
  #headerBytes = 0;
  #inHeaders = true;
  // Header scanning state, kept across chunks: whether the next byte starts a line, and
  // whether the line so far is a lone CR (so that CRLF or LF alone both end the headers).
  #atLineStart = true;
  #lineIsCr = false;
  // Header bytes before the blank line that ends them.
  #headerEnd = -1;
  #messageBytes = 0;
  #done = false;

  constructor(opts: { maxHeaderBytes?: number } = {}) {
    this.#maxHeaderBytes = opts.maxHeaderBytes ?? DEFAULT_MAX_HEADER_BYTES;
  }

  /** Feeds the next chunk of the raw message. Throws DkimInputError when the header block exceeds the limit. */
  feed(chunk: Uint8Array): void {
    if (this.#done) throw new DkimInputError('DkimBodyHasher: feed() after end()', 'EFINISHED');
    this.#messageBytes += chunk.length;
    if (!this.#inHeaders) {
      this.#body.update(chunk);
      return;
    }
    const split = this.#scanHeaders(chunk);
    const headerPart = split < 0 ? chunk : chunk.subarray(0, split);
    if (this.#headerBytes + headerPart.length > this.#maxHeaderBytes) {
      this.#headerChunks = [];
      throw new DkimInputError(
        `message header block exceeds ${this.#maxHeaderBytes} bytes; refusing to buffer it for DKIM signing`,
        'EHEADERTOOLARGE',
      );
    }
    // Copied: the caller may reuse its buffers, and a small copy does not pin a large chunk.
    this.#headerChunks.push(Buffer.from(headerPart));
    this.#headerBytes += headerPart.length;
    if (split >= 0) {
      this.#inHeaders = false;
      this.#body.update(chunk.subarray(split));
    }
  }

  /** Ends the message; returns the header block and the body hash. */
  end(): HashedMessage {
    if (this.#done) throw new DkimInputError('DkimBodyHasher: end() called twice', 'EFINISHED');
    this.#done = true;
    const all = Buffer.concat(this.#headerChunks, this.#headerBytes);
    this.#headerChunks = [];
    // Without a blank line the whole message is header and the body is empty (RFC 5322 §3.5).
    const headers = this.#headerEnd >= 0 ? all.subarray(0, this.#headerEnd) : all;
    return {
      headers,
      bodyHash: this.#body.digest(),
      messageBytes: this.#messageBytes,
      canonicalBodyBytes: this.#body.canonicalLength,
    };
  }

  // Returns the offset in chunk where the body starts (just past the blank line), or -1.
  #scanHeaders(chunk: Uint8Array): number {
    for (let i = 0; i < chunk.length; i++) {
      const b = chunk[i]!;
      if (b === LF) {
        if (this.#atLineStart || this.#lineIsCr) {
          this.#headerEnd = this.#headerBytes + i + 1 - (this.#lineIsCr ? 2 : 1);
          return i + 1;
        }
        this.#atLineStart = true;
        this.#lineIsCr = false;
      } else {
        this.#lineIsCr = this.#atLineStart && b === CR;
        this.#atLineStart = false;
      }
    }
    return -1;
  }
}
