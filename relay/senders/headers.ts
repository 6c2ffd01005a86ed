// The header block of a message as it streams by (bounded), and the From domain in it.
import addressparser from 'nodemailer/lib/addressparser';

export class HeaderCollector {
  private chunks: Buffer[] = [];
  private bytes = 0;
  private done = false;
  private readonly limit: number;
  constructor(limit = 1024 * 1024) { this.limit = limit; }

  feed(chunk: Buffer): void {
    if (this.done) return;
    this.chunks.push(chunk);
    this.bytes += chunk.length;
    const all = this.chunks.length > 1 ? Buffer.concat(this.chunks) : chunk;
    const end = all.indexOf('\r\n\r\n');
    const endLf = end < 0 ? all.indexOf('\n\n') : -1;
    if (end >= 0 || endLf >= 0 || this.bytes >= this.limit) {
      this.chunks = [all.subarray(0, end >= 0 ? end + 2 : endLf >= 0 ? endLf + 1 : this.limit)];
      this.done = true;
    } else if (this.chunks.length > 1) {
      this.chunks = [all];
    }
  }

  headers(): Buffer {
    return this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks);
  }
}

/** Every address in the From header fields (normally one field with one address). */
export function headerFromAddresses(headers: Buffer): string[] {
  const text = headers.toString('utf8').replace(/\r?\n[ \t]+/g, ' ');
  const out: string[] = [];
  for (const line of text.split(/\r?\n/)) {
    const m = /^from:(.*)$/i.exec(line);
    if (!m) continue;
    for (const a of addressparser(m[1] ?? '', { flatten: true })) if (a.address) out.push(a.address);
  }
  return out;
}
