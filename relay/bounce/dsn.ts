// RFC 3464 delivery status notifications, built as plain text: a human part, the
// machine-readable message/delivery-status part and the original headers — or, when the
// client asked with RET=FULL and the message is small (FULL_RETURN_MAX), the whole message,
// so a bounce of a 25 MB message still stays small.
// One notice may report failed, delayed and relayed recipients (RFC 3461 §6); the
// client's ENVID and ORCPT come back as Original-Envelope-Id and Original-Recipient.
import crypto from 'node:crypto';
import type { RecipientResult } from '../queue/store.ts';

export type DsnAction = 'failed' | 'delayed' | 'relayed';

export interface DsnReport {
  recipient: string;
  result: RecipientResult;
  /** Default 'failed'. */
  action?: DsnAction;
  /** The client's ORCPT, decoded ("rfc822;a@b.example"). */
  orcpt?: string;
}

export interface DsnInput {
  reportingMta: string; // our hostname
  queueId: string;
  originalSender: string;
  arrivalDate: Date;
  failures: DsnReport[];
  originalHeaders: Buffer;
  /** The whole original message, to attach instead of the headers (RET=FULL, failures only). */
  originalMessage?: Buffer;
  /** The client's ENVID, decoded. */
  envid?: string;
  /** For delayed recipients: when the relay gives up. */
  willRetryUntil?: Date;
  now?: Date;
}

function statusCode(r: RecipientResult, action: DsnAction): string {
  if (action === 'relayed') return '2.0.0';
  const want = action === 'delayed' ? '4' : '[45]';
  if (r.enhanced && new RegExp(`^${want}\\.\\d{1,3}\\.\\d{1,3}$`).test(r.enhanced)) return r.enhanced;
  if (action === 'delayed') return '4.0.0';
  if (r.status === 'expired') return '4.4.7';
  return r.code && r.code >= 400 && r.code < 500 ? '4.0.0' : '5.0.0';
}

// Values from a client go into header-like fields: printable ASCII only, never a line break.
function field(text: string): string {
  return text.replace(/[^\x20-\x7e]/g, '?');
}

function originalRecipient(orcpt: string): string {
  const semi = orcpt.indexOf(';');
  return `${field(orcpt.slice(0, semi))}; ${field(orcpt.slice(semi + 1))}`;
}

function oneLine(text: string): string {
  return text.replace(/[\r\n]+/g, ' ').slice(0, 900);
}

export function buildDsn(input: DsnInput): Buffer {
  const now = input.now ?? new Date();
  const boundary = `mailfleet-dsn-${crypto.randomBytes(8).toString('hex')}`;
  const actionOf = (f: DsnReport): DsnAction => f.action ?? 'failed';
  const failed = input.failures.filter((f) => actionOf(f) === 'failed');
  const delayed = input.failures.filter((f) => actionOf(f) === 'delayed');
  const relayed = input.failures.filter((f) => actionOf(f) === 'relayed');
  const expired = failed.some((f) => f.result.status === 'expired');
  const section = (list: DsnReport[], intro: string) => (list.length
    ? ['', intro, '', ...list.map((f) => `<${f.recipient}>: ${oneLine(f.result.response)}`)]
    : []);
  const human = [
    `This is the mail system at ${input.reportingMta}.`,
    ...section(failed, expired
      ? 'Your message could not be delivered before it expired in the queue:'
      : 'Your message could not be delivered to one or more recipients:'),
    ...section(delayed, `Your message could not be delivered yet; it stays queued and is retried${input.willRetryUntil ? ` until ${input.willRetryUntil.toUTCString()}` : ''}. No action is needed:`),
    ...section(relayed, 'Your message was handed to a next hop that does not return delivery notifications (no further notice will follow):'),
    '',
    input.originalMessage ? 'Your message is attached.' : 'The headers of your message are attached.',
  ];
  const perRecipient = input.failures.map((f) => [
    ...(f.orcpt ? [`Original-Recipient: ${originalRecipient(f.orcpt)}`] : []),
    `Final-Recipient: rfc822; ${f.recipient}`,
    `Action: ${actionOf(f)}`,
    `Status: ${statusCode(f.result, actionOf(f))}`,
    ...(f.result.remote ? [`Remote-MTA: dns; ${f.result.remote}`] : []),
    ...(f.result.code ? [`Diagnostic-Code: smtp; ${oneLine(f.result.response)}`] : [`Diagnostic-Code: X-MailFleet; ${oneLine(f.result.response)}`]),
    `Last-Attempt-Date: ${new Date(f.result.at).toUTCString()}`,
    ...(actionOf(f) === 'delayed' && input.willRetryUntil ? [`Will-Retry-Until: ${input.willRetryUntil.toUTCString()}`] : []),
  ].join('\r\n'));
  const subject = failed.length
    ? (expired ? 'Delivery expired' : 'Undelivered Mail Returned to Sender')
    : delayed.length ? 'Delayed Mail (still being retried)' : 'Relayed Mail Delivery Report';
  const lines = [
    `From: Mail Delivery System <MAILER-DAEMON@${input.reportingMta}>`,
    `To: <${input.originalSender}>`,
    `Subject: ${subject}`,
    `Date: ${now.toUTCString()}`,
    `Message-ID: <${input.queueId}.dsn.${crypto.randomBytes(4).toString('hex')}@${input.reportingMta}>`,
    'Auto-Submitted: auto-replied',
    'MIME-Version: 1.0',
    `Content-Type: multipart/report; report-type=delivery-status; boundary="${boundary}"`,
    '',
    `--${boundary}`,
    'Content-Type: text/plain; charset=utf-8',
    'Content-Transfer-Encoding: 8bit',
    '',
    ...human,
    `--${boundary}`,
    'Content-Type: message/delivery-status',
    '',
    ...(input.envid ? [`Original-Envelope-Id: ${field(input.envid)}`] : []),
    `Reporting-MTA: dns; ${input.reportingMta}`,
    `X-MailFleet-Queue-ID: ${input.queueId}`,
    `Arrival-Date: ${input.arrivalDate.toUTCString()}`,
    '',
    perRecipient.join('\r\n\r\n'),
    '',
    `--${boundary}`,
  ];
  if (input.originalMessage) {
    // the message as received (CRLF already); 8bit, as it came
    const msg = input.originalMessage;
    const end = msg.subarray(-2).equals(Buffer.from('\r\n')) ? '' : '\r\n';
    return Buffer.concat([
      Buffer.from(`${[...lines, 'Content-Type: message/rfc822', 'Content-Transfer-Encoding: 8bit', ''].join('\r\n')}\r\n`, 'utf8'),
      msg, Buffer.from(`${end}\r\n--${boundary}--\r\n`),
    ]);
  }
  const headers = input.originalHeaders.toString('utf8').replace(/\r?\n/g, '\r\n').replace(/(\r\n)+$/, '');
  return Buffer.from(`${[...lines, 'Content-Type: text/rfc822-headers', ''].join('\r\n')}\r\n${headers}\r\n\r\n--${boundary}--\r\n`, 'utf8');
}

/** The largest message a RET=FULL failure notice carries whole; larger ones get their headers. */
export const FULL_RETURN_MAX = 256 * 1024;
