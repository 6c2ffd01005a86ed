// SIGTERM on the real process: readiness off, new sessions refused, an open session may
// finish its message, the process exits 0 and the message is not lost.
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { startSink, type Sink } from '../support/sink.ts';
import { startDnsServer, type TestDnsServer } from '../support/dns-server.ts';
import { spawnRelay, tempDir, writeConfig, type ChildRelay } from '../support/relay-harness.ts';
import { SmtpTalk } from '../support/smtp-talk.ts';
import { freePort } from '../support/ports.ts';

let sink: Sink | undefined;
let dns: TestDnsServer | undefined;
let relay: ChildRelay | undefined;
afterAll(async () => { relay?.child.kill('SIGKILL'); await sink?.close(); await dns?.close(); });

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
    talk.write('Subject: in flight\r\n\r\nfinish me\r\n.\r\n');
    expect((await talk.read()).code).toBe(250);
    await talk.cmd('QUIT');
    talk.close();
    expect(await relay.exited).toBe(0);
    // Not lost: a restart delivers it.
    relay = await spawnRelay(configFile);
    await sink.waitFor(1, 20_000);
    expect(sink.messages[0]!.data!.toString()).toContain('Subject: in flight');
  });
});
