// Crash safety: thousands of messages in flight, kill -9 of the relay process mid-stream,
// restart on the same queue, and every message that got a 250 reaches the destination.
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import nodemailer from 'nodemailer';
import { startSink, type Sink } from '../support/sink.ts';
import { startDnsServer, type TestDnsServer } from '../support/dns-server.ts';
import { spawnRelay, tempDir, writeConfig, type ChildRelay } from '../support/relay-harness.ts';
import { freePort } from '../support/ports.ts';

const TOTAL = 3000;
const KILL_AFTER = 800;

let sink: Sink | undefined;
let dns: TestDnsServer | undefined;
let relay: ChildRelay | undefined;
afterAll(async () => {
  relay?.child.kill('SIGKILL');
  await sink?.close();
  await dns?.close();
});

describe('crash safety', () => {
  it('loses no acknowledged message across kill -9 and restart', async () => {
    sink = await startSink({ host: '127.0.0.2' });
    dns = await startDnsServer({ 'dest.test': { MX: [{ preference: 10, exchange: 'mx.dest.test' }] }, 'mx.dest.test': { A: ['127.0.0.2'] } });
    const dir = tempDir();
    const port = await freePort();
    const configFile = writeConfig(dir, {
      hostname: 'relay.test',
      dataDir: path.join(dir, 'data'),
      listeners: [{ name: 'plain', host: '127.0.0.1', port, mode: 'plain' }],
      trustedNetworks: [{ cidrs: ['127.0.0.0/8'], domains: ['example.test'] }],
      domains: [{ domain: 'example.test' }],
      delivery: { mode: 'mx', mx: { port: sink.port, dnsServers: [dns.address] } },
      queue: { retrySchedule: ['1s'] },
      http: { host: '127.0.0.1', port: 0 },
    });
    relay = await spawnRelay(configFile);
    const client = nodemailer.createTransport({ host: '127.0.0.1', port, pool: true, maxConnections: 20, maxMessages: Infinity, ignoreTLS: true });
    const acked = new Set<string>();
    let killed = false;
    const body = 'x'.repeat(4000);
    await Promise.allSettled(Array.from({ length: TOTAL }, async (_, i) => {
      const id = `msg-${i}`;
      try {
        await client.sendMail({ from: 'app@example.test', to: 'bob@dest.test', subject: id, text: body, envelope: { from: 'app@example.test', to: ['bob@dest.test'] } });
        acked.add(id);
        if (!killed && acked.size >= KILL_AFTER) {
          killed = true;
          relay!.child.kill('SIGKILL');
        }
      } catch { /* refused or cut by the kill: the client still owns it */ }
    }));
    client.close();
    expect(killed).toBe(true);
    await relay.exited;
    const deliveredBeforeRestart = new Set(sink.messages.map((m) => /Subject: (msg-\d+)/.exec(m.data!.toString())?.[1]));
    relay = await spawnRelay(configFile);
    const missing = () => [...acked].filter((id) => !sinkHas(id));
    const sinkHas = (id: string) => sink!.messages.some((m) => m.data!.includes(`Subject: ${id}\r\n`));
    const deadline = Date.now() + 60_000;
    while (missing().length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
    expect(missing(), `acked ${acked.size}, delivered before restart ${deliveredBeforeRestart.size}`).toEqual([]);
    expect(relay.output()).toMatch(/"recovered":\d+/);
    relay.child.kill('SIGTERM');
    expect(await relay.exited).toBe(0);
  }, 180_000); // two relay starts and a 60 s delivery deadline do not fit the default 60 s on a loaded machine
});
