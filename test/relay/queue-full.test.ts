// A full disk while a message is written: the kernel first returns a short write (as many
// bytes as fit) and only the next write fails. The relay must answer 451 and leave nothing
// in the queue, never a 250 for a truncated file. RLIMIT_FSIZE (prlimit) stands in for the
// full disk: a write that crosses it is cut short exactly like one that hits ENOSPC.
import fs from 'node:fs';
import path from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import nodemailer from 'nodemailer';
import { startSink, type Sink } from '../support/sink.ts';
import { startDnsServer, type TestDnsServer } from '../support/dns-server.ts';
import { repoRoot, tempDir, writeConfig } from '../support/relay-harness.ts';
import { freePort } from '../support/ports.ts';
import { haveTools } from '../support/tools.ts';

const FILE_LIMIT = 64 * 1024;

let sink: Sink | undefined;
let dns: TestDnsServer | undefined;
let child: ChildProcess | undefined;
afterAll(async () => {
  child?.kill('SIGKILL');
  await sink?.close();
  await dns?.close();
});

async function spawnLimited(configFile: string): Promise<() => string> {
  child = spawn('prlimit', [`--fsize=${FILE_LIMIT}`, process.execPath, path.join(repoRoot, 'bin/mailfleet.ts'), 'relay', '--config', configFile], {
    env: { ...process.env, MAILFLEET_LOG_LEVEL: 'info' }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
  child.stderr!.on('data', (d: Buffer) => { out += d.toString(); });
  const deadline = Date.now() + 30_000;
  while (!out.includes('"relay ready"')) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`relay did not start:\n${out}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return () => out;
}

describe.runIf(haveTools('relay', ['prlimit']))('queue write on a full disk', () => {
  it('answers 451 to a message cut short by the disk and keeps serving', async () => {
    sink = await startSink({ host: '127.0.0.2' });
    dns = await startDnsServer({ 'dest.test': { MX: [{ preference: 10, exchange: 'mx.dest.test' }] }, 'mx.dest.test': { A: ['127.0.0.2'] } });
    const dir = tempDir();
    const port = await freePort();
    const dataDir = path.join(dir, 'data');
    const configFile = writeConfig(dir, {
      hostname: 'relay.test', dataDir,
      listeners: [{ name: 'plain', host: '127.0.0.1', port, mode: 'plain' }],
      trustedNetworks: [{ cidrs: ['127.0.0.0/8'], domains: ['example.test'] }],
      domains: [{ domain: 'example.test' }],
      limits: { maxMessageSize: 1_000_000 },
      delivery: { mode: 'mx', mx: { port: sink.port, dnsServers: [dns.address] } },
      queue: { retrySchedule: ['1s'] },
      http: { host: '127.0.0.1', port: 0 },
    });
    const output = await spawnLimited(configFile);
    const client = nodemailer.createTransport({ host: '127.0.0.1', port, ignoreTLS: true });
    const envelope = { from: 'app@example.test', to: ['bob@dest.test'] };

    // Under the size limit, over what the "disk" holds: the write comes back short.
    const big = client.sendMail({ from: envelope.from, to: envelope.to, subject: 'big', text: 'x'.repeat(100_000), envelope });
    await expect(big).rejects.toMatchObject({ responseCode: 451 });
    expect(fs.readdirSync(path.join(dataDir, 'queue', 'msg'))).toEqual([]);
    expect(fs.readdirSync(path.join(dataDir, 'queue', 'tmp'))).toEqual([]);

    // The relay goes on: a message that fits is queued and delivered.
    const small = await client.sendMail({ from: envelope.from, to: envelope.to, subject: 'small', text: 'fits', envelope });
    expect(small.response).toMatch(/^250 /);
    const got = await sink.waitFor(1);
    expect(got).toHaveLength(1);
    expect(got[0]!.data!.toString()).toContain('Subject: small');
    expect(output()).toContain('queue write failed');
  });
});
