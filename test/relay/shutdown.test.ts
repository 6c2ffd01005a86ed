// SIGTERM on the real process: readiness off, new sessions refused, an open session may
// finish its message, the process exits 0 and the message is not lost. With a smarthost
// that never answers, the drain deadline aborts the attempts: the process still exits on
// its own, idle sessions get 421 at once, and every message is delivered after a restart.
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import YAML from 'yaml';
import nodemailer from 'nodemailer';
import { SMTPServer } from 'smtp-server';
import { afterAll, describe, expect, it } from 'vitest';
import { startSink, type Sink } from '../support/sink.ts';
import { startDnsServer, type TestDnsServer } from '../support/dns-server.ts';
import { spawnRelay, tempDir, waitUntil, writeConfig, type ChildRelay } from '../support/relay-harness.ts';
import { SmtpTalk } from '../support/smtp-talk.ts';
import { freePort } from '../support/ports.ts';

let sink: Sink | undefined;
let dns: TestDnsServer | undefined;
let relay: ChildRelay | undefined;
const extra: Array<() => unknown> = [];
afterAll(async () => { relay?.child.kill('SIGKILL'); await sink?.close(); await dns?.close(); for (const f of extra) await f(); });

describe('graceful shutdown', () => {
  it('drains an open session and exits 0', async () => {
    sink = await startSink({ host: '127.0.0.2' });
    dns = await startDnsServer({ 'dest.test': { MX: [{ preference: 10, exchange: 'mx.dest.test' }] }, 'mx.dest.test': { A: ['127.0.0.2'] } });
    const dir = tempDir();
    const [port, httpPort] = [await freePort(), await freePort()];
    const configFile = writeConfig(dir, {
      hostname: 'relay.test', dataDir: path.join(dir, 'data'),
      listeners: [{ name: 'plain', host: '127.0.0.1', port, mode: 'plain' }],
      trustedNetworks: [{ cidrs: ['127.0.0.0/8'], domains: ['example.test'] }],
      domains: [{ domain: 'example.test' }],
      limits: { drainTimeout: '10s' },
      delivery: { mode: 'mx', mx: { port: sink.port, dnsServers: [dns.address] } },
      http: { host: '127.0.0.1', port: httpPort },
    });
    relay = await spawnRelay(configFile);
    expect((await fetch(`http://127.0.0.1:${httpPort}/readyz`)).status).toBe(200);
    const { talk } = await SmtpTalk.connect(port);
    await talk.cmd('EHLO c.test');
    expect((await talk.cmd('MAIL FROM:<app@example.test>')).code).toBe(250);
    expect((await talk.cmd('RCPT TO:<bob@dest.test>')).code).toBe(250);
    relay.child.kill('SIGTERM');
    // Readiness goes off while the session is still open.
    const deadline = Date.now() + 10_000;
    let ready = 200;
    while (ready === 200 && Date.now() < deadline) {
      ready = await fetch(`http://127.0.0.1:${httpPort}/readyz`).then((r) => r.status, () => 0);
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(ready).not.toBe(200);
    // New connections are no longer accepted.
    await expect(SmtpTalk.connect(port).then(({ greeting }) => greeting.code)).rejects.toThrow();
    expect((await talk.cmd('DATA')).code).toBe(354);
    talk.write('From: app@example.test\r\nSubject: in flight\r\n\r\nfinish me\r\n.\r\n');
    expect((await talk.read()).code).toBe(250);
    await talk.cmd('QUIT');
    talk.close();
    expect(await relay.exited).toBe(0);
    // Not lost: a restart delivers it.
    relay = await spawnRelay(configFile);
    await sink.waitFor(1, 20_000);
    expect(sink.messages[0]!.data!.toString()).toContain('Subject: in flight');
    // the next test reassigns `relay`: this one must not outlive the file
    relay.child.kill('SIGTERM');
    expect(await relay.exited).toBe(0);
  });
});

describe('shutdown bounded by drainTimeout', () => {
  it('aborts attempts stuck at a smarthost that never answers, sends 421 to an idle session, exits 0, loses nothing', { timeout: 120_000 }, async () => {
    // end-of-DATA is never answered: without the deadline the process would wait forever
    const stalling = await startSink({ host: '127.0.0.9', tls: 'none', keepData: false, dataDelayMs: 3_600_000 });
    extra.push(() => stalling.close());
    const dir = tempDir();
    const [port, httpPort] = [await freePort(), await freePort()];
    const input = {
      hostname: 'relay.test', dataDir: path.join(dir, 'data'),
      listeners: [{ name: 'plain', host: '127.0.0.1', port, mode: 'plain' }],
      trustedNetworks: [{ cidrs: ['127.0.0.0/8'], domains: ['example.test'] }],
      domains: [{ domain: 'example.test' }],
      recipientChecks: { dns: false },
      limits: { drainTimeout: '2s' },
      delivery: { mode: 'smarthost', smarthosts: [{ host: '127.0.0.9', port: stalling.port, tls: 'none', requireTls: false }], maxConnectionsPerDestination: 4 },
      http: { host: '127.0.0.1', port: httpPort },
    };
    const configFile = writeConfig(dir, input as never);
    relay = await spawnRelay(configFile);
    const client = nodemailer.createTransport({ host: '127.0.0.1', port, ignoreTLS: true, pool: true, maxConnections: 4 });
    const count = 24;
    await Promise.all(Array.from({ length: count }, (_, i) => client.sendMail({
      envelope: { from: 'app@example.test', to: [`r${i}@dest.test`] },
      raw: `From: app@example.test\r\nTo: r${i}@dest.test\r\nSubject: stuck ${i}\r\n\r\nbody ${i}\r\n`,
    })));
    client.close();
    // attempts are stuck in DATA at the smarthost (its connections are all open)
    await waitUntil('the smarthost to hold connections', () => stalling.connections() >= 2);
    const { talk } = await SmtpTalk.connect(port);
    expect((await talk.cmd('EHLO idle.test')).code).toBe(250);
    const exitedAt = relay.exited.then(() => 'exited' as const);
    relay.child.kill('SIGTERM');
    // the idle session hears 421 while the relay is still draining, not when it dies
    const bye = await talk.read(30_000);
    expect(bye.code).toBe(421);
    expect(bye.text).toMatch(/421 4\.3\.2 /);
    expect(await Promise.race([exitedAt, Promise.resolve('running')])).toBe('running');
    expect(await relay.exited).toBe(0);
    expect(relay.output()).toContain('drain deadline reached');
    expect(relay.output()).toContain('delivery aborted at shutdown, stays queued');
    // nothing lost: a restart against a smarthost that answers delivers every message
    const good = await startSink({ host: '127.0.0.10', tls: 'none' });
    extra.push(() => good.close());
    writeConfig(dir, { ...input, delivery: { ...input.delivery, smarthosts: [{ host: '127.0.0.10', port: good.port, tls: 'none', requireTls: false }] } } as never);
    relay = await spawnRelay(configFile);
    await waitUntil('every message at the new smarthost', () => new Set(good.messages.map((m) => /Subject: (stuck \d+)/.exec(m.data!.toString())?.[1])).size === count, 60_000);
    relay.child.kill('SIGTERM');
    expect(await relay.exited).toBe(0);
  });

  it('guard: the smtp-server internals closeIdleSessions reads (connections, session.envelope.mailFrom, _upgrading, send)', async () => {
    const server = new SMTPServer({ authOptional: true, logger: false, disabledCommands: ['STARTTLS'] });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const p = (server.server.address() as net.AddressInfo).port;
      const { talk } = await SmtpTalk.connect(p);
      await talk.cmd('EHLO guard.test');
      const conns = (server as unknown as { connections: Set<{ _upgrading?: boolean; session: { envelope: { mailFrom: unknown } }; send: unknown }> }).connections;
      expect(conns).toBeInstanceOf(Set);
      const [conn] = [...conns];
      expect(conn!.session.envelope.mailFrom).toBe(false);
      expect(conn!._upgrading).toBe(false);
      expect(typeof conn!.send).toBe('function');
      await talk.cmd('MAIL FROM:<a@guard.test>');
      expect(conn!.session.envelope.mailFrom).toBeTruthy();
      talk.close();
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
    }
  });
});
