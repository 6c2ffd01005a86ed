// Retries and bounces through the whole relay: 4xx then success, 5xx → a DSN that
// reaches the sender's own mailbox (through the relay's queue), expiry with a short
// lifetime, and no DSN for the null sender.
import { afterEach, describe, expect, it } from 'vitest';
import { startWorld, type World } from './fixture.ts';
import { scrape, metricValue, waitUntil } from '../support/relay-harness.ts';

let w: World | undefined;
afterEach(async () => { await w?.close(); w = undefined; });

describe('retries and bounces', () => {
  it('retries a 4xx and delivers on a later attempt', async () => {
    w = await startWorld({}, { rcptReply: (rcpt, attempt) => (rcpt === 'slow@dest.test' && attempt < 3 ? { code: 451, message: '4.3.0 try again' } : undefined) });
    await w.send({ to: 'slow@dest.test', subject: 'retry me' });
    const [msg] = await w.sink.waitFor(1, 30_000);
    expect(msg!.to).toEqual(['slow@dest.test']);
    const m = await scrape(w.relay.httpPort);
    expect(metricValue(m, 'mailfleet_messages_deferred_total')).toBe(2);
    expect(metricValue(m, 'mailfleet_messages_delivered_total')).toBe(1);
  });

  it('bounces a 5xx with an RFC 3464 DSN to the sender, other recipients still delivered', async () => {
    w = await startWorld({}, { rcptReply: (rcpt) => (rcpt === 'gone@dest.test' ? { code: 550, message: '5.1.1 no such user' } : undefined) });
    // The sender's own domain has its MX at the sink too, so the DSN lands there.
    await w.send({ from: 'app@example.test', to: ['gone@dest.test', 'ok@dest.test'], subject: 'partly' });
    const msgs = await w.sink.waitFor(2, 30_000);
    const dsn = msgs.find((m) => m.from === '');
    expect(dsn, 'a DSN from the null sender').toBeDefined();
    expect(dsn!.to).toEqual(['app@example.test']);
    const text = dsn!.data!.toString();
    expect(text).toMatch(/Content-Type: multipart\/report; report-type=delivery-status/);
    expect(text).toContain('Final-Recipient: rfc822; gone@dest.test');
    expect(text).toContain('Action: failed');
    expect(text).toContain('Status: 5.1.1');
    expect(text).toMatch(/Diagnostic-Code: smtp; 550 5\.1\.1 no such user/);
    expect(text).toContain('Subject: partly'); // original headers attached
    expect(msgs.find((m) => m.from !== '')!.to).toEqual(['ok@dest.test']);
    const m = await scrape(w.relay.httpPort);
    expect(metricValue(m, 'mailfleet_messages_bounced_total', { reason: 'failed' })).toBe(1);
    expect(metricValue(m, 'mailfleet_dsn_generated_total')).toBe(1);
    await waitUntil('queue empty', () => w!.relay.relay.queue.size === 0);
  });

  it('expires a message that keeps failing and bounces it, without bouncing the bounce', async () => {
    // the 421 marks the one MX host down; a short backoff lets the DSN reach it again in time
    w = await startWorld({ queue: { retrySchedule: ['200ms'], maxLifetime: '2s' }, delivery: { hostDownBackoffMs: 100 } }, {
      rcptReply: (rcpt) => (rcpt.startsWith('app@') ? { code: 550, message: '5.1.1 sender mailbox gone' } : rcpt === 'never@dest.test' ? { code: 421, message: '4.4.2 busy' } : undefined),
    });
    await w.send({ to: 'never@dest.test', subject: 'doomed' });
    // The DSN goes to app@example.test, which the sink refuses with 550: the DSN itself
    // fails and, having the null sender, must not produce another DSN.
    await waitUntil('expiry, DSN attempt and empty queue', async () => {
      const m = await scrape(w!.relay.httpPort);
      return metricValue(m, 'mailfleet_messages_bounced_total', { reason: 'expired' }) === 1
        && metricValue(m, 'mailfleet_messages_bounced_total', { reason: 'failed' }) === 1
        && w!.relay.relay.queue.size === 0;
    }, 30_000);
    const m = await scrape(w.relay.httpPort);
    expect(metricValue(m, 'mailfleet_dsn_generated_total')).toBe(1);
    expect(metricValue(m, 'mailfleet_messages_deferred_total')).toBeGreaterThanOrEqual(2);
    expect(w.sink.messages).toHaveLength(0);
  });
});
