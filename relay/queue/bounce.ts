// Turns the final failures of a message into an RFC 3464 DSN queued back to its sender:
// used by the delivery runner and by queue control (`queue delete --dsn`).
import type { Logger } from '../log.ts';
import { buildDsn } from '../bounce/dsn.ts';
import type { DeliveryState, QueuedMessage, QueueStore } from './store.ts';

/** Queues the DSN for the recipients of `state` that were not delivered; undefined when none is due. */
export async function queueDsn(store: QueueStore, q: QueuedMessage, state: DeliveryState, hostname: string, log: Logger): Promise<QueuedMessage | undefined> {
  const failures = q.meta.recipients
    .map((recipient) => ({ recipient, result: state.done[recipient]! }))
    .filter((f) => f.result && f.result.status !== 'delivered');
  if (failures.length === 0) return undefined;
  // RFC 5321 §4.5.5: never bounce a bounce, never send to the null sender.
  if (q.meta.from === '' || q.meta.isDsn) {
    log.warn({ queueId: q.meta.id, failures: failures.length }, 'no DSN: null sender');
    return undefined;
  }
  const dsn = buildDsn({
    reportingMta: hostname, queueId: q.meta.id, originalSender: q.meta.from,
    arrivalDate: new Date(q.meta.receivedAt), failures, originalHeaders: await store.readHeaders(q.meta.id),
  });
  const queued = await store.acceptBuffer({ from: '', recipients: [q.meta.from], isDsn: true }, dsn);
  log.info({ queueId: q.meta.id, dsnQueueId: queued.meta.id, to: q.meta.from }, 'DSN queued');
  return queued;
}
