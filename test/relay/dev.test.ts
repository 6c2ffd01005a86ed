// `npm start` = `mailfleet relay --dev`: the embedded loopback default works as the README
// says (ports, self-signed TLS, the dev login for example.test, password printed once), and
// the README's first minute ends as promised: the message sent is captured as an .eml file
// whose DKIM signature verifies. The relay runs with an empty PATH: no CLI tool (openssl)
// is needed at run time. Nothing here looks up a recipient: capture mode asks no DNS.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { Resolver } from 'node:dns/promises';
import path from 'node:path';
import { dkimVerify } from 'mailauth';
import nodemailer from 'nodemailer';
import { afterEach, describe, expect, it } from 'vitest';
import { devConfig } from '../../relay/dev.ts';
import { lockDevPorts } from '../support/dev-ports.ts';
import { startDnsServer } from '../support/dns-server.ts';
import { SmtpTalk, authPlain } from '../support/smtp-talk.ts';
import { repoRoot, tempDir, waitUntil } from '../support/relay-harness.ts';

let stop: (() => Promise<void>) | undefined;
let release: (() => void) | undefined;
afterEach(async () => { await stop?.(); stop = undefined; release?.(); release = undefined; });

function startDev(cwd: string) {
  const env: NodeJS.ProcessEnv = { ...process.env, PATH: tempDir('mailfleet-empty-path-') };
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
    release = await lockDevPorts();
    const dev = startDev(cwd);
    await waitUntil('dev relay ready', () => dev.output().includes('"relay ready"'), 90_000);
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

    // the first minute: send one (the client verifies the self-signed certificate), open the capture
    const cert = fs.readFileSync(path.join(cwd, '.mailfleet', 'tls', 'selfsigned.crt'));
    await nodemailer.createTransport({ host: '127.0.0.1', port: 2587, requireTLS: true, tls: { ca: cert }, auth: { user: 'dev', pass: password } })
      .sendMail({ from: 'you@example.test', to: 'someone@example.org', subject: 'first minute', text: 'hello from the dev relay' });
    let emlPath = '';
    await waitUntil('message captured', () => {
      const line = dev.output().split('\n').find((l) => l.includes('"message captured"'));
      if (line) emlPath = (JSON.parse(line) as { path: string }).path;
      return Boolean(line);
    }, 30_000);
    expect(path.dirname(emlPath)).toBe(path.join(fs.realpathSync(cwd), '.mailfleet', 'captured'));
    const eml = fs.readFileSync(emlPath);
    expect(eml.toString()).toContain('Subject: first minute');
    const record = fs.readFileSync(path.join(cwd, '.mailfleet', 'dkim', 'dev._domainkey.example.test.txt'), 'utf8').trim();
    const dns = await startDnsServer({ 'dev._domainkey.example.test': { TXT: [record] } });
    try {
      const resolver = new Resolver({ timeout: 2000, tries: 1 });
      resolver.setServers([dns.address]);
      const res = await dkimVerify(eml, { resolver: (name: string, rr: string) => resolver.resolve(name, rr) as Promise<string[][]> });
      expect(res.results.map((r) => ({ domain: r.signingDomain, selector: r.selector, result: r.status?.result })))
        .toEqual([{ domain: 'example.test', selector: 'dev', result: 'pass' }]);
    } finally {
      await dns.close();
    }
    await stop!();
    stop = undefined;
    // A second start keeps the password and does not print it again.
    const again = startDev(cwd);
    await waitUntil('dev relay ready again', () => again.output().includes('"relay ready"'), 90_000);
    expect(again.output()).not.toContain(password);
    expect(again.output()).toContain('password in');
  }, 240_000); // two starts, each making RSA keys, on a busy CI machine

  it('sends by MX, with recipient DNS checks, only with --deliver', async () => {
    const dataDir = tempDir();
    const captured = (await devConfig({ dataDir })).config;
    expect(captured.delivery.mode).toBe('capture');
    expect(captured.recipientChecks.dns).toBe(false);
    const real = (await devConfig({ dataDir, deliver: true })).config;
    expect(real.delivery.mode).toBe('mx');
    expect(real.recipientChecks.dns).toBe(true);
    // the same key signs either way
    expect(real.domains[0]!.dkim!.keys[0]!.privateKeyFile).toBe(captured.domains[0]!.dkim!.keys[0]!.privateKeyFile);
  });
});
