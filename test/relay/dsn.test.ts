// DSN parameters through the whole relay (RFC 3461): passed on to a next hop that
// announces DSN (recipients grouped by NOTIFY/ORCPT, one transaction each, as the sink's
// MAIL/RCPT lines show), not to one that does not; the relay's own notices follow NOTIFY
// (NEVER: none; SUCCESS to a hop without DSN: "relayed"; DELAY: one "delayed" notice) and
// carry ENVID and ORCPT back. The sender's domain has its MX at the same sink, so every
// notice the relay sends lands there too, from the null sender.
import { afterEach, describe, expect, it } from 'vitest';
import { startWorld, PASSWORD, type World } from './fixture.ts';
import { SmtpTalk, authPlain } from '../support/smtp-talk.ts';
import { scrape, metricValue, waitUntil } from '../support/relay-harness.ts';
import type { SinkOptions } from '../support/sink.ts';

let w: World | undefined;
afterEach(async () => { await w?.close(); w = undefined; });

async function submit(world: World, mail: string, rcpts: string[], subject: string): Promise<string> {
  const { talk } = await SmtpTalk.connect(world.relay.port('submission'));
  await talk.cmd('EHLO client.test');
  await talk.starttls();
  await talk.cmd('EHLO client.test');
  expect((await talk.cmd(`AUTH PLAIN ${authPlain('alice', PASSWORD)}`)).code).toBe(235);
  expect((await talk.cmd(`MAIL FROM:<app@example.test>${mail ? ` ${mail}` : ''}`)).code).toBe(250);
  for (const r of rcpts) expect((await talk.cmd(`RCPT TO:${r}`)).code, r).toBe(250);
  expect((await talk.cmd('DATA')).code).toBe(354);
  const done = await talk.cmd(`From: app@example.test\r\nSubject: ${subject}\r\n\r\nbody\r\n.`);
  expect(done.code).toBe(250);
  talk.close();
  return /queued as ([0-9A-Z]+)/.exec(done.text)![1]!;
}

async function world(sink: SinkOptions = {}, overrides: Parameters<typeof startWorld>[0] = {}): Promise<World> {
  w = await startWorld(overrides, sink);
  return w;
}

const notices = (x: World) => x.sink.messages.filter((m) => m.from === '');
const mailOf = (x: World) => x.sink.messages.filter((m) => m.from !== '');

describe('DSN parameters at delivery', () => {
  it('passes RET, ENVID, NOTIFY and ORCPT on to a hop that announces DSN, one transaction per NOTIFY/ORCPT group', async () => {
    const x = await world();
    await submit(x, 'RET=HDRS ENVID=env+2B1', [
      '<a@dest.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;a@dest.test',
      '<b@dest.test> NOTIFY=NEVER',
      '<c@dest.test> NOTIFY=NEVER',
      '<d@dest.test>',
    ], 'groups');
    await waitUntil('delivered and gone from the queue', () => mailOf(x).flatMap((m) => m.to).length === 4 && x.relay.relay.queue.size === 0);
    // b and c share their parameters: one transaction; a and d have theirs
    expect(mailOf(x).map((m) => m.to.sort().join(',')).sort()).toEqual(['a@dest.test', 'b@dest.test,c@dest.test', 'd@dest.test']);
    for (const m of x.sink.mailCommands) expect(m.args).toMatchObject({ RET: 'HDRS', ENVID: 'env+1' });
    const rcpt = (a: string) => x.sink.rcptCommands.find((r) => r.address === a)!.args;
    expect(rcpt('a@dest.test')).toEqual({ NOTIFY: 'SUCCESS,FAILURE', ORCPT: 'rfc822;a@dest.test' });
    expect(rcpt('b@dest.test')).toEqual({ NOTIFY: 'NEVER' });
    expect(rcpt('d@dest.test')).toEqual({});
    // the hop announced DSN: the success notice for a is its business, none from the relay
    expect(notices(x)).toEqual([]);
    expect(metricValue(await scrape(x.relay.httpPort), 'mailfleet_dsn_generated_total')).toBe(0);
  });

  it('sends no parameters to a hop without DSN, and a "relayed" notice for NOTIFY=SUCCESS with ENVID and ORCPT', async () => {
    const x = await world({ dsn: false });
    await submit(x, 'ENVID=batch-7', ['<a@dest.test> NOTIFY=SUCCESS ORCPT=rfc822;list+2Ba@dest.test', '<b@dest.test>'], 'relayed');
    await waitUntil('the relayed notice', () => notices(x).length === 1 && x.relay.relay.queue.size === 0);
    for (const m of x.sink.mailCommands) expect(m.args).not.toHaveProperty('ENVID');
    for (const r of x.sink.rcptCommands) expect(r.args).toEqual({});
    const text = notices(x)[0]!.data!.toString();
    expect(notices(x)[0]!.to).toEqual(['app@example.test']);
    expect(text).toContain('Subject: Relayed Mail Delivery Report');
    expect(text).toContain('Original-Envelope-Id: batch-7');
    expect(text).toContain('Original-Recipient: rfc822; list+a@dest.test\r\nFinal-Recipient: rfc822; a@dest.test\r\nAction: relayed\r\nStatus: 2.0.0');
    // b asked for nothing: failure notices only, and it did not fail
    expect(text).not.toContain('Final-Recipient: rfc822; b@dest.test');
  });

  it('honours NOTIFY in failure notices: NEVER gets none, FAILURE and no NOTIFY get one', async () => {
    const x = await world({ rcptReply: (rcpt) => (rcpt.startsWith('gone') ? { code: 550, message: '5.1.1 no such user' } : undefined) });
    await submit(x, '', ['<gone-quiet@dest.test> NOTIFY=NEVER', '<gone-loud@dest.test> NOTIFY=FAILURE', '<gone-default@dest.test>'], 'failing');
    await waitUntil('one notice and an empty queue', () => notices(x).length === 1 && x.relay.relay.queue.size === 0);
    const text = notices(x)[0]!.data!.toString();
    expect(text).toContain('Final-Recipient: rfc822; gone-loud@dest.test\r\nAction: failed\r\nStatus: 5.1.1');
    expect(text).toContain('Final-Recipient: rfc822; gone-default@dest.test');
    expect(text).not.toContain('gone-quiet@dest.test');
    // a message whose every failure said NEVER produces no notice at all
    await submit(x, '', ['<gone-silent@dest.test> NOTIFY=NEVER'], 'silent');
    await waitUntil('the silent message bounced without a notice', async () => metricValue(await scrape(x.relay.httpPort), 'mailfleet_messages_bounced_total') === 4
      && x.relay.relay.queue.size === 0);
    expect(notices(x)).toHaveLength(1);
    expect(metricValue(await scrape(x.relay.httpPort), 'mailfleet_dsn_generated_total')).toBe(1);
  });

  it('returns the whole message for RET=FULL and only the headers for RET=HDRS', async () => {
    const x = await world({ rcptReply: (rcpt) => (rcpt.startsWith('gone') ? { code: 550, message: '5.1.1 no such user' } : undefined) });
    await submit(x, 'RET=FULL', ['<gone-full@dest.test>'], 'full return');
    await submit(x, 'RET=HDRS', ['<gone-hdrs@dest.test>'], 'headers return');
    await waitUntil('two notices', () => notices(x).length === 2 && x.relay.relay.queue.size === 0);
    const full = notices(x).find((m) => m.data!.includes('gone-full@dest.test'))!.data!.toString();
    const hdrs = notices(x).find((m) => m.data!.includes('gone-hdrs@dest.test'))!.data!.toString();
    expect(full).toMatch(/Content-Type: message\/rfc822\r\nContent-Transfer-Encoding: 8bit\r\n\r\n[^]*Subject: full return\r\n\r\nbody\r\n/);
    expect(full).toContain('Your message is attached.');
    expect(hdrs).toContain('Content-Type: text/rfc822-headers');
    expect(hdrs).toContain('Subject: headers return');
    expect(hdrs).not.toMatch(/\r\n\r\nbody\r\n/);
  });

  it('sends one "delayed" notice to a NOTIFY=DELAY recipient that is deferred, none to the others', async () => {
    const x = await world({ rcptReply: (rcpt, attempt) => (rcpt.startsWith('slow') && attempt < 3 ? { code: 451, message: '4.3.0 try again' } : undefined) });
    await submit(x, 'ENVID=d1', ['<slow-delay@dest.test> NOTIFY=DELAY,FAILURE', '<slow-plain@dest.test>'], 'slow');
    await waitUntil('both delivered and the queue empty', () => mailOf(x).flatMap((m) => m.to).length === 2 && x.relay.relay.queue.size === 0, 30_000);
    expect(notices(x)).toHaveLength(1);
    const text = notices(x)[0]!.data!.toString();
    expect(text).toContain('Subject: Delayed Mail (still being retried)');
    expect(text).toContain('Original-Envelope-Id: d1');
    expect(text).toMatch(/Final-Recipient: rfc822; slow-delay@dest\.test\r\nAction: delayed\r\nStatus: 4\.3\.0\r\n/);
    expect(text).toMatch(/Will-Retry-Until: /);
    expect(text).not.toContain('slow-plain@dest.test');
    const m = await scrape(x.relay.httpPort);
    expect(metricValue(m, 'mailfleet_messages_deferred_total')).toBe(4);
  });
});
