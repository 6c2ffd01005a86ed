// Sender domains through the whole relay over real sockets: DKIM (RSA-2048 and Ed25519)
// verified independently against the loopback DNS, allowed senders, From alignment,
// AUTH lockout, intake rate limits, destination pacing, dead-domain checks,
// suppression (and its CLI), webhooks.
import http from 'node:http';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { Resolver } from 'node:dns/promises';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { dkimVerify } from 'mailauth';
import { startWorld, PASSWORD, type World } from './fixture.ts';
import { makeKeyDir, type KeyDir } from '../dkim/keys-fixture.ts';
import { loadDkimKey, dkimTxtRecord } from '../../relay/dkim/index.ts';
import { SmtpTalk, authPlain } from '../support/smtp-talk.ts';
import { scrape, metricValue, waitUntil, repoRoot, tempDir } from '../support/relay-harness.ts';
import { verifyWebhookSignature } from '../../relay/webhooks/index.ts';
import fs from 'node:fs';

let keys: KeyDir;
beforeAll(() => { keys = makeKeyDir(); });
afterAll(() => keys?.cleanup());

let w: World | undefined;
afterEach(async () => { await w?.close(); w = undefined; });

const DOMAINS_BASE = [{ domain: 'legacy.test' }];

async function session(world: World) {
  const { talk } = await SmtpTalk.connect(world.relay.port('submission'));
  await talk.cmd('EHLO client.test');
  await talk.starttls();
  await talk.cmd('EHLO client.test');
  return talk;
}

async function login(world: World) {
  const talk = await session(world);
  expect((await talk.cmd(`AUTH PLAIN ${authPlain('alice', PASSWORD)}`)).code).toBe(235);
  return talk;
}

describe('sender domains', () => {
  it('signs with RSA-2048 and Ed25519; an independent verifier passes both against DNS', async () => {
    const rsaFile = keys.rsa('rsa.pem');
    const edFile = keys.ed25519('ed.pem');
    w = await startWorld({
      domains: [...DOMAINS_BASE, { domain: 'example.test', dkim: { keys: [
        { selector: 'rsa2026', algorithm: 'rsa-sha256', privateKeyFile: rsaFile },
        { selector: 'ed2026', algorithm: 'ed25519-sha256', privateKeyFile: edFile },
      ] } }],
    });
    const rsaKey = loadDkimKey({ selector: 'rsa2026', algorithm: 'rsa-sha256', privateKeyFile: rsaFile });
    const edKey = loadDkimKey({ selector: 'ed2026', algorithm: 'ed25519-sha256', privateKeyFile: edFile });
    w.dns.setZone({
      'dest.test': { MX: [{ preference: 10, exchange: 'mx.dest.test' }] },
      'mx.dest.test': { A: ['127.0.0.2'] },
      'rsa2026._domainkey.example.test': { TXT: [dkimTxtRecord(rsaKey)] },
      'ed2026._domainkey.example.test': { TXT: [dkimTxtRecord(edKey)] },
    });
    await w.send({ subject: 'signed', text: 'Line one\n\nLine   three  \n\n\n' });
    const [msg] = await w.sink.waitFor(1);
    const resolver = new Resolver();
    resolver.setServers([w.dns.address]);
    const res = await dkimVerify(msg!.data!, { resolver: (name: string, rr: string) => resolver.resolve(name, rr) as Promise<string[][]> });
    expect(res.results.map((r) => [r.selector, r.status?.result])).toEqual([['rsa2026', 'pass'], ['ed2026', 'pass']]);
    // Tampering is caught: the verifier is not a rubber stamp.
    const original = msg!.data!.toString();
    const tampered = Buffer.from(original.replace('Subject: signed', 'Subject: SIGNED'));
    expect(tampered.toString()).not.toBe(original);
    const bad = await dkimVerify(tampered, { resolver: (name: string, rr: string) => resolver.resolve(name, rr) as Promise<string[][]> });
    expect(bad.results.every((r) => r.status?.result === 'fail')).toBe(true);
  });

  it('refuses senders outside allowedSenders and a misaligned header From', async () => {
    w = await startWorld({ domains: [...DOMAINS_BASE, { domain: 'example.test', allowedSenders: ['noreply', 'billing-*'], fromAlignment: 'strict' }] });
    const talk = await login(w);
    expect((await talk.cmd('MAIL FROM:<ceo@example.test>')).text).toMatch(/^550 5\.7\.1 Sender ceo@example\.test is not an allowed sender/);
    expect((await talk.cmd('MAIL FROM:<billing-eu@example.test>')).code).toBe(250);
    expect((await talk.cmd('RCPT TO:<bob@dest.test>')).code).toBe(250);
    expect((await talk.cmd('DATA')).code).toBe(354);
    talk.write('From: "Bank" <security@bank.test>\r\nSubject: phish\r\n\r\nclick\r\n.\r\n');
    expect((await talk.read()).text).toMatch(/^550 5\.7\.1 Header From security@bank\.test does not align/);
    expect((await talk.cmd('MAIL FROM:<noreply@example.test>')).code).toBe(250);
    expect((await talk.cmd('RCPT TO:<bob@dest.test>')).code).toBe(250);
    expect((await talk.cmd('DATA')).code).toBe(354);
    talk.write('From: App <noreply@example.test>\r\nSubject: fine\r\n\r\nok\r\n.\r\n');
    expect((await talk.read()).code).toBe(250);
    talk.close();
    expect(w.relay.relay.queue.size + w.sink.messages.length).toBe(1);
  });

  it('locks a login for the failing address after repeated failures (454 4.7.0) even with the right password', async () => {
    w = await startWorld({ authThrottle: { maxFailuresPerLoginAndAddress: 3, maxFailuresPerAddress: 100, windowSeconds: 300, lockoutSeconds: 600 } });
    const talk = await session(w);
    for (let i = 0; i < 3; i++) expect((await talk.cmd(`AUTH PLAIN ${authPlain('alice', `guess${i}`)}`)).text).toMatch(/^535 5\.7\.8/);
    expect((await talk.cmd(`AUTH PLAIN ${authPlain('alice', PASSWORD)}`)).text).toMatch(/^454 4\.7\.0 Too many failed logins/);
    talk.close();
    const m = await scrape(w.relay.httpPort);
    expect(metricValue(m, 'mailfleet_auth_lockouts_total')).toBe(1);
    expect(fs.readFileSync(w.relay.logFile, 'utf8')).not.toMatch(/guess\d|correct horse/);
  });

  it('rate-limits a sender domain with 451 4.7.1 and delivers everything it accepted', async () => {
    w = await startWorld({ domains: [...DOMAINS_BASE, { domain: 'example.test', rateLimit: { perMinute: 3 } }] });
    const results: string[] = [];
    for (let i = 0; i < 5; i++) {
      results.push(await w.send({ subject: `n${i}` }).then((r) => r.response, (e: Error) => e.message));
    }
    expect(results.filter((r) => r.startsWith('250'))).toHaveLength(3);
    expect(results.filter((r) => /451 4\.7\.1 Rate limit for example\.test exceeded/.test(r))).toHaveLength(2);
    await w.sink.waitFor(3);
    const m = await scrape(w.relay.httpPort);
    expect(metricValue(m, 'mailfleet_ratelimit_refusals_total', { scope: 'domain' })).toBe(2);
  });

  it('paces delivery to a destination domain without deferring or failing mail', async () => {
    w = await startWorld({ rateLimits: { destinations: { 'dest.test': { perSecond: 5, burst: 1 } } } });
    for (let i = 0; i < 6; i++) await w.send({ subject: `paced ${i}` });
    await w.sink.waitFor(6, 20_000);
    const m = await scrape(w.relay.httpPort);
    expect(metricValue(m, 'mailfleet_messages_deferred_total')).toBe(0);
    expect(metricValue(m, 'mailfleet_messages_delivered_total')).toBe(6);
  });

  it('expires mail that pacing held back past its lifetime (and bounces it)', async () => {
    w = await startWorld({ rateLimits: { destinations: { 'dest.test': { perHour: 1 } } }, queue: { retrySchedule: ['200ms'], maxLifetime: '2s' } });
    await w.send({ subject: 'first, within the pace' });
    await w.send({ subject: 'second, held back' });
    await waitUntil('the held message to expire', async () => metricValue(await scrape(w!.relay.httpPort), 'mailfleet_messages_bounced_total', { reason: 'expired' }) === 1, 20_000);
    await waitUntil('its DSN', () => w!.sink.messages.some((m) => m.from === ''), 20_000);
    expect(w.sink.messages.find((m) => m.from === '')!.data!.toString()).toContain('held back by the destination rate limit');
    expect(w.sink.messages.filter((m) => m.from !== '')).toHaveLength(1);
  });

  it('refuses recipients of dead domains at RCPT (550 5.1.2) from a cached DNS answer', async () => {
    w = await startWorld();
    w.dns.setZone({
      'dest.test': { MX: [{ preference: 10, exchange: 'mx.dest.test' }] },
      'mx.dest.test': { A: ['127.0.0.2'] },
      'nullmx.test': { MX: [{ preference: 0, exchange: '.' }] },
      'nomail.test': { TXT: ['v=spf1 -all'] },
    });
    const talk = await login(w);
    expect((await talk.cmd('MAIL FROM:<app@example.test>')).code).toBe(250);
    expect((await talk.cmd('RCPT TO:<a@nullmx.test>')).text).toMatch(/^550 5\.1\.2 .*null MX/);
    expect((await talk.cmd('RCPT TO:<a@nxdomain.test>')).text).toMatch(/^550 5\.1\.2 .*does not exist/);
    expect((await talk.cmd('RCPT TO:<a@nomail.test>')).text).toMatch(/^550 5\.1\.2/);
    const before = w.dns.queries();
    expect((await talk.cmd('RCPT TO:<b@nullmx.test>')).code).toBe(550);
    expect(w.dns.queries()).toBe(before); // answered from the cache
    expect((await talk.cmd('RCPT TO:<bob@dest.test>')).code).toBe(250);
    talk.close();
  });

  it('suppresses a hard-bounced recipient, lists it in the CLI and takes it back on remove', async () => {
    w = await startWorld({}, { rcptReply: (rcpt) => (rcpt === 'gone@dest.test' ? { code: 550, message: '5.1.1 mailbox does not exist' } : undefined) });
    await w.send({ to: 'gone@dest.test', subject: 'first try' });
    await waitUntil('the DSN', () => w!.sink.messages.some((m) => m.from === ''));
    const talk = await login(w);
    await talk.cmd('MAIL FROM:<app@example.test>');
    const refused = (await talk.cmd('RCPT TO:<gone@dest.test>')).text;
    expect(refused).toMatch(/^550 5\.1\.1 Recipient gone@dest\.test is suppressed on the list of example\.test since .* after a hard bounce \(5\.1\.1\)/);
    expect(refused).not.toContain('mailbox does not exist'); // the remote server's words stay out of replies
    const dataDir = path.join(w.relay.dir, 'data');
    const cli = (...args: string[]) => promisify(execFile)(process.execPath, [path.join(repoRoot, 'bin/mailfleet.ts'), 'suppression', ...args, '--data-dir', dataDir], { encoding: 'utf8' });
    expect((await cli('list')).stdout).toContain('example.test\tgone@dest.test');
    expect((await cli('remove', 'gone@dest.test')).stdout).toMatch(/removed/);
    expect((await cli('list')).stdout).not.toContain('gone@dest.test');
    await waitUntil('the relay to see the removal', async () => (await talk.cmd('RCPT TO:<gone@dest.test>')).code === 250, 10_000, 200);
    talk.close();
  });

  it('posts signed webhooks for delivered and bounced recipients', async () => {
    const received: Array<{ body: string; sig: string }> = [];
    const server = http.createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => { body += c.toString(); });
      req.on('end', () => { received.push({ body, sig: String(req.headers['x-mailfleet-signature']) }); res.writeHead(204).end(); });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const dir = tempDir();
    fs.writeFileSync(path.join(dir, 'hook-secret'), 'whsec-test\n');
    try {
      w = await startWorld({ webhooks: [{ url: `http://127.0.0.1:${(server.address() as { port: number }).port}/hook`, secretFile: path.join(dir, 'hook-secret'), events: ['delivered', 'bounced'] }] },
        { rcptReply: (rcpt) => (rcpt === 'gone@dest.test' ? { code: 550, message: '5.1.1 no such user' } : undefined) });
      await w.send({ to: ['ok@dest.test', 'gone@dest.test'], subject: 'events' });
      await waitUntil('two webhook events', () => received.length >= 2);
      const events = received.map((r) => JSON.parse(r.body) as { type: string; recipient: string });
      expect(events.map((e) => `${e.type}:${e.recipient}`).sort()).toEqual(expect.arrayContaining(['bounced:gone@dest.test', 'delivered:ok@dest.test']));
      for (const r of received) expect(verifyWebhookSignature('whsec-test', r.sig, r.body)).toBe(true);
    } finally {
      server.close();
    }
  });
});

describe('recipient DNS check when DNS fails', () => {
  it('lets the recipient through (the queue copes) and asks again only after a while', async () => {
    w = await startWorld();
    w.dns.setZone({
      'dest.test': { MX: [{ preference: 10, exchange: 'mx.dest.test' }] },
      'mx.dest.test': { A: ['127.0.0.2'] },
      'broken.test': { servfail: true },
    });
    const talk = await login(w);
    expect((await talk.cmd('MAIL FROM:<app@example.test>')).code).toBe(250);
    expect((await talk.cmd('RCPT TO:<a@broken.test>')).code).toBe(250);
    const before = w.dns.queries();
    expect((await talk.cmd('RCPT TO:<b@broken.test>')).code).toBe(250);
    expect(w.dns.queries()).toBe(before); // the failure was remembered
    talk.close();
  });
});
