// Relaxed body canonicalization (RFC 6376 §3.4.4) fed chunk by chunk, hashed as it goes.
//
// Written as a byte-level state machine rather than reusing mailauth's RelaxedHash because
// that one keeps the unterminated tail of every chunk and concatenates it with the next:
// a message with a very long line (or none at all) is then held whole in memory and copied
// quadratically. Here the state between chunks is four scalars, so memory stays constant
// whatever the line lengths or chunk boundaries. mailauth's RelaxedHash is the oracle in
// the tests (random inputs, every chunk split).
//
// Line endings: LF ends a line and a CR right before it belongs to that ending, as mailauth
// and OpenDKIM read it (the message goes out over SMTP where a bare LF becomes CRLF). Any
// other CR is ordinary content.
import { createHash, type Hash } from 'node:crypto';

const CR = 0x0d;
const LF = 0x0a;
const SP = 0x20;
const HTAB = 0x09;
const OUT_SIZE = 64 * 1024;

export class RelaxedBodyHash {
  readonly #hash: Hash = createHash('sha256');
  // Canonical bytes are staged here and hashed in blocks: one hash.update per byte is slow.
  readonly #out = Buffer.allocUnsafe(OUT_SIZE);
  #outLen = 0;
  // Whitespace seen since the last content byte of the line. It becomes one SP if more
  // content follows on the same line, and disappears if the line ends first.
  #pendingWsp = false;
  // A CR whose meaning depends on the next byte (possibly in the next chunk).
  #pendingCr = false;
  #lineHasContent = false;
  // Empty lines seen since the last content line. RFC 6376 drops them at the end of the
  // body, so they are only counted, and written out once content follows them.
  #heldEmptyLines = 0;
  #finished = false;
  /** Raw body bytes fed in. */
  rawLength = 0;
  /** Canonicalized body bytes hashed. */
  canonicalLength = 0;

  update(chunk: Uint8Array): void {
    if (this.#finished) throw new Error('RelaxedBodyHash: update() after digest()');
    this.rawLength += chunk.length;
    const len = chunk.length;
    for (let i = 0; i < len; i++) {
      const b = chunk[i]!;
      if (this.#pendingCr) {
        this.#pendingCr = false;
        if (b === LF) {
          this.#endLine();
          continue;
        }
        this.#content(CR);
      }
      if (b === LF) this.#endLine();
      else if (b === CR) this.#pendingCr = true;
      else if (b === SP || b === HTAB) this.#pendingWsp = true;
      else this.#content(b);
    }
  }

  /** Finishes the body and returns the base64 SHA-256 of its canonical form (the bh= value). */
  digest(): string {
    if (this.#finished) throw new Error('RelaxedBodyHash: digest() called twice');
    if (this.#pendingCr) {
      this.#pendingCr = false;
      this.#content(CR);
    }
    // A body that does not end with a line break gets one; trailing empty lines stay dropped.
    if (this.#lineHasContent) this.#endLine();
    this.#finished = true;
    this.#flush();
    return this.#hash.digest('base64');
  }

  #content(b: number): void {
    if (!this.#lineHasContent) {
      this.#lineHasContent = true;
      // Bounded by the count itself, which is bounded by the input length.
      for (; this.#heldEmptyLines > 0; this.#heldEmptyLines--) this.#emitCrlf();
    }
    if (this.#pendingWsp) {
      this.#pendingWsp = false;
      this.#emit(SP);
    }
    this.#emit(b);
  }

  #endLine(): void {
    this.#pendingWsp = false;
    if (this.#lineHasContent) {
      this.#lineHasContent = false;
      this.#emitCrlf();
    } else {
      this.#heldEmptyLines++;
    }
  }

  #emitCrlf(): void {
    this.#emit(CR);
    this.#emit(LF);
  }

  #emit(b: number): void {
    if (this.#outLen === OUT_SIZE) this.#flush();
    this.#out[this.#outLen++] = b;
  }

  #flush(): void {
    if (this.#outLen === 0) return;
    this.#hash.update(this.#out.subarray(0, this.#outLen));
    this.canonicalLength += this.#outLen;
    this.#outLen = 0;
  }
}
