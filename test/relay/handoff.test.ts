// The scale-down hand-off between two real relays (real sockets, a real SMTP sink): the
// relay asked to drain (its downward-API annotations file, written here as the kubelet
// would) stops taking mail and hands its queue to its peer's hand-off listener; the peer
// keeps the record (queue id, envelope with its DSN parameters, arrival time, recipients already delivered,
// attempts, the DKIM signature and Received line computed at intake) and delivers only the
// recipients still open, without signing or checking again.
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import nodemailer from 'nodemailer';
import SMTPConnection from 'nodemailer/lib/smtp-connection';
import { SMTPServer, type SMTPServerDataStream } from 'smtp-server';
import { afterAll, describe, expect, it } from 'vitest';
import { testCert } from '../support/certs.ts';
import { startSink } from '../support/sink.ts';
import { spawnRelay, startRelay, tempDir, waitUntil, writeConfig, type TestRelay } from '../support/relay-harness.ts';
import { startDnsServer } from '../support/dns-server.ts';
import { freePort } from '../support/ports.ts';
import { QueueStore } from '../../relay/queue/store.ts';
import { SmtpTalk } from '../support/smtp-talk.ts';
import type { RelayConfigInput } from '../../relay/config/schema.ts';

const cleanup: Array<() => unknown> = [];
afterAll(async () => { for (const f of cleanup.reverse()) await f(); });

const TOKEN = 'fleet-token-for-the-handoff-test';

function relayConfig(dir: string, sink: { host: string; port: number }, handoff: NonNullable<RelayConfigInput['handoff']>, extra: Partial<RelayConfigInput> = {}): RelayConfigInput {
  const keyFile = path.join(dir, 'dkim.pem');
  if (!fs.existsSync(keyFile)) fs.writeFileSync(keyFile, crypto.generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }));
  return {
    hostname: `relay-${path.basename(dir)}.test`,
    listeners: [{ name: 'plain', host: '127.0.0.1', port: 0, mode: 'plain' }],
    tls: { selfSigned: true },
    trustedNetworks: [{ cidrs: ['127.0.0.0/8'], domains: ['example.test'] }],
    domains: [{ domain: 'example.test', dkim: { keys: [{ selector: 'ed1', algorithm: 'ed25519-sha256', privateKeyFile: keyFile }] } }],
    recipientChecks: { dns: false },
    queue: { retrySchedule: ['1h'] },
    delivery: { mode: 'smarthost', smarthosts: [{ host: sink.host, port: sink.port, tls: 'none', requireTls: false }] },
    handoff,
    ...extra,
  };
}

async function status(r: TestRelay): Promise<{ draining: boolean; queued: number; sessions: number; handedOff?: number }> {
  return (await fetch(`http://127.0.0.1:${r.httpPort}/status`)).json() as Promise<{ draining: boolean; queued: number; sessions: number }>;
}

describe('scale-down hand-off between relays', () => {
  it('hands the queue to the peer with envelope, arrival time and open recipients; the peer delivers the rest without re-signing', { timeout: 120_000 }, async () => {
    let acceptB = false;
    // a@ is taken at once; b@ is deferred until acceptB
    const sink = await startSink({ host: '127.0.0.22', tls: 'none', rcptReply: (rcpt) => (rcpt.startsWith('b@') && !acceptB ? { code: 451, message: '4.2.0 try later' } : undefined) });
    cleanup.push(() => sink.close());

    const dirB = tempDir();
    const tokenFile = path.join(dirB, 'fleet-token');
    fs.writeFileSync(tokenFile, `${TOKEN}\n`);
    const b = await startRelay(relayConfig(dirB, sink, { host: '127.0.0.1', port: 0, tokenFile }), { dir: dirB });
    cleanup.push(() => b.stop());
    const bHandoff = (b.relay as unknown as { handoffReceiver: { address(): { port: number } } }).handoffReceiver.address().port;

    const dirA = tempDir();
    const annotations = path.join(dirA, 'annotations');
    fs.writeFileSync(annotations, 'kubectl.kubernetes.io/default-container="relay"\n');
    const a = await startRelay(relayConfig(dirA, sink, { host: '127.0.0.1', port: 0, tokenFile, annotationsFile: annotations, peers: [`127.0.0.1:${bHandoff}`] }), { dir: dirA });
    cleanup.push(() => a.stop());

    const client = nodemailer.createTransport({ host: '127.0.0.1', port: a.port('plain'), ignoreTLS: true });
    await client.sendMail({
      envelope: { from: 'app@example.test', to: ['a@dest.test', 'b@dest.test'] },
      raw: 'From: app@example.test\r\nTo: a@dest.test, b@dest.test\r\nSubject: handed over\r\n\r\nbody line\r\n',
      dsn: { ret: 'HDRS', envid: 'order-4711', notify: ['FAILURE', 'DELAY'], recipient: 'rfc822;b@dest.test' },
    });
    client.close();
    await sink.waitFor(1);
    // (NOTIFY=DELAY: A may queue a delay notice beside it, from the null sender)
    const mineOnA = () => [...a.relay.queue.messages()].find((q) => q.meta.from === 'app@example.test');
    await waitUntil('A recorded a@ delivered, b@ deferred', () => mineOnA()?.state.attempts === 1 && !!mineOnA()?.state.done['a@dest.test']);
    const queuedA = mineOnA();
    const { meta: metaA, state: stateA } = structuredClone({ meta: queuedA!.meta, state: queuedA!.state });
    expect(metaA.prepend).toMatch(/^Received: .*\r\n(.|\r\n)*DKIM-Signature: /);
    expect(await status(a)).toMatchObject({ draining: false });
    expect(metaA.dsn).toEqual({ ret: 'HDRS', envid: 'order-4711' });
    expect(metaA.rcptDsn?.['b@dest.test']).toEqual({ notify: ['FAILURE', 'DELAY'], orcpt: 'rfc822;b@dest.test' });

    // The kubelet rewrites the annotations file: the operator asked this pod to leave.
    fs.writeFileSync(annotations, 'kubectl.kubernetes.io/default-container="relay"\nmailfleet.io/drain-requested="2026-12-01T23:00:00Z"\n');
    await waitUntil('A drained into B', async () => { const s = await status(a); return s.draining && s.queued === 0; });
    expect(await status(a)).toMatchObject({ draining: true, queued: 0, sessions: 0 });
    expect((await status(a)).handedOff).toBeGreaterThanOrEqual(1);
    expect((await fetch(`http://127.0.0.1:${a.httpPort}/readyz`)).status).toBe(503);
    // A draining relay takes no new mail, neither from clients nor from peers.
    const { talk, greeting } = await SmtpTalk.connect(a.port('plain'));
    expect(greeting.text).toMatch(/^421 4\.3\.2 /);
    talk.close();

    const queuedB = b.relay.queue.get(metaA.id);
    expect(queuedB, 'B holds the message under its queue id').toBeDefined();
    // The whole record travelled: envelope, arrival time (so the remaining lifetime), the
    // header lines computed at intake; and the state: a@ done, one attempt counted.
    expect(queuedB!.meta).toEqual(metaA);
    expect(queuedB!.state.done).toEqual(stateA.done);
    // B may have tried b@ once more already (handed-off mail is due at once): the count it took over is in its log
    const arrival = fs.readFileSync(b.logFile, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l)).find((l) => l.msg === 'handed-off message queued');
    expect(arrival).toMatchObject({ queueId: metaA.id, attempts: 1, receivedAt: new Date(metaA.receivedAt).toISOString() });
    expect(queuedB!.state.attempts).toBeGreaterThanOrEqual(1);
    expect(queuedB!.meta.receivedAt).toBe(metaA.receivedAt);
    expect(queuedB!.meta.dsn).toEqual({ ret: 'HDRS', envid: 'order-4711' });
    expect(queuedB!.meta.rcptDsn?.['b@dest.test']).toEqual({ notify: ['FAILURE', 'DELAY'], orcpt: 'rfc822;b@dest.test' });

    acceptB = true;
    // (NOTIFY=DELAY: the sink may also get delay notices from the null sender; they are not the message)
    const deliveredB = () => sink.messages.some((m) => m.from === 'app@example.test' && m.to.includes('b@dest.test'));
    // A retry that lands while B's own first attempt is still in flight is overtaken by that
    // attempt's deferral (1h): ask again, twice a second, until the message arrives.
    let lastRetry = 0;
    await waitUntil('b@ delivered', async () => {
      if (deliveredB()) return true;
      if (Date.now() - lastRetry > 500) { lastRetry = Date.now(); await b.relay.queueControl().retry(metaA.id).catch(() => undefined); } // gone: delivered meanwhile
      return deliveredB();
    });
    const second = sink.messages.find((m) => m.from === 'app@example.test' && m.to.includes('b@dest.test'));
    expect(second!.from).toBe('app@example.test');
    expect(second!.to).toEqual(['b@dest.test']);
    const text = second!.data!.toString();
    // A's signature and Received line, unchanged; B added neither a signature nor a Received line of its own.
    expect(text.startsWith(metaA.prepend!)).toBe(true);
    expect(text.match(/^DKIM-Signature:/gm)).toHaveLength(1);
    expect(text.match(/^Received:/gm)).toHaveLength(1);
    expect(text).not.toContain('X-MailFleet-Handoff');
    await waitUntil('B finished the message', () => b.relay.queue.size === 0);
    const mine = sink.messages.filter((m) => m.from === 'app@example.test');
    expect(mine.filter((m) => m.to.includes('b@dest.test'))).toHaveLength(1);
    expect(mine.filter((m) => m.to.includes('a@dest.test'))).toHaveLength(1);

    // Withdrawn before the pod went (scaled back up): A takes mail again.
    fs.writeFileSync(annotations, 'kubectl.kubernetes.io/default-container="relay"\n');
    await waitUntil('A ready again', async () => (await fetch(`http://127.0.0.1:${a.httpPort}/readyz`)).status === 200);
    expect(await status(a)).toMatchObject({ draining: false });
  });

  it('the hand-off listener wants TLS, then AUTH CRAM-MD5 with the fleet token; a wrong token is refused', { timeout: 60_000 }, async () => {
    const dir = tempDir();
    const tokenFile = path.join(dir, 'fleet-token');
    fs.writeFileSync(tokenFile, TOKEN);
    const r = await startRelay(relayConfig(dir, { host: '127.0.0.22', port: 9 }, { host: '127.0.0.1', port: 0, tokenFile }), { dir });
    cleanup.push(() => r.stop());
    const port = (r.relay as unknown as { handoffReceiver: { address(): { port: number } } }).handoffReceiver.address().port;
    const login = (pass: string, method: string, tls = true) => new Promise<string>((resolve) => {
      const conn = new SMTPConnection({ host: '127.0.0.1', port, secure: false, ignoreTLS: !tls, requireTLS: tls, tls: { rejectUnauthorized: false }, logger: false });
      conn.once('error', (err: Error & { response?: string }) => { conn.close(); resolve(err.response ?? err.message); });
      conn.connect(() => conn.login({ user: 'mailfleet-handoff', pass, method } as never, (err) => { conn.close(); resolve(err ? ((err as { response?: string }).response ?? err.message) : 'ok'); }));
    });
    expect(await login(TOKEN, 'CRAM-MD5')).toBe('ok');
    expect(await login('wrong', 'CRAM-MD5')).toMatch(/^535 5\.7\.8/);
    expect(await login(TOKEN, 'PLAIN')).toMatch(/^50\d/);
    expect(await login(TOKEN, 'CRAM-MD5', false)).toMatch(/^538|^530|Must issue a STARTTLS/i);
  });

  it('a listener that answers 250 without a receipt for the fleet token gets no message removed; a real peer then takes it', { timeout: 120_000 }, async () => {
    // Something at a peer's address that takes any CRAM-MD5 login (it cannot check one
    // without the token) and says 250 to everything: it sees a copy, but without the
    // receipt only the token makes, the draining relay keeps the message.
    const cert = testCert();
    const copies: string[] = [];
    const impostor = new SMTPServer({
      secure: false, key: fs.readFileSync(cert.keyPath), cert: fs.readFileSync(cert.certPath), authMethods: ['CRAM-MD5'], logger: false, disableReverseLookup: true,
      onAuth: (auth, _session, cb) => cb(null, { user: auth.username }),
      onData: (stream: SMTPServerDataStream, _session, cb) => {
        const chunks: Buffer[] = [];
        stream.on('data', (c: Buffer) => chunks.push(c));
        stream.on('end', () => { copies.push(Buffer.concat(chunks).toString()); cb(null, '2.0.0 Ok: handed off as SOMETHING'); });
      },
    });
    await new Promise<void>((resolve) => impostor.listen(0, '127.0.0.1', resolve));
    cleanup.push(() => new Promise<void>((resolve) => impostor.close(() => resolve())));
    const impostorPeer = `127.0.0.1:${(impostor.server.address() as { port: number }).port}`;
    // the destination defers: the message stays queued until it is handed off
    const sink = await startSink({ host: '127.0.0.23', tls: 'none', rcptReply: () => ({ code: 451, message: '4.2.0 try later' }) });
    cleanup.push(() => sink.close());
    const tokenDir = tempDir();
    const tokenFile = path.join(tokenDir, 'fleet-token');
    fs.writeFileSync(tokenFile, TOKEN);
    const draining = 'kubectl.kubernetes.io/default-container="relay"\nmailfleet.io/drain-requested="2026-12-02T05:00:00Z"\n';

    /** A relay holding one deferred message, then asked to drain towards `peers`. */
    const drainingRelay = async (peers: string[]) => {
      const dir = tempDir();
      const annotations = path.join(dir, 'annotations');
      fs.writeFileSync(annotations, 'kubectl.kubernetes.io/default-container="relay"\n');
      const r = await startRelay(relayConfig(dir, sink, { host: '127.0.0.1', port: 0, tokenFile, annotationsFile: annotations, peers }), { dir });
      cleanup.push(() => r.stop());
      const client = nodemailer.createTransport({ host: '127.0.0.1', port: r.port('plain'), ignoreTLS: true });
      await client.sendMail({ envelope: { from: 'app@example.test', to: ['c@dest.test'] }, raw: 'From: app@example.test\r\nSubject: not for impostors\r\n\r\nbody\r\n' });
      client.close();
      await waitUntil('first attempt deferred', () => [...r.relay.queue.messages()].some((q) => q.state.attempts === 1));
      const id = [...r.relay.queue.messages()][0]!.meta.id;
      fs.writeFileSync(annotations, draining);
      return { r, id };
    };

    // Only the impostor: it gets a copy, the message stays.
    const alone = await drainingRelay([impostorPeer]);
    await waitUntil('the impostor was offered the message', () => copies.length >= 1);
    expect(copies[0]).toContain('Subject: not for impostors');
    expect(alone.r.relay.queue.get(alone.id), 'still queued on the draining relay').toBeDefined();
    expect(await status(alone.r)).toMatchObject({ draining: true, queued: 1, handedOff: 0 });
    const warned = () => fs.readFileSync(alone.r.logFile, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l)).filter((l) => l.queueId === alone.id && /without a receipt/.test(l.err ?? ''));
    await waitUntil('the refusal is logged', () => warned().length >= 1);

    // The impostor first, then a real relay: the message ends up with the real one.
    const dirB = tempDir();
    const b = await startRelay(relayConfig(dirB, sink, { host: '127.0.0.1', port: 0, tokenFile }), { dir: dirB });
    cleanup.push(() => b.stop());
    const bPeer = `127.0.0.1:${(b.relay as unknown as { handoffReceiver: { address(): { port: number } } }).handoffReceiver.address().port}`;
    const both = await drainingRelay([impostorPeer, bPeer]);
    // (the queue forgets the message before the sender logs it: wait for the line too)
    const handedLine = () => fs.readFileSync(both.r.logFile, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l)).find((l) => l.msg === 'handed off' && l.queueId === both.id);
    await waitUntil('handed to the real peer', () => b.relay.queue.get(both.id) !== undefined && both.r.relay.queue.size === 0 && handedLine() !== undefined);
    const handed = handedLine();
    expect(handed).toMatchObject({ peer: bPeer });
    expect(handed.response).toMatch(/ receipt=[0-9a-f]{64}$/);
  });
});

// A port free on every one of these loopback addresses (each relay binds its own address,
// all on one port, as pods of a Deployment do on theirs). Bounded: 20 tries.
async function portFreeOn(hosts: string[]): Promise<number> {
  for (let i = 0; i < 20; i++) {
    const port = await freePort(hosts[0]);
    const free = await Promise.all(hosts.map((h) => new Promise<boolean>((resolve) => {
      const srv = net.createServer();
      srv.once('error', () => resolve(false));
      srv.listen(port, h, () => srv.close(() => resolve(true)));
    })));
    if (free.every(Boolean)) return port;
  }
  throw new Error(`no port free on all of ${hosts.join(', ')}`);
}

const jsonLines = (text: string) => text.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);

/** Sends `count` messages through a relay's plain listener, each to its own recipient. */
async function sendMany(host: string, port: number, tag: string, count: number): Promise<void> {
  const client = nodemailer.createTransport({ host, port, ignoreTLS: true });
  for (let i = 0; i < count; i++) {
    await client.sendMail({ envelope: { from: 'app@example.test', to: [`r${i}@dest.test`] }, raw: `From: app@example.test\r\nTo: r${i}@dest.test\r\nSubject: ${tag} ${i}\r\n\r\nbody ${i}\r\n` });
  }
  client.close();
}

describe('hand-off on SIGTERM (handoff.onShutdown: a queue that dies with its pod)', () => {
  it('the stopping relay hands its deferred queue to every address of the peer name but its own; each message arrives once', { timeout: 120_000 }, async () => {
    let accept = false;
    const sink = await startSink({ host: '127.0.0.22', tls: 'none', rcptReply: () => (accept ? undefined : { code: 451, message: '4.2.0 try later' }) });
    cleanup.push(() => sink.close());
    const hosts = ['127.0.0.31', '127.0.0.32', '127.0.0.33'];
    const port = await portFreeOn([...hosts, '127.0.0.34']);
    // the headless Service's name: every relay's address (its own too), and one where nothing listens
    const dns = await startDnsServer({ 'relay-headless.mail.test': { A: [...hosts, '127.0.0.34'] } });
    cleanup.push(() => dns.close());
    const tokenDir = tempDir();
    const tokenFile = path.join(tokenDir, 'fleet-token');
    fs.writeFileSync(tokenFile, TOKEN);
    const relays: TestRelay[] = [];
    for (const host of hosts) {
      const dir = tempDir();
      const r = await startRelay(relayConfig(dir, sink, { host, port, tokenFile, peers: [`relay-headless.mail.test:${port}`], dnsServers: [dns.address], onShutdown: true }, {
        listeners: [{ name: 'plain', host, port: 0, mode: 'plain' }], limits: { drainTimeout: '3s' },
      }), { dir });
      cleanup.push(() => r.stop());
      relays.push(r);
    }
    const [a, b, c] = relays as [TestRelay, TestRelay, TestRelay];
    const count = 8;
    await sendMany(hosts[0]!, a.port('plain'), 'leaving', count);
    await waitUntil('every message deferred on A', () => a.relay.queue.size === count && [...a.relay.queue.messages()].every((q) => q.state.attempts === 1));
    const idsA = [...a.relay.queue.messages()].map((q) => q.meta.id).sort();

    await a.stop();
    const logA = jsonLines(fs.readFileSync(a.logFile, 'utf8'));
    expect(logA.find((l) => l.msg === 'shutdown hand-off complete: the queue is empty')).toMatchObject({ handedOff: count });
    expect(logA.filter((l) => String(l.msg).startsWith('shutdown hand-off incomplete'))).toEqual([]);
    // never to itself; the address where nothing listens was tried (and backed off)
    const tried = logA.filter((l) => l.msg === 'handed off' || l.msg === 'hand-off failed; trying another peer').map((l) => l.address);
    expect(tried).not.toContain(`${hosts[0]}:${port}`);
    expect(tried).toContain(`127.0.0.34:${port}`);
    const onB = [...b.relay.queue.messages()].map((q) => q.meta.id);
    const onC = [...c.relay.queue.messages()].map((q) => q.meta.id);
    // both staying addresses took some, none twice, none missing
    expect(onB.length).toBeGreaterThan(0);
    expect(onC.length).toBeGreaterThan(0);
    expect([...onB, ...onC].sort()).toEqual(idsA);

    accept = true;
    const subjects = () => sink.messages.map((m) => /Subject: (leaving \d+)/.exec(m.data!.toString())?.[1]).filter(Boolean);
    let lastRetry = 0;
    await waitUntil('every handed-off message delivered by B and C', async () => {
      if (Date.now() - lastRetry > 500) {
        lastRetry = Date.now();
        for (const [r, ids] of [[b, onB], [c, onC]] as const) for (const id of ids) await r.relay.queueControl().retry(id).catch(() => undefined);
      }
      return new Set(subjects()).size === count && b.relay.queue.size === 0 && c.relay.queue.size === 0;
    }, 60_000);
    expect(subjects().sort()).toEqual(Array.from({ length: count }, (_, i) => `leaving ${i}`).sort());
  });

  it('a message stuck in a delivery attempt is left to it until the drain deadline aborts it, then handed off in the grace that follows', { timeout: 120_000 }, async () => {
    // end-of-DATA is never answered: the attempt runs until the deadline aborts it
    const stalling = await startSink({ host: '127.0.0.24', tls: 'none', keepData: false, dataDelayMs: 3_600_000 });
    cleanup.push(() => stalling.close());
    const deferring = await startSink({ host: '127.0.0.25', tls: 'none', rcptReply: () => ({ code: 451, message: '4.2.0 try later' }) });
    cleanup.push(() => deferring.close());
    const tokenDir = tempDir();
    const tokenFile = path.join(tokenDir, 'fleet-token');
    fs.writeFileSync(tokenFile, TOKEN);
    const dirB = tempDir();
    const b = await startRelay(relayConfig(dirB, deferring, { host: '127.0.0.52', port: 0, tokenFile }, {
      listeners: [{ name: 'plain', host: '127.0.0.52', port: 0, mode: 'plain' }], limits: { drainTimeout: '1s' },
    }), { dir: dirB });
    cleanup.push(() => b.stop());
    const bPort = (b.relay as unknown as { handoffReceiver: { address(): { port: number } } }).handoffReceiver.address().port;
    const dirA = tempDir();
    const a = await startRelay(relayConfig(dirA, stalling, { host: '127.0.0.51', port: 0, tokenFile, peers: [`127.0.0.52:${bPort}`], onShutdown: true }, {
      listeners: [{ name: 'plain', host: '127.0.0.51', port: 0, mode: 'plain' }], limits: { drainTimeout: '1s' },
    }), { dir: dirA });
    cleanup.push(() => a.stop());
    await sendMany('127.0.0.51', a.port('plain'), 'stuck', 1);
    const [id] = [...a.relay.queue.messages()].map((q) => q.meta.id);
    await waitUntil('the attempt is in DATA at the stalling smarthost', () => stalling.rcptCommands.length >= 1);

    await a.stop();
    const logA = jsonLines(fs.readFileSync(a.logFile, 'utf8'));
    const at = (msg: string) => logA.findIndex((l) => l.msg === msg);
    expect(at('drain deadline reached: aborting delivery attempts, their recipients stay queued')).toBeGreaterThan(-1);
    // left to its attempt while that ran; handed off once the abort freed it
    expect(at('handed off')).toBeGreaterThan(at('drain deadline reached: aborting delivery attempts, their recipients stay queued'));
    expect(logA.find((l) => l.msg === 'shutdown hand-off complete: the queue is empty')).toMatchObject({ handedOff: 1 });
    expect(b.relay.queue.get(id!)).toBeDefined();
    // the aborted attempt was not counted: B took it over with none
    const arrival = jsonLines(fs.readFileSync(b.logFile, 'utf8')).find((l) => l.msg === 'handed-off message queued');
    expect(arrival).toMatchObject({ queueId: id, attempts: 0 });
  });

  it('with no peer taking mail (wrong token, draining, unreachable) SIGTERM still ends the process and logs what is lost, by queue id', { timeout: 120_000 }, async () => {
    const sink = await startSink({ host: '127.0.0.23', tls: 'none', rcptReply: () => ({ code: 451, message: '4.2.0 try later' }) });
    cleanup.push(() => sink.close());
    const [wrongHost, drainingHost, deadHost, leavingHost] = ['127.0.0.41', '127.0.0.42', '127.0.0.43', '127.0.0.44'];
    const port = await portFreeOn([wrongHost, drainingHost, deadHost, leavingHost]);
    const dns = await startDnsServer({ 'relay-headless.mail.test': { A: [wrongHost, drainingHost, deadHost] } });
    cleanup.push(() => dns.close());
    const tokenDir = tempDir();
    const tokenFile = path.join(tokenDir, 'fleet-token');
    fs.writeFileSync(tokenFile, TOKEN);
    const otherToken = path.join(tokenDir, 'other-fleet-token');
    fs.writeFileSync(otherToken, 'another fleet, another token');

    // a listener of another fleet: the token does not match, it takes nothing
    const dirW = tempDir();
    const w = await startRelay(relayConfig(dirW, sink, { host: wrongHost, port, tokenFile: otherToken }, { listeners: [{ name: 'plain', host: wrongHost, port: 0, mode: 'plain' }] }), { dir: dirW });
    cleanup.push(() => w.stop());
    // a peer that is leaving too: it refuses with 421
    const dirE = tempDir();
    const annotations = path.join(dirE, 'annotations');
    fs.writeFileSync(annotations, 'mailfleet.io/drain-requested="2026-12-02T05:00:00Z"\n');
    const e = await startRelay(relayConfig(dirE, sink, { host: drainingHost, port, tokenFile, annotationsFile: annotations }, { listeners: [{ name: 'plain', host: drainingHost, port: 0, mode: 'plain' }] }), { dir: dirE });
    cleanup.push(() => e.stop());
    await waitUntil('E draining', async () => (await status(e)).draining);

    const dirD = tempDir();
    const [smtpPort, httpPort] = [await freePort(leavingHost), await freePort()];
    const configFile = writeConfig(dirD, {
      ...relayConfig(dirD, sink, { host: leavingHost, port, tokenFile, peers: [`relay-headless.mail.test:${port}`], dnsServers: [dns.address], onShutdown: true }, {
        listeners: [{ name: 'plain', host: leavingHost, port: smtpPort, mode: 'plain' }], limits: { drainTimeout: '1s' },
      }),
      dataDir: path.join(dirD, 'data'), http: { host: '127.0.0.1', port: httpPort },
    });
    const d = await spawnRelay(configFile);
    cleanup.push(() => { d.child.kill('SIGKILL'); });
    const count = 3;
    await sendMany(leavingHost, smtpPort, 'stranded', count);
    await waitUntil('D deferred every message', async () => (await fetch(`http://127.0.0.1:${httpPort}/status`).then((r) => r.json() as Promise<{ queued: number }>)).queued === count
      && sink.rcptCommands.length >= count);
    d.child.kill('SIGTERM');
    expect(await d.exited).toBe(0);
    const lines = jsonLines(d.output());
    const lost = lines.find((l) => String(l.msg).startsWith('shutdown hand-off incomplete'));
    expect(lost).toMatchObject({ level: 50, notHandedOff: count, handedOff: 0 });
    expect(String(lost!.msg)).toContain('lost with this pod\'s emptyDir queue');
    // the ids logged are those left in its data directory
    const { store } = await QueueStore.open(path.join(dirD, 'data', 'queue'));
    expect((lost!.queueIds as string[]).slice().sort()).toEqual([...store.messages()].map((q) => q.meta.id).sort());
    // each of the three refused, none took anything
    const failures = lines.filter((l) => l.msg === 'hand-off failed; trying another peer').map((l) => l.address);
    for (const h of [wrongHost, drainingHost, deadHost]) expect(failures).toContain(`${h}:${port}`);
    expect(w.relay.queue.size).toBe(0);
    expect(e.relay.queue.size).toBe(0);
    expect(fs.readFileSync(w.logFile, 'utf8')).toContain('hand-off auth failed');
  });
});
