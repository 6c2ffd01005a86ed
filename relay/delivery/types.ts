// The contract between the queue's retry loop and the deliverer.
import type { EnvelopeDsn, RecipientDsn } from '../queue/dsn.ts';

export interface DeliveryJob {
  id: string;            // queue id, for logs
  from: string;          // envelope sender, '' for the null sender (DSNs)
  recipients: string[];  // all recipients of this job (may span several domains)
  bodyPath: string;      // file holding the message bytes (headers+body, CRLF)
  bodyOffset: number;    // message bytes start at this byte offset in the file
  body?: Buffer;         // the same bytes already in memory (the queue's copy for a first attempt): read instead of the file
  prepend?: Buffer;      // bytes sent before the message (e.g. a DKIM-Signature header)
  size: number;          // message byte length (after offset, without prepend)
  dsn?: EnvelopeDsn;     // RET and ENVID, passed on to hops that announce DSN
  rcptDsn?: Record<string, RecipientDsn>; // NOTIFY and ORCPT per recipient, likewise
}

export type RecipientStatus = 'delivered' | 'deferred' | 'failed';

export interface RecipientOutcome {
  recipient: string;
  status: RecipientStatus;
  code?: number;         // SMTP reply code when there was one
  enhanced?: string;     // e.g. '5.1.1' when the peer (or we) gave one
  response: string;      // the peer's reply or the local error, for DSNs and logs
  remote?: string;       // host[ip]:port that answered
  route: 'mx' | 'smarthost' | 'capture';
  /** Delivered to a hop that announced DSN, with the recipient's DSN parameters (asked only for NOTIFY=SUCCESS). */
  nextHopDsn?: boolean;
}
