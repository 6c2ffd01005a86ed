// Pure queue logic: retry timing, the due-time heap, DSN format, PROXY header parsing.
import { describe, expect, it } from 'vitest';
import { backoffAfter, isExpired, nextAttemptAt } from '../../relay/queue/schedule.ts';
import { TimerHeap } from '../../relay/util/timer-heap.ts';
import { buildDsn } from '../../relay/bounce/dsn.ts';
import { parseProxyHeader } from '../../relay/smtp/proxy-protocol.ts';

const policy = { retrySchedule: [60_000, 300_000, 900_000], maxLifetime: 86_400_000 };

describe('retry schedule', () => {
  it('walks the schedule and repeats its last step', () => {
    expect([1, 2, 3, 4, 9].map((n) => backoffAfter(n, policy))).toEqual([60_000, 300_000, 900_000, 900_000, 900_000]);
  });
  it('never schedules past the expiry, so the last try happens at the deadline', () => {
    expect(nextAttemptAt(1, 0, 1000, policy)).toBe(61_000);
    expect(nextAttemptAt(5, 0, 86_000_000, policy)).toBe(86_400_000);
    expect(isExpired(0, 86_399_999, policy)).toBe(false);
    expect(isExpired(0, 86_400_000, policy)).toBe(true);
  });
});

describe('timer heap', () => {
  it('pops what is due in due order, ties in insertion order', () => {
    const h = new TimerHeap<string>();
    const times = [50, 10, 40, 10, 30, 20, 60, 0];
    times.forEach((t, i) => h.push(t, `m${i}`));
    expect(h.popDue(-1)).toBeUndefined();
    const out: string[] = [];
    for (let v = h.popDue(100); v !== undefined; v = h.popDue(100)) out.push(v);
    expect(out).toEqual(['m7', 'm1', 'm3', 'm5', 'm4', 'm2', 'm0', 'm6']);
  });
});

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

describe('PROXY protocol', () => {
  it('parses v1 TCP4/TCP6/UNKNOWN and waits for a complete line', () => {
    const line = 'PROXY TCP4 203.0.113.9 10.0.0.1 51234 587\r\n';
    expect(parseProxyHeader(Buffer.from(`${line}EHLO`))).toEqual({ done: true, consumed: line.length, info: { remoteAddress: '203.0.113.9', remotePort: 51234 } });
    expect(parseProxyHeader(Buffer.from('PROXY TCP6 2001:db8::1 ::1 4000 587\r\n'))).toMatchObject({ done: true, info: { remoteAddress: '2001:db8::1' } });
    expect(parseProxyHeader(Buffer.from('PROXY UNKNOWN\r\n'))).toEqual({ done: true, consumed: 15, info: {} });
    expect(parseProxyHeader(Buffer.from('PROXY TCP4 1.2'))).toEqual({ done: false });
    expect(() => parseProxyHeader(Buffer.from('EHLO me\r\n'))).toThrow(/not a PROXY header/);
    expect(() => parseProxyHeader(Buffer.from('PROXY TCP4 999.1.1.1 10.0.0.1 1 2\r\n'))).toThrow(/bad PROXY source address/);
  });
  it('parses v2 PROXY and LOCAL for IPv4 and IPv6', () => {
    const sig = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
    const v4 = Buffer.concat([sig, Buffer.from([0x21, 0x11, 0x00, 12, 198, 51, 100, 7, 10, 0, 0, 1, 0xc0, 0x00, 0x02, 0x4b]), Buffer.from('EHLO')]);
    expect(parseProxyHeader(v4)).toEqual({ done: true, consumed: 28, info: { remoteAddress: '198.51.100.7', remotePort: 49152 } });
    expect(parseProxyHeader(v4.subarray(0, 20))).toEqual({ done: false });
    const v6body = Buffer.alloc(36);
    Buffer.from('20010db8000000000000000000000042', 'hex').copy(v6body, 0);
    v6body.writeUInt16BE(1234, 32);
    expect(parseProxyHeader(Buffer.concat([sig, Buffer.from([0x21, 0x21, 0x00, 36]), v6body]))).toMatchObject({ info: { remoteAddress: '2001:db8::42', remotePort: 1234 } });
    expect(parseProxyHeader(Buffer.concat([sig, Buffer.from([0x20, 0x00, 0x00, 0x00])]))).toEqual({ done: true, consumed: 16, info: {} });
  });
});

describe('queue recovery', () => {
  it('recovers committed messages and sets an unreadable file aside instead of refusing to start', async () => {
    const fs = await import('node:fs');
    const os = await import('node:os');
    const path = await import('node:path');
    const { Readable } = await import('node:stream');
    const { QueueStore } = await import('../../relay/queue/store.ts');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mailfleet-queue-'));
    const first = await QueueStore.open(dir);
    const q = await first.store.accept({ from: 'a@example.test', recipients: ['b@dest.test'] }, Readable.from([Buffer.from('Subject: x\r\n\r\nhi\r\n')]), { maxSize: 1000 });
    fs.writeFileSync(path.join(dir, 'msg', 'GARBAGE'), 'not a queue file');
    fs.writeFileSync(path.join(dir, 'tmp', 'HALF'), 'never acknowledged');
    const again = await QueueStore.open(dir);
    expect(again.recovered).toBe(1);
    expect(again.discarded).toBe(1);
    expect(again.corrupt).toEqual(['GARBAGE']);
    expect(again.store.get(q.meta.id)?.meta.recipients).toEqual(['b@dest.test']);
    expect(fs.readdirSync(path.join(dir, 'corrupt'))).toEqual(['GARBAGE']);
    expect(fs.readdirSync(path.join(dir, 'tmp'))).toEqual([]);
  });
});

describe('header From alignment', () => {
  it('relaxed: same domain or a subdomain; a parent only when served; never a bare suffix', async () => {
    const { aligned } = await import('../../relay/senders/domains.ts');
    const served = (d: string) => d === 'example.com';
    expect(aligned('example.com', 'example.com', 'strict')).toBe(true);
    expect(aligned('news.example.com', 'example.com', 'strict')).toBe(false);
    expect(aligned('news.example.com', 'example.com', 'relaxed')).toBe(true);
    expect(aligned('example.com', 'bounces.example.com', 'relaxed', served)).toBe(true);
    expect(aligned('com', 'example.com', 'relaxed', served)).toBe(false);
    expect(aligned('test', 'example.test', 'relaxed')).toBe(false);
    expect(aligned('bank.test', 'example.test', 'relaxed', served)).toBe(false);
    expect(aligned('bank.test', 'example.test', 'off')).toBe(true);
  });
});
