// A message accepted with SMTPUTF8 (a non-ASCII recipient) whose MX does not announce
// SMTPUTF8: that recipient bounces at once with a 5.6.7 DSN to the sender (RFC 6531 §3.5),
// is not retried, and the MX never sees its address; the ASCII recipient is delivered.
import { afterEach, describe, expect, it } from 'vitest';
import { startWorld, type World } from './fixture.ts';
import { scrape, metricValue, waitUntil } from '../support/relay-harness.ts';

let w: World | undefined;
afterEach(async () => { await w?.close(); w = undefined; });

describe('SMTPUTF8 through the relay', () => {
  it('bounces a non-ASCII recipient once with a 5.6.7 DSN when the MX lacks SMTPUTF8', async () => {
    w = await startWorld({}, { smtputf8: false });
    await w.send({ from: 'app@example.test', to: ['josé@dest.test', 'ok@dest.test'], subject: 'utf8' });
    const msgs = await w.sink.waitFor(2, 30_000);
    const dsn = msgs.find((m) => m.from === '');
    expect(dsn, 'a DSN from the null sender').toBeDefined();
    expect(dsn!.to).toEqual(['app@example.test']);
    const text = dsn!.data!.toString();
    expect(text).toContain('Action: failed');
    expect(text).toContain('Status: 5.6.7');
    expect(text).toMatch(/does not announce SMTPUTF8/);
    expect(msgs.find((m) => m.from !== '')!.to).toEqual(['ok@dest.test']);
    expect(w.sink.mailCommands.filter((c) => /[^\x00-\x7f]/.test(c.address))).toEqual([]);
    await waitUntil('queue empty', () => w!.relay.relay.queue.size === 0);
    const m = await scrape(w.relay.httpPort);
    expect(metricValue(m, 'mailfleet_messages_deferred_total')).toBe(0);
    expect(metricValue(m, 'mailfleet_messages_bounced_total', { reason: 'failed' })).toBe(1);
  });
});
