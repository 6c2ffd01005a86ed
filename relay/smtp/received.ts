// The Received trace header (RFC 5321 §4.4) that the relay adds in front of each message.
import type { SMTPServerSession } from 'smtp-server';
import type { MessageMeta } from '../queue/store.ts';

export function receivedHeader(meta: MessageMeta, session: SMTPServerSession, hostname: string, listener: string): string {
  const helo = (session.hostNameAppearsAs || 'unknown').replace(/[^\x21-\x7e]/g, '');
  const proto = `ESMTP${session.secure ? 'S' : ''}${session.user ? 'A' : ''}`;
  const tls = session.secure && session.tlsOptions ? ` (${session.tlsOptions.version || 'TLS'} cipher ${session.tlsOptions.name})` : '';
  const rcpt = meta.recipients.length === 1 ? `\r\n\tfor <${meta.recipients[0]}>` : '';
  return `Received: from ${helo} ([${session.remoteAddress}])\r\n\tby ${hostname} (MailFleet ${listener}) with ${proto}${tls}\r\n\tid ${meta.id}${rcpt};\r\n\t${new Date(meta.receivedAt).toUTCString()}\r\n`;
}
