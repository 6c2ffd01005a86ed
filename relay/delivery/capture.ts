// The `capture` delivery mode: instead of sending, each message is written as an .eml file
// (the bytes a peer would receive, DKIM signature included) under the data directory, and
// the path is logged. For a dev relay whose mail should be looked at, not sent: nothing
// leaves the machine. A capture is durable before the queue forgets the message.
import { createWriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Logger } from '../log.ts';
import { fsyncPath } from '../util/fsync.ts';
import { messageStream } from './body.ts';
import type { DeliveryJob, RecipientOutcome } from './types.ts';

/** Envelope values go into header lines: anything but printable ASCII is dropped. */
function headerSafe(s: string): string {
  return s.replace(/[^\x20-\x7e]/g, '');
}

export class CaptureSink {
  private seq = 0;
  private readonly dir: string;
  private readonly log: Logger;

  constructor(dir: string, log: Logger) {
    this.dir = dir;
    this.log = log;
  }

  /** Writes the job to `dir/<time>-<queue id>.eml`; every recipient is delivered, or every one deferred. */
  async deliver(job: DeliveryJob): Promise<RecipientOutcome[]> {
    const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
    const file = path.join(this.dir, `${stamp}-${job.id}-${++this.seq}.eml`);
    const tmp = `${file}.tmp`;
    try {
      await fs.mkdir(this.dir, { recursive: true, mode: 0o700 });
      // the envelope, as a local delivery agent records it (Return-Path, RFC 5321 §4.4)
      const envelope = `Return-Path: <${headerSafe(job.from)}>\r\nX-MailFleet-Envelope-To: ${job.recipients.map(headerSafe).join(', ')}\r\n`;
      // flush: fsync before close, so the capture is on disk before the queue drops the message
      const out = createWriteStream(tmp, { flags: 'wx', mode: 0o600, flush: true });
      out.write(envelope);
      await pipeline(messageStream(job), out);
      await fs.rename(tmp, file);
      await fsyncPath(this.dir);
    } catch (err) {
      await fs.rm(tmp, { force: true }).catch(() => undefined);
      const response = `capture failed: ${(err as Error).message}`;
      this.log.warn({ queueId: job.id, route: 'capture', path: file, err: (err as Error).message }, 'delivery attempt');
      return job.recipients.map((recipient) => ({ recipient, status: 'deferred', enhanced: '4.3.0', response, route: 'capture' }));
    }
    this.log.info({ queueId: job.id, route: 'capture', outcome: 'delivered', recipients: job.recipients.length, path: file }, 'message captured');
    return job.recipients.map((recipient) => ({ recipient, status: 'delivered', response: `captured in ${file}`, route: 'capture' }));
  }
}
