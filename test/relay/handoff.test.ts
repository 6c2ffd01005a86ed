// The scale-down hand-off between two real relays (real sockets, a real SMTP sink): the
// relay asked to drain (its downward-API annotations file, written here as the kubelet
// would) stops taking mail and hands its queue to its peer's hand-off listener; the peer
// keeps the record (queue id, envelope with its DSN parameters, arrival time, recipients already delivered,
// attempts, the DKIM signature and Received line computed at intake) and delivers only the
// recipients still open, without signing or checking again.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import nodemailer from 'nodemailer';
import SMTPConnection from 'nodemailer/lib/smtp-connection';
import { afterAll, describe, expect, it } from 'vitest';
import { startSink } from '../support/sink.ts';
import { startRelay, tempDir, waitUntil, type TestRelay } from '../support/relay-harness.ts';
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
});
