// Smarthost mode through the whole relay: the primary is down, the backup gets the mail.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { startSink, type Sink } from '../support/sink.ts';
import { startRelay, tempDir, type TestRelay } from '../support/relay-harness.ts';
import { hashPassword } from '../../relay/auth/password.ts';
import { testCert } from '../support/certs.ts';
import nodemailer from 'nodemailer';

let relay: TestRelay | undefined;
let backup: Sink | undefined;
afterAll(async () => { await relay?.stop(); await backup?.close(); });

describe('smarthost failover', () => {
  it('uses the backup smarthost with AUTH when the primary refuses connections', async () => {
    backup = await startSink({ host: '127.0.0.3', tls: 'starttls', auth: { user: 'relayuser', pass: 'provider-secret' } });
    const dir = tempDir();
    const pwFile = path.join(dir, 'smarthost-password');
    fs.writeFileSync(pwFile, 'provider-secret\n');
    const cert = testCert();
    relay = await startRelay({
      hostname: 'relay.test',
      listeners: [{ name: 'submission', host: '127.0.0.1', port: 0, mode: 'starttls' }],
      tls: { certFile: cert.certPath, keyFile: cert.keyPath },
      credentials: [{ username: 'alice', passwordHash: await hashPassword('pw'), domains: ['example.test'] }],
      domains: [{ domain: 'example.test' }],
      // No recipient DNS check: this test has no DNS server, and must not ask the system's.
      recipientChecks: { dns: false },
      delivery: {
        mode: 'smarthost',
        smarthosts: [
          { host: '127.0.0.4', port: 1, tls: 'starttls', requireTls: true, tlsRejectUnauthorized: false },
          { host: '127.0.0.3', port: backup.port, tls: 'starttls', requireTls: true, tlsRejectUnauthorized: false, auth: { user: 'relayuser', passwordFile: pwFile } },
        ],
      },
    } as never, { dir });
    await nodemailer.createTransport({ host: '127.0.0.1', port: relay.port('submission'), requireTLS: true, tls: { rejectUnauthorized: false }, auth: { user: 'alice', pass: 'pw' } })
      .sendMail({ from: 'app@example.test', to: 'anyone@elsewhere.test', subject: 'via backup', text: 'x' });
    const [msg] = await backup.waitFor(1, 30_000);
    expect(msg!.authUser).toBe('relayuser');
    expect(msg!.secure).toBe(true);
    expect(fs.readFileSync(relay.logFile, 'utf8')).not.toContain('provider-secret');
  });
});
