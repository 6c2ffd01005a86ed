// Tenant isolation on the relay, written as the attacks of issue 11: a relay config that
// would serve a domain nobody checks, one tenant's destination poisoning another tenant's
// suppression list (and getting its text echoed to them), suppression that one pod knows
// and the next does not, and outbound targets that lead to loopback or the metadata
// service. Real relays, real sinks on loopback, a real DNS server, a real redis-server.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { promisify } from 'node:util';
import nodemailer from 'nodemailer';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { OutboundPolicy } from '../../relay/outbound/targets.ts';
import { startDnsServer, type TestDnsServer } from '../support/dns-server.ts';
import { freePort } from '../support/ports.ts';
import { startRedis, type TestRedis } from '../support/redis.ts';
import { repoRoot, spawnRelay, startRelay, tempDir, waitUntil, writeConfig, type ChildRelay, type TestRelay } from '../support/relay-harness.ts';
import { startSink, type Sink } from '../support/sink.ts';
import { SmtpTalk } from '../support/smtp-talk.ts';
import { haveTools } from '../support/tools.ts';

const cli = (...args: string[]) => promisify(execFile)(process.execPath, [path.join(repoRoot, 'bin/mailfleet.ts'), ...args], { encoding: 'utf8' })
  .then((r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }), (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }));

const cleanup: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => { for (const c of cleanup.splice(0).reverse()) await c(); });

const zone = {
  'dest.test': { MX: [{ preference: 10, exchange: 'mx.dest.test' }] },
  'mx.dest.test': { A: ['127.0.0.2'] },
  'a.test': { MX: [{ preference: 10, exchange: 'mx.dest.test' }] },
  'b.test': { MX: [{ preference: 10, exchange: 'mx.dest.test' }] },
};

/** Sends through a plain (trusted) listener. */
async function send(port: number, from: string, to: string, subject = 'hello'): Promise<void> {
  await nodemailer.createTransport({ host: '127.0.0.1', port, secure: false, ignoreTLS: true })
    .sendMail({ from, to, subject, text: 'x', envelope: { from, to } });
}

/** The reply to RCPT TO in a fresh session as `from`. */
async function rcptReply(port: number, from: string, to: string): Promise<string> {
  const { talk } = await SmtpTalk.connect(port);
  try {
    await talk.cmd('EHLO client.test');
    expect((await talk.cmd(`MAIL FROM:<${from}>`)).code).toBe(250);
    return (await talk.cmd(`RCPT TO:<${to}>`)).text;
  } finally {
    talk.close();
  }
}

async function world(): Promise<{ dns: TestDnsServer; sink: Sink }> {
  // A hostile destination: its refusal carries text aimed at whoever reads the reply.
  const sink = await startSink({ host: '127.0.0.2', rcptReply: (r) => (r === 'victim@dest.test' ? { code: 550, message: '5.1.1 no such user, call +1-555-SCAM' } : undefined) });
  const dns = await startDnsServer(zone);
  cleanup.push(() => sink.close(), () => dns.close());
  return { dns, sink };
}

function plainRelay(port: number, dns: TestDnsServer, sinkPort: number, extra: Record<string, unknown> = {}) {
  return {
    hostname: 'relay.test',
    listeners: [{ name: 'plain', host: '127.0.0.1', port, mode: 'plain' as const }],
    trustedNetworks: [{ cidrs: ['127.0.0.1/32'], domains: ['a.test', 'b.test'] }],
    domains: [{ domain: 'a.test' }, { domain: 'b.test' }],
    queue: { retrySchedule: ['1s'], maxLifetime: '1h' },
    recipientChecks: { dns: false },
    delivery: { mode: 'mx' as const, mx: { port: sinkPort, dnsServers: [dns.address] } },
    ...extra,
  };
}

describe('the relay serves no unchecked domain', () => {
  it('refuses a config whose trusted network names a domain it does not serve, naming the field, even with no domains at all', async () => {
    const dir = tempDir();
    // The attack: an EmailRelay with no SenderDomains and trustedNetworks: [someone-else.com].
    const file = writeConfig(dir, {
      dataDir: path.join(dir, 'data'), http: { host: '127.0.0.1', port: 0 },
      listeners: [{ name: 'plain', host: '127.0.0.1', port: await freePort(), mode: 'plain' }],
      trustedNetworks: [{ cidrs: ['127.0.0.1/32'], domains: ['someone-else.com'] }],
    });
    const check = await cli('config', 'check', file);
    expect(check.code).toBe(1);
    expect(check.stderr).toMatch(/trustedNetworks\.0\.domains\.0: domain someone-else\.com is not served by this relay/);
    await expect(spawnRelay(file)).rejects.toThrow(/trustedNetworks\.0\.domains\.0/);
  }, 120_000);

  it('checks From alignment for a served domain that has no settings of its own', async () => {
    const { dns, sink } = await world();
    const relay = await startRelay(plainRelay(0, dns, sink.port));
    cleanup.push(() => relay.stop());
    const t = nodemailer.createTransport({ host: '127.0.0.1', port: relay.port('plain'), secure: false, ignoreTLS: true });
    await expect(t.sendMail({ from: 'ceo@bank.test', to: 'x@dest.test', subject: 's', text: 'x', envelope: { from: 'app@a.test', to: 'x@dest.test' } }))
      .rejects.toThrow(/550 5\.7\.1 Header From ceo@bank\.test does not align with the sender domain a\.test/);
    expect(sink.messages).toHaveLength(0);
  });
});

describe('suppression per tenant', () => {
  it("one tenant's bounce does not refuse another tenant's mail, and the remote text is never echoed", async () => {
    const { dns, sink } = await world();
    const relay = await startRelay(plainRelay(0, dns, sink.port));
    cleanup.push(() => relay.stop());
    const port = relay.port('plain');
    await send(port, 'app@a.test', 'victim@dest.test', 'tenant a');
    await waitUntil('the DSN to tenant a', () => sink.messages.some((m) => m.from === '' && m.to.includes('app@a.test')));

    const forA = await rcptReply(port, 'app@a.test', 'victim@dest.test');
    expect(forA).toMatch(/^550 5\.1\.1 Recipient victim@dest\.test is suppressed on the list of a\.test since .* after a hard bounce \(5\.1\.1\)/);
    expect(forA).not.toMatch(/SCAM|555/);
    // Tenant b never sent there: its RCPT is accepted and its mail goes out.
    expect(await rcptReply(port, 'app@b.test', 'victim@dest.test')).toMatch(/^250/);
    const scopes = await cli('suppression', 'list', '--data-dir', path.join(relay.dir, 'data'));
    expect(scopes.stdout).toMatch(/^a\.test\tvictim@dest\.test\t/m);
    expect((await cli('suppression', 'list', '--scope', 'b.test', '--data-dir', path.join(relay.dir, 'data'))).stdout).toBe('');

    // The platform's own list applies to every sender; its reason text is not echoed either.
    const added = await cli('suppression', 'add', 'blocked@dest.test', '--scope', '*', '--reason', 'legal hold', '--data-dir', path.join(relay.dir, 'data'));
    expect(added.stdout).toMatch(/platform-wide/);
    await waitUntil('the relay to read the platform entry', async () => /^550 5\.1\.1 .*platform-wide/.test(await rcptReply(port, 'app@b.test', 'blocked@dest.test')), 10_000, 200);
    expect(await rcptReply(port, 'app@a.test', 'blocked@dest.test')).not.toContain('legal hold');
    // A scope that is not a domain is a usage error, not a silent no-op.
    expect((await cli('suppression', 'list', '--scope', 'not a domain', '--data-dir', path.join(relay.dir, 'data'))).code).toBe(2);
  }, 180_000); // five CLI processes; slow on a loaded machine
});

const haveRedis = haveTools('redis', ['redis-server']);

describe.skipIf(!haveRedis)('one suppression list per fleet (Redis)', () => {
  let redis: TestRedis | undefined;
  afterAll(async () => { await redis?.destroy(); });

  it('an entry made on pod 0 refuses the recipient on pod 1; a CLI removal reaches both; the journal serves while Redis is down', async () => {
    const { dns, sink } = await world();
    redis = await startRedis();
    const pods: Array<{ relay: ChildRelay; port: number; file: string }> = [];
    for (let i = 0; i < 2; i++) {
      const dir = tempDir();
      const port = await freePort();
      const file = writeConfig(dir, {
        ...plainRelay(port, dns, sink.port, { redis: { url: redis.url, keyPrefix: 'mf:fleet1:' } }),
        hostname: `relay${i}.test`, dataDir: path.join(dir, 'data'), http: { host: '127.0.0.1', port: 0 },
      });
      const relay = await spawnRelay(file);
      cleanup.push(async () => { relay.child.kill('SIGTERM'); await relay.exited; });
      pods.push({ relay, port, file });
    }
    const [p0, p1] = pods as [typeof pods[0], typeof pods[0]];
    await waitUntil('both pods in sync with Redis', () => pods.every((p) => p.relay.output().includes('in sync with the fleet')));

    await send(p0.port, 'app@a.test', 'victim@dest.test');
    await waitUntil('pod 1 to refuse what bounced through pod 0',
      async () => (await rcptReply(p1.port, 'app@a.test', 'victim@dest.test')).startsWith('550 5.1.1'), 20_000, 200);
    expect(await rcptReply(p1.port, 'app@b.test', 'victim@dest.test')).toMatch(/^250/); // still scoped
    const fleet = await cli('suppression', 'list', '--config', p1.file);
    expect(fleet.stdout).toMatch(/^a\.test\tvictim@dest\.test\t/m);

    expect((await cli('suppression', 'remove', 'victim@dest.test', '--scope', 'a.test', '--config', p1.file)).stdout).toMatch(/removed/);
    for (const p of pods) {
      await waitUntil(`pod on ${p.port} to accept again`, async () => (await rcptReply(p.port, 'app@a.test', 'victim@dest.test')).startsWith('250'), 20_000, 200);
    }

    // Redis down: pod 0 still refuses from its journal; what it learns meanwhile reaches
    // pod 1 once Redis is back.
    await redis.stop();
    await send(p0.port, 'app@b.test', 'victim@dest.test');
    await waitUntil('pod 0 to refuse from its journal', async () => (await rcptReply(p0.port, 'app@b.test', 'victim@dest.test')).startsWith('550 5.1.1'), 20_000, 200);
    expect(await rcptReply(p1.port, 'app@b.test', 'victim@dest.test')).toMatch(/^250/);
    await redis.restart();
    await waitUntil('pod 1 to learn the entry after Redis returned',
      async () => (await rcptReply(p1.port, 'app@b.test', 'victim@dest.test')).startsWith('550 5.1.1'), 30_000, 250);
  }, 180_000);
});

describe('outbound target rules', () => {
  it('refuses loopback, link-local and metadata addresses unless allowed; private ranges stay allowed', () => {
    const p = new OutboundPolicy();
    expect(p.refusal('127.0.0.1')).toBe('loopback');
    expect(p.refusal('::1')).toBe('loopback');
    expect(p.refusal('::ffff:127.0.0.1')).toBe('loopback');
    expect(p.refusal('169.254.169.254')).toBe('link-local');
    expect(p.refusal('fe80::1')).toBe('link-local');
    expect(p.refusal('fd00:ec2::254')).toBe('cloud metadata');
    expect(p.refusal('100.100.100.200')).toBe('cloud metadata');
    expect(p.refusal('0.0.0.0')).toBe('this-host');
    for (const ok of ['10.96.0.10', '172.20.1.1', '192.168.1.1', 'fd12::1', '93.184.216.34']) expect(p.refusal(ok)).toBeUndefined();
    const allowed = new OutboundPolicy({ allowAddresses: ['127.0.0.3/32'] });
    expect(allowed.refusal('127.0.0.3')).toBeUndefined();
    expect(allowed.refusal('127.0.0.2')).toBe('loopback');
  });

  it('a webhook aimed at a loopback metadata path, an MX on loopback and a loopback smarthost reach nothing by default', async () => {
    const { dns, sink } = await world();
    const hits: string[] = [];
    const server = http.createServer((req, res) => { hits.push(String(req.url)); res.writeHead(204).end(); });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    cleanup.push(() => new Promise((r) => server.close(r)));
    const smarthost = await startSink({ host: '127.0.0.3', tls: 'none' });
    cleanup.push(() => smarthost.close());
    const dir = tempDir();
    fs.writeFileSync(path.join(dir, 'hook'), 'whsec\n');
    const port = (server.address() as { port: number }).port;
    const relay = await startRelay(plainRelay(0, dns, sink.port, {
      outbound: { allowAddresses: [] }, // this test does not opt in to loopback targets
      webhooks: [
        { url: `http://127.0.0.1:${port}/latest/meta-data/iam`, secretFile: path.join(dir, 'hook'), retryBaseMs: 100, retryMaxMs: 200 },
        { url: `http://localhost:${port}/by-name`, secretFile: path.join(dir, 'hook'), retryBaseMs: 100, retryMaxMs: 200 },
      ],
      domains: [{ domain: 'a.test' }, { domain: 'b.test', smarthost: { host: '127.0.0.3', port: smarthost.port, tls: 'none', requireTls: false } }],
    }), { dir });
    cleanup.push(() => relay.stop());
    const log = () => fs.readFileSync(relay.logFile, 'utf8');

    await send(relay.port('plain'), 'app@a.test', 'someone@dest.test', 'via mx');
    await waitUntil('the MX refusal', () => /MX hosts of dest\.test resolve only to addresses this relay may not connect to: mx\.dest\.test\[127\.0\.0\.2\] \(loopback\)/.test(log()));
    await waitUntil('both webhooks refused', () => /webhook host 127\.0\.0\.1 is loopback/.test(log()) && /localhost resolves to .* \(loopback\)/.test(log()));
    await send(relay.port('plain'), 'app@b.test', 'someone@dest.test', 'via smarthost');
    await waitUntil('the smarthost refusal', () => /smarthost 127\.0\.0\.3 resolves to 127\.0\.0\.3 \(loopback\)/.test(log()));
    expect(hits).toEqual([]);
    expect(sink.messages).toHaveLength(0);
    expect(smarthost.messages).toHaveLength(0);
  });

  it('the explicit switch lets the relay reach exactly the addresses it lists', async () => {
    const { dns, sink } = await world();
    const smarthost = await startSink({ host: '127.0.0.3', tls: 'none' });
    cleanup.push(() => smarthost.close());
    const relay = await startRelay(plainRelay(0, dns, sink.port, {
      outbound: { allowAddresses: ['127.0.0.3/32'] },
      domains: [{ domain: 'a.test' }, { domain: 'b.test', smarthost: { host: '127.0.0.3', port: smarthost.port, tls: 'none', requireTls: false } }],
    }));
    cleanup.push(() => relay.stop());
    await send(relay.port('plain'), 'app@b.test', 'someone@dest.test', 'allowed smarthost');
    await smarthost.waitFor(1);
    await send(relay.port('plain'), 'app@a.test', 'someone@dest.test', 'mx still refused');
    await waitUntil('the MX refusal', () => /MX hosts of dest\.test resolve only/.test(fs.readFileSync(relay.logFile, 'utf8')));
    expect(sink.messages).toHaveLength(0);
  });

  it('refuses an outbound switch that is not a list of addresses', async () => {
    const dir = tempDir();
    const file = writeConfig(dir, { ...plainRelay(2525, { address: '127.0.0.1:53' } as TestDnsServer, 25), dataDir: dir, outbound: { allowAddresses: ['metadata'], allow: true } as never });
    const r = await cli('config', 'check', file, '--schema-only');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/outbound\.allowAddresses\.0: must be an IP address or CIDR/);
    expect(r.stderr).toMatch(/outbound\.allow: unknown field/);
  }, 120_000);
});
