// Intake over real sockets: AUTH only over TLS, no open relay, limits announced and
// enforced, exact reply codes, and the relay keeps serving after abuse.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { startWorld, PASSWORD, type World } from './fixture.ts';
import { SmtpTalk, authPlain } from '../support/smtp-talk.ts';
import { haveTools } from '../support/tools.ts';
import { scrape, metricValue } from '../support/relay-harness.ts';

let w: World;
beforeAll(async () => { w = await startWorld(); });
afterAll(async () => { await w?.close(); });

async function ehloOn(listener: string, tls = false) {
  const { talk, greeting } = await SmtpTalk.connect(w.relay.port(listener), '127.0.0.1', { tls });
  expect(greeting.code).toBe(220);
  const ehlo = await talk.cmd('EHLO client.test');
  return { talk, ehlo };
}

describe('intake', () => {
  it('accepts an authenticated message over STARTTLS and delivers it via MX', async () => {
    const info = await w.send({ subject: 'first' });
    expect(info.response).toMatch(/^250 2\.0\.0 Ok: queued as [0-9A-Z]+/);
    const [msg] = await w.sink.waitFor(1);
    expect(msg!.to).toEqual(['bob@dest.test']);
    expect(msg!.from).toBe('app@example.test');
    const text = msg!.data!.toString();
    expect(text).toMatch(/^Received: from client|^Received: from /);
    expect(text).toContain('by relay.test (MailFleet submission) with ESMTPSA');
    expect(text).toContain('Subject: first');
    const metrics = await scrape(w.relay.httpPort);
    expect(metricValue(metrics, 'mailfleet_messages_received_total', { listener: 'submission' })).toBeGreaterThanOrEqual(1);
  });

  it('accepts on the implicit TLS listener', async () => {
    const before = w.sink.messages.length;
    await w.send({ port: 'smtps', subject: 'implicit' });
    await w.sink.waitFor(before + 1);
    expect(w.sink.messages.at(-1)!.data!.toString()).toContain('Subject: implicit');
  });

  it('announces SIZE, PIPELINING, 8BITMIME, SMTPUTF8, ENHANCEDSTATUSCODES and no AUTH before TLS', async () => {
    const { talk, ehlo } = await ehloOn('submission');
    const kw = ehlo.lines.map((l) => l.split(' ')[0]);
    expect(kw).toEqual(expect.arrayContaining(['PIPELINING', '8BITMIME', 'SMTPUTF8', 'ENHANCEDSTATUSCODES', 'STARTTLS', 'SIZE']));
    expect(ehlo.lines).toContain('SIZE 200000');
    expect(kw).not.toContain('AUTH');
    const auth = await talk.cmd(`AUTH PLAIN ${authPlain('alice', PASSWORD)}`);
    expect(auth.code).toBeGreaterThanOrEqual(500);
    expect(auth.code).not.toBe(235);
    const mail = await talk.cmd('MAIL FROM:<app@example.test>');
    expect(mail.text).toMatch(/^530 5\.7\.0/);
    talk.close();
  });

  it('refuses a wrong password with 535 5.7.8 and counts it', async () => {
    const { talk } = await ehloOn('submission');
    await talk.starttls();
    await talk.cmd('EHLO client.test');
    const r = await talk.cmd(`AUTH PLAIN ${authPlain('alice', 'wrong')}`);
    expect(r.text).toMatch(/^535 5\.7\.8/);
    const unknown = await talk.cmd(`AUTH PLAIN ${authPlain('mallory', 'x')}`);
    expect(unknown.text).toMatch(/^535 5\.7\.8/);
    talk.close();
    const metrics = await scrape(w.relay.httpPort);
    expect(metricValue(metrics, 'mailfleet_auth_failures_total')).toBeGreaterThanOrEqual(2);
  });

  it('is no open relay: no AUTH, foreign sender domains and relay paths are refused', async () => {
    const { talk } = await ehloOn('submission');
    await talk.starttls();
    await talk.cmd('EHLO client.test');
    expect((await talk.cmd('MAIL FROM:<x@example.test>')).text).toMatch(/^530 5\.7\.0/);
    expect((await talk.cmd(`AUTH PLAIN ${authPlain('alice', PASSWORD)}`)).code).toBe(235);
    expect((await talk.cmd('MAIL FROM:<ceo@bank.test>')).text).toMatch(/^550 5\.7\.1 Sender domain bank\.test is not allowed for login alice/);
    expect((await talk.cmd('MAIL FROM:<app@example.test>')).code).toBe(250);
    expect((await talk.cmd('RCPT TO:<victim%other.test@dest.test>')).text).toMatch(/^553 5\.1\.3/);
    expect((await talk.cmd('RCPT TO:<victim!other.test@dest.test>')).text).toMatch(/^553 5\.1\.3/);
    expect((await talk.cmd('RCPT TO:<"victim@other.test"@dest.test>')).text).toMatch(/^5\d\d 5\.1\.3/);
    // RFC 5321 §4.1.4: a source route is ignored, never followed; either answer is safe.
    expect([250, 501, 550, 553]).toContain((await talk.cmd('RCPT TO:<@dest.test:victim@other.test>')).code);
    expect((await talk.cmd('RCPT TO:<bob@dest.test>')).code).toBe(250);
    talk.close();
  });

  it('lets a trusted network send without AUTH on the plain listener, only for its domains', async () => {
    const { talk } = await ehloOn('plain');
    expect((await talk.cmd('MAIL FROM:<app@example.test>')).text).toMatch(/^550 5\.7\.1/);
    expect((await talk.cmd('MAIL FROM:<cron@legacy.test>')).code).toBe(250);
    talk.close();
    const { talk: outsider, greeting } = await SmtpTalk.connect(w.relay.port('plain'), '127.0.0.1', { localAddress: '127.0.0.9' });
    expect(greeting.text).toMatch(/^554 5\.7\.1/);
    outsider.close();
  });

  it('enforces the recipient and size limits', async () => {
    const { talk } = await ehloOn('plain');
    await talk.cmd('MAIL FROM:<cron@legacy.test>');
    for (let i = 0; i < 5; i++) expect((await talk.cmd(`RCPT TO:<r${i}@dest.test>`)).code).toBe(250);
    expect((await talk.cmd('RCPT TO:<r6@dest.test>')).text).toMatch(/^452 4\.5\.3|^452 /);
    await talk.cmd('RSET');
    expect((await talk.cmd('MAIL FROM:<cron@legacy.test> SIZE=999999')).code).toBe(552);
    await talk.cmd('MAIL FROM:<cron@legacy.test>');
    await talk.cmd('RCPT TO:<big@dest.test>');
    expect((await talk.cmd('DATA')).code).toBe(354);
    const line = `${'x'.repeat(998)}\r\n`;
    talk.write(`Subject: big\r\n\r\n${line.repeat(250)}.\r\n`);
    expect((await talk.read()).text).toMatch(/^552 5\.[23]\.[34]/);
    // The session goes on after the refusal.
    expect((await talk.cmd('NOOP')).code).toBe(250);
    talk.close();
  });

  it('answers garbage and overlong lines with codes and keeps serving', async () => {
    const { talk } = await ehloOn('plain');
    expect((await talk.cmd('FOO BAR')).text).toMatch(/^500 5\.5\.[12]/);
    expect((await talk.cmd('MAIL FROM:not-an-address')).code).toBeGreaterThanOrEqual(500);
    const r = await talk.cmd(`NOOP ${'a'.repeat(20_000)}`).catch(() => ({ code: 0, text: 'closed' }));
    expect([0, 500, 501, 421, 250]).toContain(r.code);
    talk.close();
    const before = w.sink.messages.length;
    await w.send({ subject: 'still alive' });
    await w.sink.waitFor(before + 1);
  });

  it('accepts mail from swaks, a real independent client', async (ctx) => {
    if (!haveTools('swaks', ['swaks'])) return ctx.skip();
    const before = w.sink.messages.length;
    // Async on purpose: the relay under test runs in this process and must keep serving.
    const { stdout: out } = await promisify(execFile)('swaks', [
      '--server', `127.0.0.1:${w.relay.port('submission')}`, '--tls', '--auth', 'LOGIN',
      '--auth-user', 'alice', '--auth-password', PASSWORD,
      '--from', 'swaks@example.test', '--to', 'carol@dest.test', '--header', 'Subject: via swaks',
    ], { encoding: 'utf8', timeout: 30_000 });
    expect(out).toMatch(/250 2\.0\.0 Ok: queued as/);
    await w.sink.waitFor(before + 1);
    expect(w.sink.messages.at(-1)!.to).toEqual(['carol@dest.test']);
  });
});

describe('greeting delay (early-talker check, off by default)', () => {
  it('with greetingDelay set, refuses a client that talks before the greeting', async () => {
    const { startWorld: start } = await import('./fixture.ts');
    const delayed = await start({ limits: { maxMessageSize: 200_000, maxRecipients: 5, greetingDelay: '300ms' } });
    try {
      const { talk, greeting } = await SmtpTalk.connect(delayed.relay.port('plain'), '127.0.0.1', { preamble: Buffer.from('EHLO eager.test\r\n') });
      expect(greeting.text).toMatch(/^421 .*You talk too soon/);
      talk.close();
      const polite = await SmtpTalk.connect(delayed.relay.port('plain'));
      expect(polite.greeting.code).toBe(220);
      polite.talk.close();
    } finally {
      await delayed.close();
    }
  });
});
