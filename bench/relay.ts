// `npm run bench:relay`: Postfix's smtp-source → relay → Postfix's smtp-sink on loopback,
// compared with smtp-source → smtp-sink directly in the same run. Variants: no DKIM,
// RSA-2048, Ed25519. Then a 25 MB message through the relay with RSS sampled. Numbers go
// to stdout (and BENCHMARKS.md by hand); nothing here asserts a timing.
// Bounded: fixed message counts, every wait has a deadline, loopback only.
import { execFileSync, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import nodemailer from 'nodemailer';
import { startDnsServer } from '../test/support/dns-server.ts';
import { freePort } from '../test/support/ports.ts';

const MESSAGES = Number(process.env.BENCH_MESSAGES ?? 5000);
const SESSIONS = Number(process.env.BENCH_SESSIONS ?? 20);
const SIZE = 4096;
import { root, runSource as source, sleep, spawnRelayProc, startSmtpSink, waitFor } from './support.ts';

const runSource = (port: number, host: string, count: number) => source(port, host, count, { sessions: SESSIONS, size: SIZE });

function peakRssMb(pid: number): number {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024;
}
/** CPU time (user + system) a process has used, in ms. */
function cpuMs(pid: number): number {
  const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100; // clock ticks of 10 ms
}
function rssMb(pid: number): number {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024;
}

function histogramQuantile(metrics: string, name: string, q: number): number {
  const buckets: Array<[number, number]> = [];
  for (const line of metrics.split('\n')) {
    const m = new RegExp(`^${name}_bucket\\{le="([^"]+)"\\} (\\S+)`).exec(line);
    if (m) buckets.push([m[1] === '+Inf' ? Infinity : Number(m[1]), Number(m[2])]);
  }
  const total = buckets.at(-1)?.[1] ?? 0;
  let prevLe = 0;
  let prevCount = 0;
  for (const [le, count] of buckets) {
    if (count >= q * total) {
      if (le === Infinity) return prevLe;
      // linear interpolation inside the bucket, as Prometheus' histogram_quantile does
      return prevLe + (le - prevLe) * ((q * total - prevCount) / Math.max(count - prevCount, 1));
    }
    prevLe = le;
    prevCount = count;
  }
  return NaN;
}

interface RelayProc { child: ChildProcess; port: number; httpPort: number; dir: string }

async function startRelayProc(dir: string, sinkPort: number, dnsAddress: string, dkim?: 'rsa' | 'ed25519'): Promise<RelayProc> {
  const [port, httpPort] = [await freePort(), await freePort()];
  const domain: Record<string, unknown> = { domain: 'example.test' };
  if (dkim) {
    const keyFile = path.join(dir, `${dkim}.pem`);
    const pair = dkim === 'rsa' ? generateKeyPairSync('rsa', { modulusLength: 2048 }) : generateKeyPairSync('ed25519');
    fs.writeFileSync(keyFile, pair.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string);
    domain.dkim = { keys: [{ selector: 'bench', algorithm: dkim === 'rsa' ? 'rsa-sha256' : 'ed25519-sha256', privateKeyFile: keyFile }] };
  }
  const config = {
    hostname: 'relay.bench', dataDir: path.join(dir, 'data'),
    listeners: [{ name: 'plain', host: '127.0.0.1', port, mode: 'plain' }],
    trustedNetworks: [{ cidrs: ['127.0.0.0/8'], domains: ['example.test'] }],
    domains: [domain],
    limits: { maxMessageSize: 30 * 1024 * 1024 },
    delivery: { mode: 'mx', mx: { port: sinkPort, dnsServers: [dnsAddress] }, maxConnectionsPerDestination: 20 },
    http: { host: '127.0.0.1', port: httpPort },
    outbound: { allowAddresses: ['127.0.0.0/8'] }, // the sinks are on loopback
  };
  const child = await spawnRelayProc(dir, config);
  return { child, port, httpPort, dir };
}

async function stopRelay(r: RelayProc): Promise<void> {
  r.child.kill('SIGTERM');
  await new Promise((resolve) => r.child.once('exit', resolve));
}

async function main(): Promise<void> {
  const dns = await startDnsServer({ 'dest.test': { MX: [{ preference: 10, exchange: 'mx.dest.test' }] }, 'mx.dest.test': { A: ['127.0.0.2'] } });
  const results: Record<string, unknown>[] = [];
  console.log(`# relay benchmark: ${MESSAGES} messages of ${SIZE} B, ${SESSIONS} sessions, ${os.cpus().length} cores, Node ${process.version}`);

  // Raw rate: smtp-source straight into smtp-sink.
  const rawPort = await freePort('127.0.0.2');
  const rawSink = startSmtpSink('127.0.0.2', rawPort);
  await sleep(300);
  const rawMs = await runSource(rawPort, '127.0.0.2', MESSAGES);
  await waitFor('raw sink count', () => rawSink.count() >= MESSAGES, 60_000);
  rawSink.stop();
  const rawRate = MESSAGES / (rawMs / 1000);
  console.log(`raw smtp-source → smtp-sink: ${rawRate.toFixed(0)} msg/s`);

  const variants = (process.env.BENCH_VARIANTS ?? 'none,rsa,ed25519').split(',').map((v) => (v === 'none' ? undefined : v as 'rsa' | 'ed25519'));
  for (const variant of variants) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mailfleet-bench-'));
    const sinkPort = await freePort('127.0.0.2');
    const sink = startSmtpSink('127.0.0.2', sinkPort);
    const relay = await startRelayProc(dir, sinkPort, dns.address, variant);
    await sleep(200);
    const cpuBefore = cpuMs(relay.child.pid!);
    const started = performance.now();
    const intakeMs = await runSource(relay.port, '127.0.0.1', MESSAGES);
    await waitFor('all messages at the sink', () => sink.count() >= MESSAGES, 300_000);
    const endToEndMs = performance.now() - started;
    const metrics = await (await fetch(`http://127.0.0.1:${relay.httpPort}/metrics`)).text();
    const row = {
      variant: variant ? `DKIM ${variant === 'rsa' ? 'RSA-2048' : 'Ed25519'}` : 'no DKIM',
      endToEndMsgPerSec: Math.round(MESSAGES / (endToEndMs / 1000)),
      intakeMsgPerSec: Math.round(MESSAGES / (intakeMs / 1000)),
      ratioToRaw: `${((MESSAGES / (endToEndMs / 1000) / rawRate) * 100).toFixed(1)}%`,
      commitP50ms: +(histogramQuantile(metrics, 'mailfleet_intake_commit_seconds', 0.5) * 1000).toFixed(2),
      commitP99ms: +(histogramQuantile(metrics, 'mailfleet_intake_commit_seconds', 0.99) * 1000).toFixed(2),
      peakRssMb: Math.round(peakRssMb(relay.child.pid!)),
      relayCpuMsPerMsg: +((cpuMs(relay.child.pid!) - cpuBefore) / MESSAGES).toFixed(2),
      loadAvg: os.loadavg()[0]!.toFixed(1),
    };
    results.push(row);
    console.log(JSON.stringify(row));
    await stopRelay(relay);
    sink.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }

  // A 25 MB message (RSA-signed) several times: RSS must stay flat, not grow by 25 MB each.
  if (process.env.BENCH_LARGE !== '0') {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mailfleet-bench-'));
    const sinkPort = await freePort('127.0.0.2');
    const sink = startSmtpSink('127.0.0.2', sinkPort);
    const relay = await startRelayProc(dir, sinkPort, dns.address, 'rsa');
    const pid = relay.child.pid!;
    const before = rssMb(pid);
    const big = Buffer.alloc(25 * 1024 * 1024 - 4096, 'abcdefghij0123456789 '.repeat(3) + '\r\n');
    const client = nodemailer.createTransport({ host: '127.0.0.1', port: relay.port, ignoreTLS: true });
    const samples: number[] = [];
    const sampler = setInterval(() => samples.push(rssMb(pid)), 20);
    const t0 = performance.now();
    for (let i = 0; i < 4; i++) {
      await client.sendMail({ envelope: { from: 'bench@example.test', to: ['sink@dest.test'] }, raw: Buffer.concat([Buffer.from(`From: bench@example.test\r\nTo: sink@dest.test\r\nSubject: big ${i}\r\n\r\n`), big]) });
    }
    await waitFor('big messages at the sink', () => sink.count() >= 4, 120_000);
    clearInterval(sampler);
    const row = {
      variant: '25 MB × 4, DKIM RSA-2048',
      seconds: +((performance.now() - t0) / 1000).toFixed(1),
      rssBeforeMb: Math.round(before),
      rssMaxDuringMb: Math.round(Math.max(...samples)),
      peakRssMb: Math.round(peakRssMb(pid)),
    };
    results.push(row);
    console.log(JSON.stringify(row));
    await stopRelay(relay);
    sink.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
  await dns.close();
  console.table(results);
  console.log(`git ${execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root, encoding: 'utf8' }).trim()}`);
}

await main();
