// RFC 3464 delivery status notifications, built as plain text: a human part, the
// machine-readable message/delivery-status part and the original headers (never the
// body, so a bounce of a 25 MB message stays small).
import crypto from 'node:crypto';
import type { RecipientResult } from '../queue/store.ts';

export interface DsnInput {
  reportingMta: string; // our hostname
  queueId: string;
  originalSender: string;
  arrivalDate: Date;
  failures: Array<{ recipient: string; result: RecipientResult }>;
  originalHeaders: Buffer;
  now?: Date;
}

function statusCode(r: RecipientResult): string {
  if (r.enhanced && /^[45]\.\d{1,3}\.\d{1,3}$/.test(r.enhanced)) return r.enhanced;
  if (r.status === 'expired') return '4.4.7';
  return r.code && r.code >= 400 && r.code < 500 ? '4.0.0' : '5.0.0';
}

function oneLine(text: string): string {
  return text.replace(/[\r\n]+/g, ' ').slice(0, 900);
}

export function buildDsn(input: DsnInput): Buffer {
  const now = input.now ?? new Date();
  const boundary = `mailfleet-dsn-${crypto.randomBytes(8).toString('hex')}`;
  const expired = input.failures.some((f) => f.result.status === 'expired');
  const human = [
    `This is the mail system at ${input.reportingMta}.`,
    '',
    expired
      ? 'Your message could not be delivered before it expired in the queue:'
      : 'Your message could not be delivered to one or more recipients:',
    '',
    ...input.failures.map((f) => `<${f.recipient}>: ${oneLine(f.result.response)}`),
    '',
    'The headers of your message are attached.',
  ];
  const perRecipient = input.failures.map((f) => [
    `Final-Recipient: rfc822; ${f.recipient}`,
    `Action: failed`,
    `Status: ${statusCode(f.result)}`,
    ...(f.result.remote ? [`Remote-MTA: dns; ${f.result.remote}`] : []),
    ...(f.result.code ? [`Diagnostic-Code: smtp; ${oneLine(f.result.response)}`] : [`Diagnostic-Code: X-MailFleet; ${oneLine(f.result.response)}`]),
    `Last-Attempt-Date: ${new Date(f.result.at).toUTCString()}`,
  ].join('\r\n'));
  const lines = [
    `From: Mail Delivery System <MAILER-DAEMON@${input.reportingMta}>`,
    `To: <${input.originalSender}>`,
    `Subject: ${expired ? 'Delivery expired' : 'Undelivered Mail Returned to Sender'}`,
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
    `Reporting-MTA: dns; ${input.reportingMta}`,
    `X-MailFleet-Queue-ID: ${input.queueId}`,
    `Arrival-Date: ${input.arrivalDate.toUTCString()}`,
    '',
    perRecipient.join('\r\n\r\n'),
    '',
    `--${boundary}`,
    'Content-Type: text/rfc822-headers',
    '',
  ];
  const headers = input.originalHeaders.toString('utf8').replace(/\r?\n/g, '\r\n').replace(/(\r\n)+$/, '');
  return Buffer.from(`${lines.join('\r\n')}\r\n${headers}\r\n\r\n--${boundary}--\r\n`, 'utf8');
}
