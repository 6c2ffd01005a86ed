// Hot reload: a changed file (or SIGHUP) applies a new config without dropping an open
// session; a broken config is refused, counted, and the old one keeps serving.
import fs from 'node:fs';
import YAML from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startWorld, type World } from './fixture.ts';
import { SmtpTalk } from '../support/smtp-talk.ts';
import { scrape, metricValue, waitUntil } from '../support/relay-harness.ts';

let w: World;
beforeAll(async () => { w = await startWorld(); });
afterAll(async () => { await w?.close(); });

function editConfig(edit: (cfg: Record<string, unknown>) => void): void {
  const cfg = YAML.parse(fs.readFileSync(w.relay.configFile, 'utf8')) as Record<string, unknown>;
  edit(cfg);
  fs.writeFileSync(w.relay.configFile, YAML.stringify(cfg));
}

async function reloads(result: string): Promise<number> {
  return metricValue(await scrape(w.relay.httpPort), 'mailfleet_config_reloads_total', { result });
}

describe('config reload', () => {
  it('applies a new trusted domain while a session stays open', async () => {
    const { talk } = await SmtpTalk.connect(w.relay.port('plain'));
    await talk.cmd('EHLO client.test');
    expect((await talk.cmd('MAIL FROM:<ops@newdomain.test>')).text).toMatch(/^550 5\.7\.1/);
    editConfig((cfg) => {
      (cfg.domains as object[]).push({ domain: 'newdomain.test' });
      (cfg.trustedNetworks as Array<{ domains: string[] }>)[0]!.domains.push('newdomain.test');
    });
    await waitUntil('reload ok', async () => (await reloads('ok')) >= 1);
    // The same session, opened before the reload, sees the new policy.
    expect((await talk.cmd('MAIL FROM:<ops@newdomain.test>')).code).toBe(250);
    talk.close();
  });

  it('refuses an invalid config, counts it and keeps serving the old one', async () => {
    const goodBefore = await reloads('ok');
    editConfig((cfg) => { (cfg.limits as Record<string, unknown>) = { maxRecipients: -3 }; });
    await waitUntil('reload refused', async () => (await reloads('invalid')) >= 1);
    expect(await reloads('ok')).toBe(goodBefore);
    const log = fs.readFileSync(w.relay.logFile, 'utf8');
    expect(log).toMatch(/limits\.maxRecipients.*new config refused/);
    const before = w.sink.messages.length;
    await w.send({ subject: 'after bad reload' });
    await w.sink.waitFor(before + 1);
  });

  it('reloads on demand (the SIGHUP path) and picks up a fixed file', async () => {
    editConfig((cfg) => { cfg.limits = { maxMessageSize: 200_000, maxRecipients: 2 }; });
    expect(await w.relay.relay.reload('SIGHUP')).toBe(true);
    expect(w.relay.relay.config.limits.maxRecipients).toBe(2);
  });
});

describe('reload is all-or-nothing', () => {
  it('refuses a config whose per-domain smarthost password file is missing, and keeps every old setting', async () => {
    const { talk } = await SmtpTalk.connect(w.relay.port('plain'));
    await talk.cmd('EHLO client.test');
    editConfig((cfg) => {
      (cfg.domains as object[]).push({ domain: 'halfway.test', smarthost: { host: '127.0.0.9', port: 2525, auth: { user: 'u', passwordFile: `${w.relay.dir}/missing-password` } } });
      (cfg.trustedNetworks as Array<{ domains: string[] }>)[0]!.domains.push('halfway.test');
    });
    expect(await w.relay.relay.reload('test')).toBe(false);
    // The trusted domain that came with the broken smarthost was not half-applied.
    expect((await talk.cmd('MAIL FROM:<ops@halfway.test>')).text).toMatch(/^550 5\.7\.1/);
    talk.close();
    editConfig((cfg) => {
      cfg.domains = (cfg.domains as Array<{ domain: string }>).filter((d) => d.domain !== 'halfway.test');
      (cfg.trustedNetworks as Array<{ domains: string[] }>)[0]!.domains = (cfg.trustedNetworks as Array<{ domains: string[] }>)[0]!.domains.filter((d) => d !== 'halfway.test');
    });
    expect(await w.relay.relay.reload('test')).toBe(true);
  });
});

describe('SIGHUP on the real process', () => {
  it('reloads on the signal (file polling switched off to isolate it)', async () => {
    const { spawnRelay, tempDir: mk, writeConfig } = await import('../support/relay-harness.ts');
    const { freePort } = await import('../support/ports.ts');
    const path = await import('node:path');
    const dir = mk();
    const input = {
      dataDir: path.join(dir, 'data'), http: { host: '127.0.0.1', port: 0 }, recipientChecks: { dns: false },
      listeners: [{ name: 'plain', host: '127.0.0.1', port: await freePort(), mode: 'plain' as const }],
      trustedNetworks: [{ cidrs: ['127.0.0.1/32'], domains: ['a.test'] }],
      domains: [{ domain: 'a.test' }, { domain: 'b.test' }],
    };
    const file = writeConfig(dir, input);
    const child = await spawnRelay(file, { MAILFLEET_WATCH_INTERVAL_MS: '3600000' });
    try {
      writeConfig(dir, { ...input, trustedNetworks: [{ cidrs: ['127.0.0.1/32'], domains: ['a.test', 'b.test'] }] });
      child.child.kill('SIGHUP');
      await waitUntil('reload log line', () => /"reason":"SIGHUP".*"config reloaded"/.test(child.output()));
      const { talk } = await SmtpTalk.connect(input.listeners[0]!.port);
      await talk.cmd('EHLO c.test');
      expect((await talk.cmd('MAIL FROM:<x@b.test>')).code).toBe(250);
      talk.close();
    } finally {
      child.child.kill('SIGTERM');
      await child.exited;
    }
  });
});

describe('certificate renewal', () => {
  it('serves a renewed certificate on STARTTLS and implicit TLS without a restart', async () => {
    const tls = await import('node:tls');
    const { testCert } = await import('../support/certs.ts');
    const cfg = YAML.parse(fs.readFileSync(w.relay.configFile, 'utf8')) as { tls: { certFile: string; keyFile: string } };
    // Copy the current pair to files of this test, so renewing them touches nothing shared.
    const certFile = `${w.relay.dir}/tls.crt`;
    const keyFile = `${w.relay.dir}/tls.key`;
    fs.copyFileSync(cfg.tls.certFile, certFile);
    fs.copyFileSync(cfg.tls.keyFile, keyFile);
    editConfig((c) => { c.tls = { certFile, keyFile }; c.limits = { maxMessageSize: 200_000, maxRecipients: 5 }; });
    expect(await w.relay.relay.reload('test')).toBe(true);
    const served = (port: number, implicit: boolean) => new Promise<string>((resolve, reject) => {
      if (implicit) {
        const s = tls.connect({ port, host: '127.0.0.1', rejectUnauthorized: false }, () => { resolve(s.getPeerCertificate().fingerprint256); s.destroy(); });
        s.on('error', reject);
        return;
      }
      SmtpTalk.connect(port).then(async ({ talk }) => {
        await talk.cmd('EHLO c.test');
        await talk.starttls();
        const sock = (talk as unknown as { socket: import('node:tls').TLSSocket }).socket;
        resolve(sock.getPeerCertificate().fingerprint256);
        talk.close();
      }, reject);
    });
    const before = await served(w.relay.port('submission'), false);
    expect(await served(w.relay.port('smtps'), true)).toBe(before);
    const renewed = testCert(['localhost', 'renewed.example.test']);
    fs.writeFileSync(keyFile, renewed.key);
    fs.writeFileSync(certFile, renewed.cert);
    await waitUntil('the renewed certificate on STARTTLS', async () => (await served(w.relay.port('submission'), false)) !== before);
    expect(await served(w.relay.port('smtps'), true)).not.toBe(before);
    expect(fs.readFileSync(w.relay.logFile, 'utf8')).toContain('TLS certificate reloaded');
  });
});
