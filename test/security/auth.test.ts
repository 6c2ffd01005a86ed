// Attacks 3 and 6 of issue 9 against a real relay process: an attacker guessing a
// tenant's password locks only itself out (the tenant keeps sending), a login attacked
// from many addresses is slowed but its owner gets in, and an AUTH flood for unknown
// users neither grows memory nor keeps a real login out.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSecurityWorld, legitimateDelivery, PASSWORD, type SecurityWorld } from './world.ts';
import { SmtpTalk, authPlain } from '../support/smtp-talk.ts';
import { scrape, metricValue } from '../support/relay-harness.ts';

let w: SecurityWorld;
beforeAll(async () => {
  w = await startSecurityWorld((c) => {
    c.authThrottle = { maxFailuresPerLoginAndAddress: 5, maxFailuresPerAddress: 12, loginDelayAfter: 8, maxLoginDelayMs: 400, maxWaitingPasswordChecks: 10 };
  });
});
afterAll(async () => { await w?.close(); });

/** A TLS session from a chosen loopback address, ready for AUTH. */
async function tlsSession(localAddress: string): Promise<SmtpTalk> {
  const { talk } = await SmtpTalk.connect(w.ports.submission, '127.0.0.1', { localAddress });
  await talk.cmd('EHLO attacker.test');
  await talk.starttls();
  await talk.cmd('EHLO attacker.test');
  return talk;
}

describe('AUTH abuse', () => {
  it('five wrong passwords lock the attacker\'s address for that login, not the tenant', async () => {
    const talk = await tlsSession('127.0.0.3');
    for (let i = 0; i < 5; i++) expect((await talk.cmd(`AUTH PLAIN ${authPlain('b.test', `guess${i}`)}`)).text).toMatch(/^535 5\.7\.8/);
    expect((await talk.cmd(`AUTH PLAIN ${authPlain('b.test', PASSWORD)}`)).text).toMatch(/^454 4\.7\.0 Too many failed logins from 127\.0\.0\.3/);
    talk.close();
    // The tenant, from its own address, logs in and its mail reaches the next hop.
    await legitimateDelivery(w, 'tenant-after-lockout');
    const metrics = await scrape(w.ports.http);
    expect(metricValue(metrics, 'mailfleet_auth_lockouts_total', { scope: 'pair' })).toBe(1);
    expect(w.relay.output()).toMatch(/"scope":"pair".*auth lockout: login locked for this client address/);
    expect(w.relay.output()).not.toMatch(/guess\d|tenant b password/);
  });

  it('an address spraying logins is locked for every login; other addresses are not', async () => {
    const talk = await tlsSession('127.0.0.4');
    for (let i = 0; i < 12; i++) expect((await talk.cmd(`AUTH PLAIN ${authPlain(`user${i}.test`, 'x')}`)).code).toBe(535);
    expect((await talk.cmd(`AUTH PLAIN ${authPlain('signed.test', PASSWORD)}`)).text).toMatch(/^454 4\.7\.0/);
    talk.close();
    const other = await tlsSession('127.0.0.5');
    expect((await other.cmd(`AUTH PLAIN ${authPlain('signed.test', PASSWORD)}`)).code).toBe(235);
    other.close();
    expect(metricValue(await scrape(w.ports.http), 'mailfleet_auth_lockouts_total', { scope: 'address' })).toBe(1);
  });

  it('a login attacked from many addresses is slowed, and its owner still gets in', async () => {
    // 3 wrong passwords from each of 6 addresses: no address or pair reaches a lockout.
    for (let a = 0; a < 6; a++) {
      const talk = await tlsSession(`127.0.1.${a + 1}`);
      for (let i = 0; i < 3; i++) expect((await talk.cmd(`AUTH PLAIN ${authPlain('signed.test', `g${a}${i}`)}`)).code).toBe(535);
      talk.close();
    }
    expect(metricValue(await scrape(w.ports.http), 'mailfleet_auth_throttled_total', { action: 'delayed' })).toBeGreaterThan(0);
    const owner = await tlsSession('127.0.1.100');
    expect((await owner.cmd(`AUTH PLAIN ${authPlain('signed.test', PASSWORD)}`)).code).toBe(235);
    owner.close();
  });

  it('an AUTH flood for unknown users is bounded: excess waits or gets 454, memory stays flat, a tenant gets in', async () => {
    const rssBefore = metricValue(await scrape(w.ports.http), 'mailfleet_process_resident_memory_bytes');
    const talks = await Promise.all(Array.from({ length: 60 }, (_, i) => tlsSession(`127.0.2.${i + 1}`)));
    const replies = await Promise.all(talks.map((t, i) => t.cmd(`AUTH PLAIN ${authPlain(`nobody${i}@nowhere.test`, 'x')}`)));
    const rssAfter = metricValue(await scrape(w.ports.http), 'mailfleet_process_resident_memory_bytes');
    for (const t of talks) t.close();
    const codes = replies.map((r) => r.code);
    expect(codes.every((c) => c === 535 || c === 454)).toBe(true);
    expect(replies.filter((r) => r.code === 454).every((r) => /4\.7\.0 Too many authentication attempts in progress/.test(r.text))).toBe(true);
    expect(codes.filter((c) => c === 454).length).toBeGreaterThan(0);
    // 4 checks at a time × 16 MB, not 60 × 16 MB (the attack grew RSS by ~300 MB).
    expect(rssAfter - rssBefore).toBeLessThan(150 * 1024 * 1024);
    await legitimateDelivery(w, 'tenant-after-flood');
  });
});
