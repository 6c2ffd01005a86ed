// Turns the outcomes of a message into RFC 3464 notices queued back to its sender, as the
// recipients' NOTIFY asked (RFC 3461 §4.1; without NOTIFY: failures only): used by the
// delivery runner and by queue control (`queue delete --dsn`).
import type { Logger } from '../log.ts';
import { buildDsn, FULL_RETURN_MAX, type DsnReport } from '../bounce/dsn.ts';
import { wantsNotice } from './dsn.ts';
import type { DeliveryState, QueuedMessage, QueueStore, RecipientResult } from './store.ts';

/**
 * Queues the notice for the final outcomes in `state`: failed and expired recipients that
 * want FAILURE notices, and delivered ones that asked for SUCCESS but went to a hop that
 * does not announce DSN ("relayed"). Undefined when nothing is due.
 */
export async function queueDsn(store: QueueStore, q: QueuedMessage, state: DeliveryState, hostname: string, log: Logger): Promise<QueuedMessage | undefined> {
  const reports: DsnReport[] = [];
  let silenced = 0;
  for (const recipient of q.meta.recipients) {
    const result = state.done[recipient];
    if (!result) continue;
    if (result.status !== 'delivered') {
      if (wantsNotice(q.meta, recipient, 'FAILURE')) reports.push(report(q, recipient, result, 'failed'));
      else silenced++;
    } else if (wantsNotice(q.meta, recipient, 'SUCCESS') && !result.nextHopDsn) {
      reports.push(report(q, recipient, result, 'relayed'));
    }
  }
  if (silenced > 0) log.info({ queueId: q.meta.id, recipients: silenced }, 'no failure notice: NOTIFY did not ask for one');
  return queueNotice(store, q, reports, hostname, log);
}

/** Queues a "delayed" notice for deferred recipients that asked for one (NOTIFY=DELAY). */
export async function queueDelayDsn(
  store: QueueStore, q: QueuedMessage, deferred: Array<{ recipient: string; result: RecipientResult }>, willRetryUntil: Date, hostname: string, log: Logger,
): Promise<QueuedMessage | undefined> {
  const reports = deferred.filter((d) => wantsNotice(q.meta, d.recipient, 'DELAY')).map((d) => report(q, d.recipient, d.result, 'delayed'));
  return queueNotice(store, q, reports, hostname, log, willRetryUntil);
}

function report(q: QueuedMessage, recipient: string, result: RecipientResult, action: DsnReport['action']): DsnReport {
  const orcpt = q.meta.rcptDsn?.[recipient]?.orcpt;
  return { recipient, result, action, ...(orcpt ? { orcpt } : {}) };
}

async function queueNotice(
  store: QueueStore, q: QueuedMessage, reports: DsnReport[], hostname: string, log: Logger, willRetryUntil?: Date,
): Promise<QueuedMessage | undefined> {
  if (reports.length === 0) return undefined;
  // RFC 5321 §4.5.5: never bounce a bounce, never send to the null sender.
  if (q.meta.from === '' || q.meta.isDsn) {
    log.warn({ queueId: q.meta.id, reports: reports.length }, 'no DSN: null sender');
    return undefined;
  }
  // RET=FULL: the whole message comes back with failures (RFC 3461 §4.3), if it is small
  const full = q.meta.dsn?.ret === 'FULL' && reports.some((r) => (r.action ?? 'failed') === 'failed')
    ? await store.readMessage(q.meta.id, FULL_RETURN_MAX) : undefined;
  const dsn = buildDsn({
    reportingMta: hostname, queueId: q.meta.id, originalSender: q.meta.from,
    arrivalDate: new Date(q.meta.receivedAt), failures: reports, originalHeaders: await store.readHeaders(q.meta.id),
    ...(q.meta.dsn?.envid ? { envid: q.meta.dsn.envid } : {}), ...(willRetryUntil ? { willRetryUntil } : {}),
    ...(full ? { originalMessage: full } : {}),
  });
  const queued = await store.acceptBuffer({ from: '', recipients: [q.meta.from], isDsn: true }, dsn);
  const actions = [...new Set(reports.map((r) => r.action ?? 'failed'))];
  log.info({ queueId: q.meta.id, dsnQueueId: queued.meta.id, to: q.meta.from, actions }, 'DSN queued');
  return queued;
}
