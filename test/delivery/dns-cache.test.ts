// The relay has one DNS cache: delivery's MxResolver, which the RCPT-time recipient check
// reads too. Each caller says how old an answer it takes: the check reuses a failed lookup
// for a while (a dead resolver costs one timeout per domain), delivery asks again (a retry
// must see a recovered resolver). A real DNS server on loopback counts the queries.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MxResolver } from '../../relay/delivery/mx.ts';
import { RecipientDnsCheck } from '../../relay/senders/recipient-dns.ts';
import { startDnsServer, type TestDnsServer } from '../support/dns-server.ts';

let dns: TestDnsServer;
beforeAll(async () => {
  dns = await startDnsServer({
    'ok.test': { MX: [{ preference: 10, exchange: 'mx.ok.test' }] },
    'mx.ok.test': { A: ['127.0.0.2'] },
    'nullmx.test': { MX: [{ preference: 0, exchange: '.' }] },
    'broken.test': { servfail: true },
  });
});
afterAll(async () => { await dns?.close(); });

describe('the shared DNS cache', () => {
  it('answers delivery from what the RCPT check looked up, and refuses a null MX at RCPT', async () => {
    const resolver = new MxResolver({ dnsServers: [dns.address], timeoutMs: 2000, maxAddresses: 10 });
    const check = new RecipientDnsCheck({ resolver: () => resolver, ttlSeconds: 300 });
    expect(await check.refusal('ok.test')).toBeUndefined();
    const before = dns.queries();
    expect(await resolver.plan('OK.test')).toMatchObject({ kind: 'targets', targets: [{ host: 'mx.ok.test', ip: '127.0.0.2' }] });
    expect(dns.queries()).toBe(before);
    expect(await check.refusal('nullmx.test')).toMatch(/null MX/);
  });

  it('lets each caller choose the age it accepts', async () => {
    const resolver = new MxResolver({ dnsServers: [dns.address], timeoutMs: 2000, maxAddresses: 10, cacheMs: 60_000 });
    const t0 = Date.now();
    await resolver.plan('ok.test', {}, t0);
    const before = dns.queries();
    await resolver.plan('ok.test', { maxAgeMs: 300_000 }, t0 + 120_000); // the RCPT check's 5 min
    expect(dns.queries()).toBe(before);
    await resolver.plan('ok.test', {}, t0 + 120_000); // delivery's 60 s: asks again
    expect(dns.queries()).toBeGreaterThan(before);
  });

  it('reuses a temporary failure for the RCPT check only; delivery asks DNS again', async () => {
    const resolver = new MxResolver({ dnsServers: [dns.address], timeoutMs: 2000, maxAddresses: 10 });
    const check = new RecipientDnsCheck({ resolver: () => resolver, ttlSeconds: 300 });
    expect(await check.refusal('broken.test')).toBeUndefined(); // a DNS failure refuses nobody
    const before = dns.queries();
    expect(await check.refusal('broken.test')).toBeUndefined();
    expect(dns.queries()).toBe(before);
    expect(await resolver.plan('broken.test')).toMatchObject({ kind: 'verdict', status: 'deferred', enhanced: '4.4.3' });
    expect(dns.queries()).toBeGreaterThan(before);
  });
});
