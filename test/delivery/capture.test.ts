// delivery.mode 'capture' through the whole relay: each message becomes an .eml file under
// <dataDir>/captured (the bytes a peer would get, DKIM-Signature included, the envelope on
// top), its path is logged, and nothing leaves, not even for a domain with its own
// smarthost. A capture that cannot be written defers the message; it is kept and captured
// on the retry.
import fs from 'node:fs';
import path from 'node:path';
import nodemailer from 'nodemailer';
import { afterAll, describe, expect, it } from 'vitest';
import { hashPassword } from '../../relay/auth/password.ts';
import { startSink, type Sink } from '../support/sink.ts';
import { startRelay, tempDir, waitUntil, type TestRelay } from '../support/relay-harness.ts';
import { testCert } from '../support/certs.ts';

let relay: TestRelay | undefined;
let sink: Sink | undefined;
afterAll(async () => { await relay?.stop(); await sink?.close(); });

const captured = (dir: string) => (fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => f.endsWith('.eml')).sort() : []);

describe("delivery.mode 'capture'", () => {
  it('writes each message as .eml with its envelope, logs the path, and sends nothing, per-domain smarthosts included', async () => {
    sink = await startSink({ host: '127.0.0.1' });
    const dir = tempDir();
    const cert = testCert();
    relay = await startRelay({
      hostname: 'relay.test',
      listeners: [{ name: 'submission', host: '127.0.0.1', port: 0, mode: 'starttls' }],
      tls: { certFile: cert.certPath, keyFile: cert.keyPath },
      credentials: [{ username: 'alice', passwordHash: await hashPassword('pw'), domains: ['example.test', 'own.test'] }],
      recipientChecks: { dns: false },
      domains: [
        { domain: 'example.test' },
        // would go to the sink in any other mode
        { domain: 'own.test', smarthost: { host: '127.0.0.1', port: sink.port, tls: 'none', requireTls: false } },
      ],
      queue: { retrySchedule: ['1s'] },
      delivery: { mode: 'capture' },
    } as never, { dir });
    const captureDir = path.join(dir, 'data', 'captured');
    // a file where the directory belongs: the first attempts cannot capture
    fs.mkdirSync(path.dirname(captureDir), { recursive: true });
    fs.writeFileSync(captureDir, 'in the way');
    const app = nodemailer.createTransport({ host: '127.0.0.1', port: relay.port('submission'), requireTLS: true, tls: { rejectUnauthorized: false }, auth: { user: 'alice', pass: 'pw' } });
    await app.sendMail({ from: 'app@example.test', to: ['one@elsewhere.test', 'two@other.test'], subject: 'first', text: 'hello capture' });
    await app.sendMail({ from: 'app@own.test', to: 'three@elsewhere.test', subject: 'second', text: 'not via the smarthost' });
    const log = () => fs.readFileSync(relay!.logFile, 'utf8');
    await waitUntil('a failed capture', () => log().includes('capture failed'), 20_000);
    expect(relay.relay.queue.size).toBe(2); // deferred, kept
    fs.rmSync(captureDir);
    await waitUntil('both captured on retry', () => captured(captureDir).length === 2, 30_000);
    await waitUntil('queue empty', () => relay!.relay.queue.size === 0, 10_000);

    const files = captured(captureDir).map((f) => path.join(captureDir, f));
    const texts = files.map((f) => fs.readFileSync(f, 'utf8'));
    const first = texts.find((t) => t.includes('Subject: first'))!;
    const second = texts.find((t) => t.includes('Subject: second'))!;
    expect(first.startsWith('Return-Path: <app@example.test>\r\nX-MailFleet-Envelope-To: one@elsewhere.test, two@other.test\r\n')).toBe(true);
    expect(first).toContain('hello capture');
    expect(first).toMatch(/^Received: from /m); // what the relay adds on the way
    expect(second.startsWith('Return-Path: <app@own.test>\r\nX-MailFleet-Envelope-To: three@elsewhere.test\r\n')).toBe(true);
    for (const f of files) {
      expect(fs.statSync(f).mode & 0o777).toBe(0o600);
      expect(log()).toContain(`"path":"${f}"`);
    }
    expect(fs.readdirSync(captureDir).filter((f) => !f.endsWith('.eml'))).toEqual([]); // no temp files left
    expect(sink.connections()).toBe(0);
    expect(log()).toMatch(/"msg":"message captured"/);
  });
});
