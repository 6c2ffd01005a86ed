// Delivery status notifications (RFC 3464) built for bounces and expiries.
import { describe, expect, it } from 'vitest';
import { buildDsn } from '../../../relay/bounce/dsn.ts';

describe('DSN', () => {
  it('is an RFC 3464 multipart/report with per-recipient status and the original headers only', () => {
    const dsn = buildDsn({
      reportingMta: 'relay.test', queueId: 'Q1', originalSender: 'app@example.test', arrivalDate: new Date(0),
      failures: [
        { recipient: 'a@x.test', result: { status: 'failed', response: '550 5.1.1 no such user', code: 550, enhanced: '5.1.1', remote: 'mx.x.test', at: 0 } },
        { recipient: 'b@y.test', result: { status: 'expired', response: 'expired after 9 attempts', at: 0 } },
      ],
      originalHeaders: Buffer.from('Subject: hi\r\nFrom: app@example.test\r\n'),
    }).toString();
    expect(dsn).toMatch(/^From: Mail Delivery System <MAILER-DAEMON@relay\.test>\r\n/);
    expect(dsn).toContain('Auto-Submitted: auto-replied');
    expect(dsn).toMatch(/Content-Type: multipart\/report; report-type=delivery-status; boundary="([^"]+)"/);
    expect(dsn).toContain('Content-Type: message/delivery-status');
    expect(dsn).toContain('Final-Recipient: rfc822; a@x.test\r\nAction: failed\r\nStatus: 5.1.1\r\nRemote-MTA: dns; mx.x.test');
    expect(dsn).toContain('Final-Recipient: rfc822; b@y.test\r\nAction: failed\r\nStatus: 4.4.7');
    expect(dsn).toContain('Content-Type: text/rfc822-headers\r\n\r\nSubject: hi\r\nFrom: app@example.test\r\n');
    expect(dsn.trimEnd().endsWith('--')).toBe(true);
  });
});
