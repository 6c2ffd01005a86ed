// MX routing over real sockets: a dns2 server on loopback answers MX/A queries and
// smtp-server sinks on 127.0.0.x play the MX hosts.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../relay/log.ts';
import { Deliverer } from '../../relay/delivery/deliverer.ts';
import { startDnsServer, type TestDnsServer } from '../support/dns-server.ts';
import type { Sink } from '../support/sink.ts';
import { config, makeJob, sinksOnOnePort, tempDir } from './helpers.ts';
import { loopbackSinks } from '../support/outbound.ts';

let dns: TestDnsServer;
let port: number;
let primary: Sink;    // 127.0.0.2
let backup: Sink;     // 127.0.0.3
let plain: Sink;      // 127.0.0.5: no STARTTLS at all
let picky: Sink;      // 127.0.0.6: scripted replies
let hidden: Sink;     // 127.0.0.10: STARTTLS not advertised, accepted when sent anyway
let deliverer: Deliverer;
let strict: Deliverer; // mx.requireTls
const tmp = tempDir();

beforeAll(async () => {
  const started = await sinksOnOnePort(
    ['127.0.0.2', '127.0.0.3', '127.0.0.5', '127.0.0.6', '127.0.0.10'],
    (host) => host === '127.0.0.5' ? { tls: 'none' } : host === '127.0.0.10' ? { tls: 'hidden' } : host === '127.0.0.6' ? {
      rcptReply: (rcpt) => rcpt.startsWith('bad@') ? { code: 550, message: '5.1.1 no such user' }
        : rcpt.startsWith('later@') ? { code: 450, message: '4.2.0 mailbox busy, try later' } : undefined,
      dataReply: (msg) => msg.to.some((t) => t.startsWith('tempdata@')) ? { code: 451, message: '4.3.0 local problem' } : undefined,
    } : {},
  );
  port = started.port;
  [primary, backup, plain, picky, hidden] = started.sinks as [Sink, Sink, Sink, Sink, Sink];
  dns = await startDnsServer({
    'pref.test': { MX: [{ preference: 20, exchange: 'mx2.pref.test' }, { preference: 10, exchange: 'mx1.pref.test' }] },
    'mx1.pref.test': { A: ['127.0.0.2'] },
    'mx2.pref.test': { A: ['127.0.0.3'] },
    // lowest preference points at an address nobody listens on
    'down.test': { MX: [{ preference: 5, exchange: 'dead.down.test' }, { preference: 50, exchange: 'mx2.pref.test' }] },
    'dead.down.test': { A: ['127.0.0.4'] },
    'alldown.test': { MX: [{ preference: 5, exchange: 'dead.down.test' }] },
    'implicit.test': { A: ['127.0.0.3'] },
    'nullmx.test': { MX: [{ preference: 0, exchange: '.' }] },
    'broken.test': { servfail: true },
    'plain.test': { MX: [{ preference: 10, exchange: 'mx.plain.test' }] },
    'mx.plain.test': { A: ['127.0.0.5'] },
    'picky.test': { MX: [{ preference: 10, exchange: 'mx.picky.test' }] },
    'mx.picky.test': { A: ['127.0.0.6'] },
    'hidden.test': { MX: [{ preference: 10, exchange: 'mx.hidden.test' }] },
    'mx.hidden.test': { A: ['127.0.0.10'] },
    'nomx-noaddr.test': { TXT: ['v=spf1 -all'] },
  });
  const base = { mx: { port, dnsServers: [dns.address] }, connectTimeoutMs: 3000, greetingTimeoutMs: 3000, socketTimeoutMs: 10_000 };
  deliverer = new Deliverer({ outbound: loopbackSinks, config: config(base), log: silentLogger });
  strict = new Deliverer({ outbound: loopbackSinks, config: config({ ...base, mx: { ...base.mx, requireTls: true, tlsRejectUnauthorized: false } }), log: silentLogger });
});

afterAll(async () => {
  await deliverer?.close();
  await strict?.close();
  await Promise.all([primary, backup, plain, picky, hidden].map((s) => s?.close()));
  await dns?.close();
  tmp.cleanup();
});

describe('MX delivery', () => {
  it('uses the lowest-preference MX when it is up', async () => {
    const before = backup.messages.length;
    const job = makeJob(tmp.dir, ['u1@Pref.TEST']);
    const [o] = await deliverer.deliver(job);
    expect(o).toMatchObject({ recipient: 'u1@Pref.TEST', status: 'delivered', code: 250, route: 'mx', remote: `mx1.pref.test[127.0.0.2]:${port}` });
    // smtp-server lower-cases the domain part; the local part is kept
    expect(primary.messages.flatMap((m) => m.to).map((t) => t.toLowerCase())).toContain('u1@pref.test');
    expect(backup.messages.length).toBe(before);
  });

  it('falls to the next MX when the preferred one refuses connections', async () => {
    const [o] = await deliverer.deliver(makeJob(tmp.dir, ['u2@down.test']));
    expect(o).toMatchObject({ status: 'delivered', remote: `mx2.pref.test[127.0.0.3]:${port}` });
    expect(backup.messages.flatMap((m) => m.to)).toContain('u2@down.test');
  });

  it('defers when no MX host can be reached, naming the failure', async () => {
    const [o] = await deliverer.deliver(makeJob(tmp.dir, ['u3@alldown.test']));
    expect(o).toMatchObject({ status: 'deferred', enhanced: '4.4.1' });
    expect(o!.response).toContain(`connection refused to dead.down.test[127.0.0.4]:${port}`);
  });

  it('delivers to the domain address when there is no MX (implicit MX)', async () => {
    const [o] = await deliverer.deliver(makeJob(tmp.dir, ['u4@implicit.test']));
    expect(o).toMatchObject({ status: 'delivered', remote: `implicit.test[127.0.0.3]:${port}` });
    expect(backup.messages.flatMap((m) => m.to)).toContain('u4@implicit.test');
  });

  it('fails permanently on a null MX (RFC 7505)', async () => {
    const [o] = await deliverer.deliver(makeJob(tmp.dir, ['u5@nullmx.test']));
    expect(o).toMatchObject({ status: 'failed', enhanced: '5.1.10' });
    expect(o!.response).toMatch(/null MX/);
  });

  it('fails permanently on NXDOMAIN and when the domain has neither MX nor address', async () => {
    const outcomes = await deliverer.deliver(makeJob(tmp.dir, ['u6@nowhere.test', 'u7@nomx-noaddr.test']));
    expect(outcomes[0]).toMatchObject({ recipient: 'u6@nowhere.test', status: 'failed', enhanced: '5.1.2' });
    expect(outcomes[1]).toMatchObject({ recipient: 'u7@nomx-noaddr.test', status: 'failed', enhanced: '5.1.2' });
  });

  it('defers on SERVFAIL', async () => {
    const [o] = await deliverer.deliver(makeJob(tmp.dir, ['u8@broken.test']));
    expect(o).toMatchObject({ status: 'deferred', enhanced: '4.4.3' });
    expect(o!.response).toContain('ESERVFAIL');
  });

  it('routes each domain of one job separately and reports in recipient order', async () => {
    const outcomes = await deliverer.deliver(makeJob(tmp.dir, ['a@pref.test', 'b@nullmx.test', 'c@implicit.test']));
    expect(outcomes.map((o) => [o.recipient, o.status])).toEqual([
      ['a@pref.test', 'delivered'], ['b@nullmx.test', 'failed'], ['c@implicit.test', 'delivered'],
    ]);
  });

  it('uses STARTTLS when offered (opportunistic), without verifying the self-signed cert', async () => {
    const job = makeJob(tmp.dir, ['tls@pref.test']);
    await deliverer.deliver(job);
    const got = primary.messages.find((m) => m.to.includes('tls@pref.test'));
    expect(got?.secure).toBe(true);
  });

  it('sends in plaintext when STARTTLS is not offered and TLS is not required', async () => {
    const [o] = await deliverer.deliver(makeJob(tmp.dir, ['p@plain.test']));
    expect(o!.status).toBe('delivered');
    expect(plain.messages.find((m) => m.to.includes('p@plain.test'))?.secure).toBe(false);
  });

  it('defers with 4.7.4 when TLS is required and the MX offers none', async () => {
    const before = plain.messages.length;
    const [o] = await strict.deliver(makeJob(tmp.dir, ['req@plain.test']));
    expect(o).toMatchObject({ status: 'deferred', enhanced: '4.7.4' });
    expect(o!.response).toMatch(/TLS is required/);
    expect(plain.messages.length).toBe(before);
    // and with TLS available, the strict route delivers over it
    const [ok] = await strict.deliver(makeJob(tmp.dir, ['req@pref.test']));
    expect(ok!.status).toBe('delivered');
    expect(primary.messages.find((m) => m.to.includes('req@pref.test'))?.secure).toBe(true);
  });

  it('with TLS required, still encrypts to a host that hides STARTTLS but accepts it (nodemailer sends it anyway)', async () => {
    const [o] = await strict.deliver(makeJob(tmp.dir, ['h@hidden.test']));
    expect(o!.status).toBe('delivered');
    expect(hidden.messages.find((m) => m.to.includes('h@hidden.test'))?.secure).toBe(true);
    // the opportunistic route does not ask for what is not offered
    await deliverer.deliver(makeJob(tmp.dir, ['o@hidden.test']));
    expect(hidden.messages.find((m) => m.to.includes('o@hidden.test'))?.secure).toBe(false);
  });

  it('reports per-recipient outcomes within one transaction (250, 550, 450)', async () => {
    const outcomes = await deliverer.deliver(makeJob(tmp.dir, ['good@picky.test', 'bad@picky.test', 'later@picky.test']));
    expect(outcomes[0]).toMatchObject({ recipient: 'good@picky.test', status: 'delivered', code: 250 });
    expect(outcomes[1]).toMatchObject({ recipient: 'bad@picky.test', status: 'failed', code: 550, enhanced: '5.1.1' });
    expect(outcomes[1]!.response).toContain('no such user');
    expect(outcomes[2]).toMatchObject({ recipient: 'later@picky.test', status: 'deferred', code: 450, enhanced: '4.2.0' });
    const msg = picky.messages.find((m) => m.to.includes('good@picky.test'));
    expect(msg?.to).toEqual(['good@picky.test']);
  });

  it('defers every recipient when DATA gets a 4xx, and fails every one on all-5xx RCPT', async () => {
    const outcomes = await deliverer.deliver(makeJob(tmp.dir, ['tempdata@picky.test', 'x@picky.test']));
    expect(outcomes.map((o) => [o.status, o.code, o.enhanced])).toEqual([['deferred', 451, '4.3.0'], ['deferred', 451, '4.3.0']]);
    const rejected = await deliverer.deliver(makeJob(tmp.dir, ['bad@picky.test', 'bad@PICKY.test']));
    expect(rejected.map((o) => o.status)).toEqual(['failed', 'failed']);
  });

  it('sends the null sender as MAIL FROM:<> and the bytes after the offset exactly', async () => {
    const message = 'Subject: dsn\r\n\r\n..leading dot line\r\nbody\r\n';
    const job = makeJob(tmp.dir, ['dsn@pref.test'], { from: '', message, prepend: Buffer.from('X-Pre: 1\r\n') });
    const [o] = await deliverer.deliver(job);
    expect(o!.status).toBe('delivered');
    const got = primary.messages.find((m) => m.to.includes('dsn@pref.test'));
    expect(got?.from).toBe('');
    expect(got?.data?.toString()).toBe(`X-Pre: 1\r\n${message}`);
  });
});
