// Idle memory of a relay run from the compiled build (dist/, `npm run build` first) against
// the same relay run from the TypeScript sources through Node's type stripping. Each run
// starts a relay on loopback (capture delivery, self-signed TLS, one DKIM domain), waits for
// "relay ready" and a few quiet seconds, then reads VmRSS and VmHWM from /proc. Runs
// alternate between the two so load on the machine falls on both alike.
//   npm run build && node bench/startup-rss.ts [runs per variant, default 5]
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';

const root = path.resolve(import.meta.dirname, '..');
const runs = Number(process.argv[2] ?? 5);
const SETTLE_MS = 5_000;
const variants = { compiled: path.join(root, 'dist/bin/mailfleet.js'), 'type stripping': path.join(root, 'bin/mailfleet.ts') };
if (!fs.existsSync(variants.compiled)) throw new Error('no dist/: run npm run build first');

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mailfleet-rss-'));
const key = path.join(dir, 'dkim.pem');
fs.writeFileSync(key, crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }));

function kb(status: string, field: string): number {
  return Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1]);
}

async function measure(entry: string, i: number): Promise<{ rss: number; hwm: number }> {
  const dataDir = path.join(dir, `data-${i}`);
  const config = path.join(dir, `relay-${i}.yaml`);
  fs.writeFileSync(config, YAML.stringify({
    hostname: 'relay.test', dataDir,
    listeners: [{ name: 'submission', host: '127.0.0.1', port: 0, mode: 'starttls' }],
    tls: { selfSigned: true },
    domains: [{ domain: 'example.test', dkim: { keys: [{ selector: 's1', algorithm: 'rsa-sha256', privateKeyFile: key }] } }],
    http: { host: '127.0.0.1', port: 0 },
    recipientChecks: { dns: false },
    delivery: { mode: 'capture' },
  }));
  const child = spawn(process.execPath, [entry, 'relay', '--config', config], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
  const exited = new Promise((r) => child.on('exit', r));
  const deadline = Date.now() + 120_000;
  while (!out.includes('"relay ready"')) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`relay did not start:\n${out}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  await new Promise((r) => setTimeout(r, SETTLE_MS));
  const status = fs.readFileSync(`/proc/${child.pid}/status`, 'utf8');
  child.kill('SIGTERM');
  await exited;
  return { rss: kb(status, 'VmRSS') / 1024, hwm: kb(status, 'VmHWM') / 1024 };
}

const results: Record<string, { rss: number; hwm: number }[]> = { compiled: [], 'type stripping': [] };
for (let i = 0; i < runs; i++) {
  for (const [name, entry] of Object.entries(variants)) results[name]!.push(await measure(entry, i * 2 + (name === 'compiled' ? 0 : 1)));
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
console.log(`load average ${os.loadavg().map((l) => l.toFixed(1)).join(' ')}; ${runs} runs each; MiB`);
console.log('| variant | idle RSS median (min–max) | peak RSS (VmHWM) median |');
console.log('|---|---|---|');
for (const [name, r] of Object.entries(results)) {
  const rss = r.map((x) => x.rss);
  console.log(`| ${name} | ${median(rss).toFixed(1)} (${Math.min(...rss).toFixed(1)}–${Math.max(...rss).toFixed(1)}) | ${median(r.map((x) => x.hwm)).toFixed(1)} |`);
}
fs.rmSync(dir, { recursive: true, force: true });
