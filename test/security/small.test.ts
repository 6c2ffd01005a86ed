// The smaller attacks of issue 9 replayed against a real relay process: a backtracking
// sender pattern, unknown ESMTP parameters, weak TLS, PROXY LOCAL/UNKNOWN borrowing the
// balancer's trust, and the session gauge after maxClients refusals.
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSecurityWorld, legitimateDelivery, type SecurityWorld } from './world.ts';
import { SmtpTalk } from '../support/smtp-talk.ts';
import { scrape, metricValue } from '../support/relay-harness.ts';

let w: SecurityWorld;
beforeAll(async () => {
  w = await startSecurityWorld((c) => {
    c.limits = { ...c.limits, maxClients: 4 };
    c.domains = c.domains!.map((d) => (d.domain === 'b.test' ? { ...d, allowedSenders: ['*a*a*a*a*a*a*a*a*a!', '*a*a*a*a*a*a*a*a*a-z', 'x', 'bill-?-*'] } : d));
  });
});
afterAll(async () => { await w?.close(); });

describe('small attacks', () => {
  it('matches a pathological allowedSenders pattern in linear time and keeps serving', async () => {
    const talk = await w.session();
    expect((await talk.cmd(`MAIL FROM:<${'a'.repeat(64)}@b.test>`)).text).toMatch(/^550 5\.7\.1 Sender a+@b\.test is not an allowed sender of b\.test/);
    expect((await talk.cmd(`MAIL FROM:<${'a'.repeat(60)}-z@b.test>`)).code).toBe(250);
    await talk.cmd('RSET');
    expect((await talk.cmd('MAIL FROM:<BILL-7-march@b.test>')).code).toBe(250);
    talk.close();
    await legitimateDelivery(w, 'after-glob');
  });

  it('refuses an unknown MAIL or RCPT parameter with 555 5.5.4', async () => {
    const talk = await w.session();
    expect((await talk.cmd('MAIL FROM:<x@b.test> FOO=BAR')).text).toMatch(/^555 5\.5\.4 MAIL parameter FOO is not supported/);
    expect((await talk.cmd('MAIL FROM:<x@b.test> SIZE=100 BODY=8BITMIME')).code).toBe(250);
    expect((await talk.cmd('RCPT TO:<v@d.test> XFOO=1')).text).toMatch(/^555 5\.5\.4 RCPT parameter XFOO is not supported/);
    expect((await talk.cmd('RCPT TO:<v@d.test>')).code).toBe(250);
    talk.close();
  });

  it('refuses DSN parameters that would smuggle control characters, oversized or contradictory values into notices', async () => {
    const talk = await w.session();
    const mail = async (params: string) => (await talk.cmd(`MAIL FROM:<x@b.test> ${params}`)).code;
    expect(await mail('ENVID=a+0Db')).toBe(501); // a CR, xtext-encoded, would land in Original-Envelope-Id
    expect(await mail(`ENVID=${'e'.repeat(101)}`)).toBe(501);
    expect(await mail('RET=BOTH')).toBe(501);
    expect((await talk.cmd('RSET')).code).toBe(250);
    expect(await mail('RET=HDRS ENVID=ok-1')).toBe(250);
    const rcpt = async (params: string) => (await talk.cmd(`RCPT TO:<v@d.test> ${params}`)).code;
    expect(await rcpt('NOTIFY=NEVER,SUCCESS')).toBe(501);
    expect(await rcpt('NOTIFY=FAILURE,FAILURE')).toBe(501);
    expect(await rcpt('NOTIFY=')).toBe(501);
    expect(await rcpt('ORCPT=rfc822;a+0D+0ABcc:+20x@d.test')).toBe(501); // a header line folded into the notice
    expect(await rcpt('ORCPT=nosemicolon')).toBe(501);
    expect(await rcpt(`ORCPT=rfc822;${'o'.repeat(600)}@d.test`)).toBe(501);
    expect(await rcpt('NOTIFY=FAILURE,DELAY ORCPT=rfc822;v@d.test')).toBe(250);
    talk.close();
  });

  it('offers only ECDHE with AEAD ciphers on TLS 1.2 and nothing older than TLS 1.2', async () => {
    const handshake = (opts: tls.ConnectionOptions) => new Promise<string>((resolve) => {
      const s = tls.connect({ host: '127.0.0.1', port: w.ports.smtps, rejectUnauthorized: false, ...opts });
      s.once('secureConnect', () => { resolve(`${s.getProtocol()} ${s.getCipher().name}`); s.destroy(); });
      s.once('error', (e) => resolve(`error ${e.message}`));
    });
    for (const ciphers of ['AES128-SHA', 'ECDHE-RSA-AES128-SHA', 'AES128-GCM-SHA256', 'ECDHE-RSA-AES128-SHA256']) {
      expect(await handshake({ ciphers, maxVersion: 'TLSv1.2' }), ciphers).toMatch(/^error/);
    }
    expect(await handshake({ maxVersion: 'TLSv1.1', minVersion: 'TLSv1', ciphers: 'DEFAULT:@SECLEVEL=0' })).toMatch(/^error/);
    expect(await handshake({ maxVersion: 'TLSv1.2' })).toMatch(/^TLSv1\.2 ECDHE-RSA-(AES\d+-GCM-SHA\d+|CHACHA20-POLY1305)$/);
    expect(await handshake({})).toMatch(/^TLSv1\.3 /);
  });

  it('serves a PROXY v2 LOCAL or v1 UNKNOWN health check but lends it no trust', async () => {
    const local = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a, 0x20, 0x00, 0x00, 0x00]);
    for (const header of [local, Buffer.from('PROXY UNKNOWN\r\n')]) {
      const { talk, greeting } = await SmtpTalk.connect(w.ports.proxied, '127.0.0.1', { preamble: header });
      expect(greeting.code).toBe(220);
      expect((await talk.cmd('EHLO lb.test')).code).toBe(250);
      // The balancer (127.0.0.1) is in trustedNetworks; a session without a client address is not.
      expect((await talk.cmd('MAIL FROM:<cron@legacy.test>')).text).toMatch(/^530 5\.7\.0/);
      talk.close();
    }
    const proxied = Buffer.from('PROXY TCP4 127.0.0.1 127.0.0.1 40000 25\r\n');
    const { talk } = await SmtpTalk.connect(w.ports.proxied, '127.0.0.1', { preamble: proxied });
    await talk.cmd('EHLO lb.test');
    expect((await talk.cmd('MAIL FROM:<cron@legacy.test>')).code).toBe(250);
    talk.close();
  });

  it('never lets mailfleet_sessions_active go negative after maxClients refusals', async () => {
    const held: SmtpTalk[] = [];
    const refused: string[] = [];
    for (let i = 0; i < 8; i++) {
      const { talk, greeting } = await SmtpTalk.connect(w.ports.plain);
      if (greeting.code === 220) held.push(talk); else { refused.push(greeting.text); talk.close(); }
    }
    expect(refused.length).toBeGreaterThan(0);
    expect(refused[0]).toMatch(/^421 /);
    for (const t of held) t.close();
    const deadline = Date.now() + 10_000;
    let active = -1;
    while (Date.now() < deadline) {
      active = metricValue(await scrape(w.ports.http), 'mailfleet_sessions_active', { listener: 'plain' });
      if (active === 0) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(active).toBe(0);
    await legitimateDelivery(w, 'after-max-clients');
  });
});
