// Attacks 1, 2 and 7 (Bcc) of issue 9 replayed end to end: a real relay process, a real
// next hop. Each forged message must be refused and nothing of it may reach the sink;
// a legitimate tenant is served before and after.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSecurityWorld, legitimateDelivery, deliveredAs, sinkText, type SecurityWorld } from './world.ts';

const FORGED_CR = 'X-A: b\rFrom: "Bank CEO" <ceo@bank.test>\r\nTo: v@d.test\r\nX-B: c\r\r\nFrom: x@b.test\r\n\r\nbody';

describe('header forgery (bareLineEndings: reject, the default)', () => {
  let w: SecurityWorld;
  beforeAll(async () => { w = await startSecurityWorld(); });
  afterAll(async () => { await w?.close(); });

  it('refuses the bare-CR forged From with 550 5.6.11, also on a DKIM domain, and delivers nothing of it', async () => {
    await legitimateDelivery(w, 'before-cr');
    expect((await w.submit(FORGED_CR)).text).toMatch(/^550 5\.6\.11 .*bare CR/);
    expect((await w.submit(FORGED_CR.replace(/b\.test/g, 'signed.test'), { from: 'x@signed.test', user: 'signed.test' })).text).toMatch(/^550 5\.6\.11/);
    expect((await w.submit('From: x@b.test\nFrom: ceo@bank.test\r\n\r\nbody')).text).toMatch(/^550 5\.6\.11 .*bare LF/);
    await legitimateDelivery(w, 'after-cr');
    expect(sinkText(w)).not.toContain('Bank CEO');
    expect(sinkText(w)).not.toContain('ceo@bank.test');
  });

  it('refuses a second From hidden with obsolete syntax or folding (550 5.7.1)', async () => {
    for (const second of ['From : ceo@bank.test', 'From\t: ceo@bank.test', 'from:\r\n ceo@bank.test']) {
      expect((await w.submit(`From: x@b.test\r\n${second}\r\nTo: v@d.test\r\n\r\nbody`)).text, second).toMatch(/^550 5\.7\.1 The message has 2 From header fields/);
    }
    // One From, unaligned, written the obsolete way: still read, still refused.
    expect((await w.submit('From : ceo@bank.test\r\nTo: v@d.test\r\n\r\nbody')).text).toMatch(/^550 5\.7\.1 Header From ceo@bank\.test does not align/);
    expect((await w.submit('X-A: 1\r\nnot a header line\r\nFrom: ceo@bank.test\r\n\r\nbody')).text).toMatch(/^550 5\.6\.0 Malformed header line/);
    await legitimateDelivery(w, 'after-obsolete');
    expect(sinkText(w)).not.toContain('ceo@bank.test');
  });

  it('reads every From the way the address parser does, plain address or not (550 5.7.1 for each forgery)', async () => {
    // relay/senders/headers.ts reads a plain addr-spec (bare or in angle brackets) without
    // the parser: values at the edge of that shortcut must not read differently.
    const forged: Array<[string, RegExp]> = [
      ['<ceo@bank.test>', /does not align/],
      ['ceo@bank.test\t', /does not align/],
      ['\r\n <ceo@bank.test>', /does not align/],
      ['x@b.test <ceo@bank.test>', /not a well-formed address list/],
      ['"x@b.test" <ceo@bank.test>', /does not align/],
      ['<x@b.test>, <ceo@bank.test>', /does not align/],
      // no comma: the parser takes one address and makes the other its name; a mail client may show either
      ['<x@b.test> <ceo@bank.test>', /not a well-formed address list/],
      ['ceo@bank.test <x@b.test>', /not a well-formed address list/],
      ['x@b.test ceo@bank.test', /not a well-formed address list/],
      ['<@bank.test:x@b.test>', /not a well-formed address list/],
      ['x@b.test.bank.test', /does not align/],
      // a near miss of the shortcut as long as a header may be: read in linear time, refused
      [`${'a.'.repeat(400_000)}a!`, /has no address|does not align/],
    ];
    for (const [value, reply] of forged) {
      const r = await w.submit(`From: ${value}\r\nTo: v@d.test\r\n\r\nbody`);
      expect(r.text, JSON.stringify(value.slice(0, 40))).toMatch(/^550 5\.7\.1 /);
      expect(r.text, JSON.stringify(value.slice(0, 40))).toMatch(reply);
    }
    for (const value of ['<x@b.test>', ' x@b.test ', '"Bank CEO" <x@b.test>', ' x@b.test (a@c.test)', ' "Bank @ CEO" <x@b.test>']) {
      const text = await deliveredAs(w, `From:${value}\r\nTo: v@d.test\r\nSubject: plain from\r\n\r\nbody\r\n`);
      expect(text, value).toContain(`From:${value}\r\n`);
    }
    await legitimateDelivery(w, 'after-plain-from');
    expect(sinkText(w)).not.toContain('ceo@bank.test');
  });

  it('refuses a header block over 1 MB with 552 5.3.4 (never a 4xx), on a DKIM domain too', async () => {
    const pad = `X-Pad: ${'a'.repeat(998 - 8)}\r\n`.repeat(1100);
    expect((await w.submit(`From: x@b.test\r\n${pad}From: ceo@bank.test\r\n\r\nbody`)).text).toMatch(/^552 5\.3\.4 Message header block exceeds 1048576 bytes/);
    expect((await w.submit(`From: x@signed.test\r\n${pad}\r\nbody`, { from: 'x@signed.test', user: 'signed.test' })).text).toMatch(/^552 5\.3\.4/);
    await legitimateDelivery(w, 'after-big-header');
  });

  it('strips Bcc from the copy that leaves, and signs that copy', async () => {
    const text = await deliveredAs(w, 'From: x@signed.test\r\nTo: v@d.test\r\nBcc: hidden@d.test,\r\n other-hidden@d.test\r\nSubject: bcc\r\n\r\nbody\r\n', { from: 'x@signed.test', user: 'signed.test' });
    expect(text).toContain('Subject: bcc');
    expect(text).toMatch(/^DKIM-Signature: /m);
    expect(text).not.toMatch(/hidden@d\.test/);
    expect(text).not.toMatch(/^bcc/im);
  });
});

describe('header forgery (bareLineEndings: normalize)', () => {
  let w: SecurityWorld;
  beforeAll(async () => { w = await startSecurityWorld((c) => { c.limits = { ...c.limits, bareLineEndings: 'normalize' }; }); });
  afterAll(async () => { await w?.close(); });

  it('reads the bare-CR message as the next hop would: the forged From is the From, and it is refused', async () => {
    expect((await w.submit(FORGED_CR)).text).toMatch(/^550 5\.7\.1 Header From ceo@bank\.test does not align/);
    await legitimateDelivery(w, 'normalize-legit');
    expect(sinkText(w)).not.toContain('ceo@bank.test');
  });

  it('delivers a bare-LF message as CRLF, exactly the bytes it checked and signed', async () => {
    const text = await deliveredAs(w, 'From: x@signed.test\nTo: v@d.test\nSubject: lf\n\nline one\nline two\rthree\n', { from: 'x@signed.test', user: 'signed.test' });
    expect(text).toContain('From: x@signed.test\r\nTo: v@d.test\r\nSubject: lf\r\n\r\nline one\r\nline two\r\nthree\r\n');
    expect(text.replace(/\r\n/g, '')).not.toMatch(/[\r\n]/);
  });
});
