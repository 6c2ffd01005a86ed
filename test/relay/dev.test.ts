// `npm start` = `mailfleet relay --dev`: the embedded loopback default works as the README
// says (ports, self-signed TLS, the dev login for example.test, password printed once).
// Nothing here sends a RCPT: the dev relay resolves recipients with the system DNS.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { SmtpTalk, authPlain } from '../support/smtp-talk.ts';
import { repoRoot, tempDir, waitUntil } from '../support/relay-harness.ts';

let stop: (() => Promise<void>) | undefined;
afterEach(async () => { await stop?.(); stop = undefined; });

function startDev(cwd: string) {
  const env = { ...process.env };
  delete env.MAILFLEET_DEV_PASSWORD; // this test is about the generated one
  const child = spawn(process.execPath, [path.join(repoRoot, 'bin/mailfleet.ts'), 'relay', '--dev'], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
  child.stderr.on('data', (d: Buffer) => { out += d.toString(); });
  const exited = new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
  stop = async () => { child.kill('SIGTERM'); await exited; };
  return { output: () => out, exited };
}

describe('mailfleet relay --dev', () => {
  it('serves submission on 2587 with a generated password printed once, for example.test only', async () => {
    const cwd = tempDir();
    const dev = startDev(cwd);
    await waitUntil('dev relay ready', () => dev.output().includes('"relay ready"'), 30_000);
    const password = fs.readFileSync(path.join(cwd, '.mailfleet', 'dev-password'), 'utf8').trim();
    expect(dev.output()).toContain(`password "${password}" (shown once`);
    expect(fs.readFileSync(path.join(cwd, '.mailfleet', 'tls', 'selfsigned.crt'), 'utf8')).toContain('BEGIN CERTIFICATE');
    expect((await fetch('http://127.0.0.1:9464/readyz')).status).toBe(200);
    const { talk, greeting } = await SmtpTalk.connect(2587);
    expect(greeting.code).toBe(220);
    await talk.cmd('EHLO me.test');
    await talk.starttls();
    await talk.cmd('EHLO me.test');
    expect((await talk.cmd(`AUTH PLAIN ${authPlain('dev', password)}`)).code).toBe(235);
    expect((await talk.cmd('MAIL FROM:<someone@other.test>')).code).toBe(550);
    expect((await talk.cmd('MAIL FROM:<you@example.test>')).code).toBe(250);
    talk.close();
    const tls = await SmtpTalk.connect(2465, '127.0.0.1', { tls: true });
    expect(tls.greeting.code).toBe(220);
    tls.talk.close();
    await stop!();
    stop = undefined;
    // A second start keeps the password and does not print it again.
    const again = startDev(cwd);
    await waitUntil('dev relay ready again', () => again.output().includes('"relay ready"'), 30_000);
    expect(again.output()).not.toContain(password);
    expect(again.output()).toContain('password in');
  });
});
