// What travels with a handed-off message besides its bytes: the queue record (envelope with
// the DSN parameters, arrival time, the DKIM and Received lines already computed) and its
// delivery state (recipients done, attempts, hold). It is the first line of the DATA of a
// hand-off transaction, `X-MailFleet-Handoff: v1 <base64 JSON>`, which the receiver takes
// off again; only the hand-off listener ever reads it, so it never reaches a destination.
// The record is carried whole (unknown envelope fields too), so a field the queue gains
// travels without a change here.
import crypto from 'node:crypto';
import { z } from 'zod';
import type { DeliveryState, MessageMeta } from '../queue/store.ts';

export const HANDOFF_FIELD = 'X-MailFleet-Handoff';
/** Longest first line a receiver reads (a record with a few thousand recipients fits). */
export const MAX_RECORD_LINE = 4 * 1024 * 1024;

const metaSchema = z.looseObject({
  id: z.string().regex(/^[0-9A-Z]{8,40}$/),
  from: z.string().max(1024),
  recipients: z.array(z.string().min(1).max(1024)).min(1).max(100_000),
  receivedAt: z.number().int().positive(),
  size: z.number().int().nonnegative(),
  prepend: z.string().optional(),
});

const stateSchema = z.looseObject({
  attempts: z.number().int().nonnegative(),
  nextAttemptAt: z.number(),
  done: z.record(z.string(), z.looseObject({ status: z.enum(['delivered', 'failed', 'expired']) })),
  held: z.boolean().optional(),
});

// A fresh nonce per hand-off: the receiver answers it with a receipt only the fleet token
// can make (receiptFor), so a listener that merely says 250 gets no message removed.
const receiptSchema = z.strictObject({ nonce: z.string().regex(/^[0-9a-f]{32}$/) });

const recordSchema = z.strictObject({ meta: metaSchema, state: stateSchema, receipt: receiptSchema.optional() });

export interface HandoffRecord {
  meta: MessageMeta;
  state: DeliveryState;
  /** Asks the receiver to prove the fleet token in its 250 (absent from senders before it existed). */
  receipt?: { nonce: string };
}

export function encodeRecord(r: HandoffRecord): Buffer {
  const json = JSON.stringify({ meta: r.meta, state: r.state, ...(r.receipt ? { receipt: r.receipt } : {}) });
  return Buffer.from(`${HANDOFF_FIELD}: v1 ${Buffer.from(json).toString('base64')}\r\n`);
}

/**
 * What a receiver that holds the fleet token answers to a record's nonce: the CRAM-MD5
 * login proves the sender to the receiver, this proves the receiver to the sender (the
 * peers' certificates are self-signed per pod, so TLS cannot). Bound to the queue id and
 * the nonce, so a receipt seen once is good for nothing else.
 */
export function receiptFor(token: string, id: string, nonce: string): string {
  return crypto.createHmac('sha256', token).update(`mailfleet-handoff-receipt\0${id}\0${nonce}`).digest('hex');
}

const RECEIPT_IN_REPLY = / receipt=([0-9a-f]{64})(?:\s|$)/;

/** Whether a receiver's 250 text carries the receipt for this id and nonce. */
export function hasReceipt(reply: string, token: string, id: string, nonce: string): boolean {
  const m = RECEIPT_IN_REPLY.exec(reply);
  if (!m) return false;
  return crypto.timingSafeEqual(Buffer.from(m[1]!, 'hex'), Buffer.from(receiptFor(token, id, nonce), 'hex'));
}

export class RecordError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RecordError';
  }
}

/** The record from the first line of a hand-off DATA (without its CRLF). */
export function decodeRecord(line: string): HandoffRecord {
  const m = new RegExp(`^${HANDOFF_FIELD}: v1 ([A-Za-z0-9+/=]+)$`, 'i').exec(line);
  if (!m) throw new RecordError(`the first line is not a ${HANDOFF_FIELD} record`);
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(m[1]!, 'base64').toString('utf8'));
  } catch {
    throw new RecordError(`${HANDOFF_FIELD}: not base64 JSON`);
  }
  const parsed = recordSchema.safeParse(json);
  if (!parsed.success) throw new RecordError(`${HANDOFF_FIELD}: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  return parsed.data as unknown as HandoffRecord;
}

/** The recipients a record still owes a delivery to: what the RCPT commands must name. */
export function openRecipients(r: HandoffRecord): string[] {
  return r.meta.recipients.filter((x) => !r.state.done[x]);
}
