// In-memory copies of newly accepted messages, for their first delivery attempt only.
// Every message is still written, fsync'd and committed to disk before its 250; the copy
// only spares the first attempt from opening and reading back the file it just wrote
// (open, read, close and a file stream per message: ~4 % of the relay's CPU per message in
// bench:relay). Retries, hand-offs and queue exports read the file. Bounded in bytes, so a
// backlog costs at most the budget; a message over PER_MESSAGE_MAX is never copied.

/** Messages larger than this are streamed from disk: a copy would buy little for its memory. */
export const MEMORY_COPY_MAX_MESSAGE = 256 * 1024;

export class MemoryCopies {
  #maxBytes: number;
  #usedBytes = 0;
  readonly #copies = new Map<string, Buffer>();

  constructor(maxBytes: number) {
    this.#maxBytes = maxBytes;
  }

  /** A lower budget applies to the next messages; copies already held leave with their attempts. */
  set maxBytes(n: number) {
    this.#maxBytes = n;
  }

  get usedBytes(): number {
    return this.#usedBytes;
  }

  /** Whether a message of `size` bytes (so far) can still be copied. */
  admits(size: number): boolean {
    return size <= MEMORY_COPY_MAX_MESSAGE && this.#usedBytes + size <= this.#maxBytes;
  }

  /**
   * Keeps the message bytes `chunks` (exactly `size` of them, as written to its file) under
   * `id`. One contiguous buffer: the chunks may be views of larger socket buffers, and
   * holding those would cost more than the budget counts.
   */
  keep(id: string, chunks: readonly Buffer[], size: number): void {
    if (!this.admits(size) || this.#copies.has(id)) return;
    this.#copies.set(id, Buffer.concat(chunks, size));
    this.#usedBytes += size;
  }

  get(id: string): Buffer | undefined {
    return this.#copies.get(id);
  }

  drop(id: string): void {
    const copy = this.#copies.get(id);
    if (!copy) return;
    this.#copies.delete(id);
    this.#usedBytes -= copy.length;
  }
}
