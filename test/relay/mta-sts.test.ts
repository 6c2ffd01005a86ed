// MTA-STS (RFC 8461) and per-destination TLS through the whole relay. Real peers on
// loopback: a DNS server answering MX, A and _mta-sts TXT; an HTTPS policy server and a
// TLS sink whose certificate comes from a test CA the relay trusts through mx.caFile; a
// sink with a certificate from another (untrusted) CA; a sink without TLS. What happened
// is read from the sinks, the queue and /metrics.
import fs from 'node:fs';
import path from 'node:path';
import nodemailer from 'nodemailer';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDnsServer, type TestDnsServer, type Zone } from '../support/dns-server.ts';
import { startSink, type Sink } from '../support/sink.ts';
import { testCert } from '../support/certs.ts';
import { startPolicyServer, policyText, type PolicyServer } from '../support/mta-sts-server.ts';
import { metricValue, scrape, startRelay, tempDir, waitUntil, type TestRelay } from '../support/relay-harness.ts';
import type { RelayConfigInput } from '../../relay/config/schema.ts';

// the "test CA": a self-signed CA certificate naming every policy host and MX host the
// tests verify; the relay trusts it through mx.caFile
const names = ['enf-ok', 'enf-mismatch', 'enf-badcert', 'enf-notls', 'testing', 'metadata', 'require-ok', 'require-notls', 'rotate']
  .flatMap((d) => [`mta-sts.${d}.test`, `mx.${d}.test`]);
const ca = testCert(['sts-test-ca.test', ...names]);

const GOOD = '127.0.0.11';     // STARTTLS, certificate from the trusted test CA
const BADCERT = '127.0.0.12';  // STARTTLS, self-signed certificate the relay does not trust
const NOTLS = '127.0.0.13';    // no STARTTLS at all

let dns: TestDnsServer;
let good: Sink;
let badcert: Sink;
let notls: Sink;
let policies: PolicyServer;
// a policy host whose certificate does not come from the trusted CA
let untrustedPolicies: PolicyServer;
let rotateId = '1';
let relay: TestRelay;
let dir: string;

function zone(): Zone {
  const z: Zone = {};
  const domain = (d: string, ip: string, opts: { sts?: string; stsHost?: string } = {}) => {
    z[`${d}.test`] = { MX: [{ preference: 10, exchange: `mx.${d}.test` }] };
    z[`mx.${d}.test`] = { A: [ip] };
    if (opts.sts) {
      z[`_mta-sts.${d}.test`] = { TXT: [`v=STSv1; id=${opts.sts}`] };
      z[`mta-sts.${d}.test`] = { A: [opts.stsHost ?? GOOD] };
    }
  };
  domain('enf-ok', GOOD, { sts: '20261201' });
  domain('enf-mismatch', GOOD, { sts: '1' });
  domain('enf-badcert', BADCERT, { sts: '1' });
  domain('enf-notls', NOTLS, { sts: '1' });
  domain('testing', NOTLS, { sts: '1' });
  // the policy host resolves to the cloud metadata address: never fetched
  domain('metadata', GOOD, { sts: '1', stsHost: '169.254.169.254' });
  domain('rotate', GOOD, { sts: rotateId });
  domain('badhost', GOOD, { sts: '1', stsHost: BADCERT });
  domain('require-ok', GOOD);
  domain('require-notls', NOTLS);
  domain('plain', NOTLS);
  return z;
}

function config(): RelayConfigInput {
  return {
    hostname: 'relay.test',
    listeners: [{ name: 'plain', host: '127.0.0.1', port: 0, mode: 'plain' }],
    trustedNetworks: [{ cidrs: ['127.0.0.1/32'], domains: ['legacy.test'] }],
    domains: [{ domain: 'legacy.test' }],
    // a deferral waits: what the tests look at is the first attempt
    queue: { retrySchedule: ['1h'], maxLifetime: '2h' },
    delivery: {
      mode: 'mx',
      mx: { port: good.port, dnsServers: [dns.address], caFile: ca.certPath },
      // every delivery asks the TXT record again, so a new policy id is seen at once
      mtaSts: { port: policies.port, recheckIntervalMs: 1 },
      destinations: { 'require-ok.test': { tls: 'require' }, 'require-notls.test': { tls: 'require' } },
      hostDownBackoffMs: 100,
    },
  };
}

async function send(to: string): Promise<string> {
  const t = nodemailer.createTransport({ host: '127.0.0.1', port: relay.port('plain'), secure: false, ignoreTLS: true });
  const info = await t.sendMail({ from: 'app@legacy.test', to, subject: `to ${to}`, text: 'hello', envelope: { from: 'app@legacy.test', to } });
  return /queued as ([0-9A-Z]+)/.exec(info.response)![1]!;
}

/** The message's first attempt is over: delivered (gone from the queue) or deferred. */
async function firstAttempt(id: string): Promise<{ gone: boolean; lastResponse?: string }> {
  await waitUntil(`first attempt of ${id}`, () => {
    const q = relay.relay.queue.get(id);
    return !q || q.state.attempts >= 1;
  });
  const q = relay.relay.queue.get(id);
  return q ? { gone: false, ...(q.state.lastResponse ? { lastResponse: q.state.lastResponse } : {}) } : { gone: true };
}

const received = (sink: Sink, to: string) => sink.messages.filter((m) => m.to.includes(to));
const tls = async (labels: Record<string, string>) => metricValue(await scrape(relay.httpPort), 'mailfleet_delivery_tls_total', labels);

beforeAll(async () => {
  good = await startSink({ host: GOOD, cert: ca });
  badcert = await startSink({ host: BADCERT, port: good.port });
  notls = await startSink({ host: NOTLS, port: good.port, tls: 'none' });
  policies = await startPolicyServer({ host: GOOD, key: ca.key, cert: ca.cert });
  policies.setPolicy('enf-ok.test', policyText('enforce', ['mx.enf-ok.test']));
  policies.setPolicy('enf-mismatch.test', policyText('enforce', ['mx1.elsewhere.test', '*.other.test']));
  policies.setPolicy('enf-badcert.test', policyText('enforce', ['mx.enf-badcert.test']));
  policies.setPolicy('enf-notls.test', policyText('enforce', ['mx.enf-notls.test']));
  policies.setPolicy('testing.test', policyText('testing', ['mx.elsewhere.test']));
  policies.setPolicy('metadata.test', policyText('enforce', ['mx.nowhere.test']));
  policies.setPolicy('rotate.test', policyText('enforce', ['mx.rotate.test']));
  const untrusted = testCert();
  untrustedPolicies = await startPolicyServer({ host: BADCERT, port: policies.port, key: untrusted.key, cert: untrusted.cert });
  untrustedPolicies.setPolicy('badhost.test', policyText('enforce', ['mx.nowhere.test']));
  dns = await startDnsServer(zone());
  dir = tempDir('mailfleet-mta-sts-');
  relay = await startRelay(config(), { dir });
});

afterAll(async () => {
  await relay?.stop();
  await Promise.all([good?.close(), badcert?.close(), notls?.close(), policies?.close(), untrustedPolicies?.close(), dns?.close()]);
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

describe('MTA-STS in MX mode', () => {
  it('enforce with a listed MX and a valid certificate: delivered over verified TLS, the policy cached on disk', async () => {
    const id = await send('a@enf-ok.test');
    expect(await firstAttempt(id)).toEqual({ gone: true });
    expect(received(good, 'a@enf-ok.test')).toHaveLength(1);
    expect(received(good, 'a@enf-ok.test')[0]!.secure).toBe(true);
    expect(policies.requests).toContain('mta-sts.enf-ok.test');
    expect(await tls({ destination: 'other', policy: 'mta-sts-enforce', result: 'verified' })).toBeGreaterThanOrEqual(1);
    const file = path.join(dir, 'data', 'mta-sts', 'policies.json');
    await waitUntil('policy cache written', () => fs.existsSync(file) && 'enf-ok.test' in JSON.parse(fs.readFileSync(file, 'utf8')));
    expect(JSON.parse(fs.readFileSync(file, 'utf8'))['enf-ok.test']).toMatchObject({ id: '20261201', mode: 'enforce', mx: ['mx.enf-ok.test'], maxAge: 86_400 });
  });

  it('enforce with no listed MX: deferred with 4.7.5, nothing sent, counted', async () => {
    const before = good.connections();
    const id = await send('b@enf-mismatch.test');
    const r = await firstAttempt(id);
    expect(r.gone).toBe(false);
    expect(r.lastResponse).toMatch(/MTA-STS policy of enf-mismatch\.test \(enforce, id 1\) lists none of its MX hosts \(mx\.enf-mismatch\.test\)/);
    expect(received(good, 'b@enf-mismatch.test')).toEqual([]);
    expect(good.connections()).toBe(before);
    expect(await tls({ policy: 'mta-sts-enforce', result: 'mx_mismatch' })).toBeGreaterThanOrEqual(1);
  });

  it('enforce with a certificate from an untrusted CA, or an MX without STARTTLS: deferred, never sent in the clear', async () => {
    const bad = await send('c@enf-badcert.test');
    const none = await send('d@enf-notls.test');
    const rb = await firstAttempt(bad);
    const rn = await firstAttempt(none);
    expect(rb.gone).toBe(false);
    expect(rb.lastResponse).toMatch(/TLS with a verified certificate is required, but mx\.enf-badcert\.test\[127\.0\.0\.12\]:\d+ presented one that does not verify/);
    expect(rn.gone).toBe(false);
    expect(rn.lastResponse).toMatch(/TLS is required, but mx\.enf-notls\.test\[127\.0\.0\.13\]/);
    expect(badcert.messages).toEqual([]);
    expect(received(notls, 'd@enf-notls.test')).toEqual([]);
    expect(await tls({ policy: 'mta-sts-enforce', result: 'failed' })).toBeGreaterThanOrEqual(2);
  });

  it('testing: delivered as before, the MX mismatch and the TLS failure reported', async () => {
    const id = await send('e@testing.test');
    expect(await firstAttempt(id)).toEqual({ gone: true });
    expect(received(notls, 'e@testing.test')).toHaveLength(1);
    expect(await tls({ policy: 'mta-sts-testing', result: 'mx_mismatch' })).toBeGreaterThanOrEqual(1);
    expect(await tls({ policy: 'mta-sts-testing', result: 'testing_failure' })).toBeGreaterThanOrEqual(1);
    expect(await tls({ policy: 'mta-sts-testing', result: 'opportunistic' })).toBeGreaterThanOrEqual(1);
    const log = fs.readFileSync(relay.logFile, 'utf8');
    expect(log).toMatch(/MTA-STS testing policy: this delivery would fail under enforce/);
  });

  it('never fetches a policy from a host that resolves to the metadata address; the mail goes out without a policy', async () => {
    const id = await send('f@metadata.test');
    expect(await firstAttempt(id)).toEqual({ gone: true });
    expect(received(good, 'f@metadata.test')).toHaveLength(1);
    expect(policies.requests).not.toContain('mta-sts.metadata.test');
    const log = fs.readFileSync(relay.logFile, 'utf8');
    expect(log).toMatch(/policy host mta-sts\.metadata\.test resolves to 169\.254\.169\.254 \(link-local\), which this relay may not connect to/);
    expect(metricValue(await scrape(relay.httpPort), 'mailfleet_mta_sts_lookups_total', { result: 'error' })).toBeGreaterThanOrEqual(1);
  });

  it('a policy host whose certificate does not verify gives no policy: the mail goes out as before, the failure logged', async () => {
    const id = await send('l@badhost.test');
    expect(await firstAttempt(id)).toEqual({ gone: true });
    expect(received(good, 'l@badhost.test')).toHaveLength(1);
    expect(fs.readFileSync(relay.logFile, 'utf8')).toMatch(/MTA-STS policy of badhost\.test \(id 1\) could not be fetched: [^"]*certificate/);
  });

  it('a new TXT id fetches the policy again; the same id keeps the cached policy even if the file changed', async () => {
    expect(await firstAttempt(await send('m@rotate.test'))).toEqual({ gone: true });
    // the file changes but the id does not: the cached policy stays (no fetch)
    policies.setPolicy('rotate.test', policyText('enforce', ['mx1.elsewhere.test']));
    const fetches = () => policies.requests.filter((h) => h === 'mta-sts.rotate.test').length;
    expect(fetches()).toBe(1);
    expect(await firstAttempt(await send('n@rotate.test'))).toEqual({ gone: true });
    expect(fetches()).toBe(1);
    // a new id: fetched again, and the new policy no longer lists the MX
    rotateId = '2';
    dns.setZone(zone());
    const r = await firstAttempt(await send('o@rotate.test'));
    expect(fetches()).toBe(2);
    expect(r.gone).toBe(false);
    expect(r.lastResponse).toMatch(/MTA-STS policy of rotate\.test \(enforce, id 2\) lists none of its MX hosts/);
  });

  it('a domain without MTA-STS goes out opportunistically as before', async () => {
    const id = await send('g@plain.test');
    expect(await firstAttempt(id)).toEqual({ gone: true });
    expect(received(notls, 'g@plain.test')).toHaveLength(1);
    expect(await tls({ destination: 'other', policy: 'none', result: 'opportunistic' })).toBeGreaterThanOrEqual(1);
  });
});

describe('per-destination TLS policy', () => {
  it('require: verified TLS to a host that has it, deferred (never plaintext) to one that does not; each destination its own label', async () => {
    const ok = await send('h@require-ok.test');
    const no = await send('i@require-notls.test');
    expect(await firstAttempt(ok)).toEqual({ gone: true });
    const rn = await firstAttempt(no);
    expect(received(good, 'h@require-ok.test')[0]!.secure).toBe(true);
    expect(rn.gone).toBe(false);
    expect(rn.lastResponse).toMatch(/TLS is required/);
    expect(received(notls, 'i@require-notls.test')).toEqual([]);
    expect(await tls({ destination: 'require-ok.test', policy: 'require', result: 'verified' })).toBe(1);
    expect(await tls({ destination: 'require-notls.test', policy: 'require', result: 'failed' })).toBeGreaterThanOrEqual(1);
  });

  it('an explicit policy wins over MTA-STS: opportunistic lets an enforce domain through, and a restart keeps enforce from the disk cache', async () => {
    // the enforce domain loses its TXT record and its policy host: the cached policy stays in force
    const z = zone();
    delete z['_mta-sts.enf-ok.test'];
    z['mx.enf-ok.test'] = { A: [NOTLS] };
    dns.setZone(z);
    policies.setPolicy('enf-ok.test', undefined);
    await relay.stop();
    relay = await startRelay(config(), { dir });
    const id = await send('j@enf-ok.test');
    const r = await firstAttempt(id);
    expect(r.gone).toBe(false);
    expect(r.lastResponse).toMatch(/TLS is required, but mx\.enf-ok\.test\[127\.0\.0\.13\]/);
    expect(received(notls, 'j@enf-ok.test')).toEqual([]);
    // the operator overrides it for that destination
    const cfg = config();
    cfg.delivery!.destinations = { ...cfg.delivery!.destinations, 'enf-ok.test': { tls: 'opportunistic' } };
    await relay.stop();
    relay = await startRelay(cfg, { dir });
    const id2 = await send('k@enf-ok.test');
    expect(await firstAttempt(id2)).toEqual({ gone: true });
    expect(received(notls, 'k@enf-ok.test')).toHaveLength(1);
    expect(await tls({ destination: 'enf-ok.test', policy: 'opportunistic', result: 'opportunistic' })).toBe(1);
  });
});
