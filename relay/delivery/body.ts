// The message as a stream: optional prepended bytes (a DKIM-Signature header), then the
// spool file from the job's offset (or the job's in-memory copy of it). Nothing is read ahead beyond the stream buffers, so a
// 25 MB message costs a few 64 KB chunks of memory, not 25 MB.
import { createReadStream } from 'node:fs';
import { Readable } from 'node:stream';
import type { DeliveryJob } from './types.ts';

const CHUNK = 64 * 1024;

export function messageStream(job: Pick<DeliveryJob, 'bodyPath' | 'bodyOffset' | 'body' | 'prepend' | 'size'>): Readable {
  // One chunk: each chunk becomes a write to the socket, and a copy is small (memory-copies.ts)
  if (job.body) return Readable.from([job.prepend?.length ? Buffer.concat([job.prepend, job.body]) : job.body], { objectMode: false });
  const fileStream = () => job.size > 0
    ? createReadStream(job.bodyPath, { start: job.bodyOffset, end: job.bodyOffset + job.size - 1, highWaterMark: CHUNK })
    : Readable.from([], { objectMode: false });
  if (!job.prepend?.length) return fileStream();
  const prepend = job.prepend;
  // The file is opened only once the prepend was consumed; a destroyed stream closes it
  // (the generator's for-await ends and destroys the file stream).
  async function* chain(): AsyncGenerator<Buffer> {
    yield prepend;
    for await (const chunk of fileStream()) yield chunk as Buffer;
  }
  return Readable.from(chain(), { objectMode: false, highWaterMark: CHUNK });
}
