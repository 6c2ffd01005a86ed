// What travels with a handed-off message besides its bytes: the queue record (envelope with
// the DSN parameters, arrival time, the DKIM and Received lines already computed) and its
// delivery state (recipients done, attempts, hold). It is the first line of the DATA of a
// hand-off transaction, `X-MailFleet-Handoff: v1 <base64 JSON>`, which the receiver takes
// off again; only the hand-off listener ever reads it, so it never reaches a destination.
// The record is carried whole (unknown envelope fields too), so a field the queue gains
// travels without a change here.
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

const recordSchema = z.strictObject({ meta: metaSchema, state: stateSchema });

export interface HandoffRecord {
  meta: MessageMeta;
  state: DeliveryState;
}

export function encodeRecord(r: HandoffRecord): Buffer {
  return Buffer.from(`${HANDOFF_FIELD}: v1 ${Buffer.from(JSON.stringify({ meta: r.meta, state: r.state })).toString('base64')}\r\n`);
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
