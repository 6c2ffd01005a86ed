// `npm run bench:failover`: the two delivery faults of issue 15, measured on loopback with
// the relay as a real process.
//  1. Failover: smtp-source → relay (smarthost mode) → smtp-sink, once with a healthy
//     primary and once with a primary that accepts TCP and never greets (default connect
//     and greeting timeouts). Prints end-to-end msg/s of both and their ratio.
//  2. Shutdown: a backlog queued for a smarthost that takes 5 s per message (and one that
//     never answers), an idle SMTP session open, SIGTERM: seconds until the process exits,
//     against drainTimeout; then a restart against a healthy sink counts what arrives.
// Numbers go to stdout (and BENCHMARKS.md by hand); nothing here asserts a timing.
// Bounded: fixed message counts, every wait has a deadline, loopback only.
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { freePort } from '../test/support/ports.ts';
import { startSink } from '../test/support/sink.ts';
import { root, runSource, sleep, spawnRelayProc, startSmtpSink, waitFor } from './support.ts';

const MESSAGES = Number(process.env.BENCH_MESSAGES ?? 2000);
const SESSIONS = Number(process.env.BENCH_SESSIONS ?? 20);
const BACKLOG = Number(process.env.BENCH_BACKLOG ?? 300);
const SIZE = 4096;
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 2);

/** Accepts TCP and never says a word. */
async function hungServer(host: string, port: number): Promise<{ close: () => void; connections: () => number }> {
  const sockets = new Set<net.Socket>();
  let n = 0;
  const server = net.createServer((s) => { n++; sockets.add(s); s.on('error', () => {}); s.on('close', () => sockets.delete(s)); });
  await new Promise<void>((r) => server.listen(port, host, r));
  return { connections: () => n, close: () => { for (const s of sockets) s.destroy(); server.close(); } };
}

function relayConfig(dir: string, port: number, httpPort: number, smarthosts: object[], extra: Record<string, unknown> = {}) {
  return {
    hostname: 'relay.bench', dataDir: path.join(dir, 'data'),
    listeners: [{ name: 'plain', host: '127.0.0.1', port, mode: 'plain' }],
    trustedNetworks: [{ cidrs: ['127.0.0.0/8'], domains: ['example.test'] }],
    recipientChecks: { dns: false },
    delivery: { mode: 'smarthost', smarthosts, maxConnectionsPerDestination: 20 },
    http: { host: '127.0.0.1', port: httpPort },
    ...extra,
  };
}

async function failoverRun(primary: 'healthy' | 'hung'): Promise<Record<string, unknown>> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mailfleet-bench-'));
  const [pPort, sPort, port, httpPort] = [await freePort('127.0.0.11'), await freePort('127.0.0.12'), await freePort(), await freePort()];
  const secondary = startSmtpSink('127.0.0.12', sPort);
  const healthy = primary === 'healthy' ? startSmtpSink('127.0.0.11', pPort) : undefined;
  const hung = primary === 'hung' ? await hungServer('127.0.0.11', pPort) : undefined;
  await sleep(300);
  const plain = { tls: 'none', requireTls: false };
  const child = await spawnRelayProc(dir, relayConfig(dir, port, httpPort, [
    { name: 'primary', host: '127.0.0.11', port: pPort, ...plain },
    { name: 'secondary', host: '127.0.0.12', port: sPort, ...plain },
  ]));
  const delivered = () => (healthy?.count() ?? 0) + secondary.count();
  const started = performance.now();
  await runSource(port, '127.0.0.1', MESSAGES, { sessions: SESSIONS, size: SIZE });
  await waitFor('all messages delivered', () => delivered() >= MESSAGES, 600_000);
  const seconds = (performance.now() - started) / 1000;
  const row = {
    run: `${primary} primary`, messages: MESSAGES, seconds: +seconds.toFixed(2), msgPerSec: Math.round(MESSAGES / seconds),
    viaPrimary: healthy?.count() ?? 0, viaSecondary: secondary.count(), hungPrimaryConnections: hung?.connections() ?? '-',
    loadAvg: os.loadavg()[0]!.toFixed(1),
  };
  child.kill('SIGTERM');
  await new Promise((r) => child.once('exit', r));
  healthy?.stop(); hung?.close(); secondary.stop();
  fs.rmSync(dir, { recursive: true, force: true });
  return row;
}

async function shutdownRun(label: string, dataDelayMs: number, drainTimeoutS: number): Promise<Record<string, unknown>> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mailfleet-bench-'));
  const slow = await startSink({ host: '127.0.0.13', tls: 'none', keepData: false, dataDelayMs });
  const [port, httpPort] = [await freePort(), await freePort()];
  const child = await spawnRelayProc(dir, relayConfig(dir, port, httpPort, [{ host: '127.0.0.13', port: slow.port, tls: 'none', requireTls: false }], { limits: { drainTimeout: `${drainTimeoutS}s` } }));
  await runSource(port, '127.0.0.1', BACKLOG, { sessions: 10, size: SIZE });
  await waitFor('deliveries in flight', () => slow.connections() > 0, 30_000);
  await sleep(1000);
  // one idle session: connected, greeted, EHLO, then nothing
  const idle = net.connect(port, '127.0.0.1');
  idle.on('error', () => {});
  let idleReply = '';
  let t0 = 0;
  let idleClosedS = NaN;
  idle.on('data', (d) => { idleReply += d.toString(); });
  idle.on('close', () => { idleClosedS = (performance.now() - t0) / 1000; });
  await waitFor('the greeting', () => idleReply.startsWith('220'), 30_000);
  idle.write('EHLO idle.bench\r\n');
  await waitFor('the EHLO reply', () => /^250 /m.test(idleReply), 30_000);
  t0 = performance.now();
  child.kill('SIGTERM');
  await new Promise((r) => child.once('exit', r));
  const exitS = (performance.now() - t0) / 1000;
  // answered (250) before the exit; a reply after it went to a closed connection
  const answered = slow.messages.length;
  await slow.close();
  // the restart: same data dir, a healthy sink as the smarthost
  const [port2, httpPort2, goodPort] = [await freePort(), await freePort(), await freePort('127.0.0.15')];
  const sink = startSmtpSink('127.0.0.15', goodPort);
  await sleep(300);
  const again = await spawnRelayProc(dir, relayConfig(dir, port2, httpPort2, [{ host: '127.0.0.15', port: goodPort, tls: 'none', requireTls: false }]));
  const expected = BACKLOG - answered;
  await waitFor('the backlog after the restart', () => sink.count() >= expected, 120_000).catch(() => {});
  await sleep(500);
  const row = {
    run: label, backlog: BACKLOG, drainTimeoutS, exitAfterSigtermS: +exitS.toFixed(2), idleSessionClosedS: +idleClosedS.toFixed(2),
    idleGot421: /^421 4\.3\.2/m.test(idleReply), answeredBeforeExit: answered, deliveredAfterRestart: sink.count(), lost: Math.max(0, expected - sink.count()),
  };
  again.kill('SIGTERM');
  await new Promise((r) => again.once('exit', r));
  sink.stop();
  fs.rmSync(dir, { recursive: true, force: true });
  return row;
}

async function main(): Promise<void> {
  console.log(`# failover and shutdown benchmark: ${os.cpus().length} cores, Node ${process.version}`);
  const rows: Record<string, unknown>[] = [];
  // Rounds alternate which variant goes first, so a trend in machine load hits both alike.
  const rates = { healthy: [] as number[], hung: [] as number[] };
  for (let round = 0; round < ROUNDS; round++) {
    for (const primary of (round % 2 ? ['hung', 'healthy'] : ['healthy', 'hung']) as ('healthy' | 'hung')[]) {
      const row = await failoverRun(primary);
      rates[primary].push(Number(row.msgPerSec));
      rows.push(row);
      console.log(JSON.stringify(row));
    }
  }
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  rows.push({ run: 'hung / healthy (mean)', msgPerSec: `${((mean(rates.hung) / mean(rates.healthy)) * 100).toFixed(1)}%` });
  if (process.env.BENCH_SHUTDOWN !== '0') for (const [label, delay] of [['smarthost 5 s per message', 5000], ['smarthost never answers', 3_600_000]] as const) {
    const row = await shutdownRun(label, delay, 10);
    rows.push(row);
    console.log(JSON.stringify(row));
  }
  console.table(rows);
  console.log(`git ${execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root, encoding: 'utf8' }).trim()}`);
}

await main();
