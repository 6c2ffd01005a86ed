// Shared by the relay benchmarks: Postfix's smtp-source and smtp-sink as the load and the
// destination, a relay started as a real process, and bounded waits.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';

export const root = path.resolve(import.meta.dirname, '..');

export function need(tool: string): string {
  for (const dir of ['/usr/sbin', '/usr/bin', '/usr/local/bin']) if (fs.existsSync(path.join(dir, tool))) return path.join(dir, tool);
  throw new Error(`${tool} is missing: run .ci/install-deps (Debian package postfix)`);
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** smtp-sink with -c: parses its running counter of received messages. */
export function startSmtpSink(host: string, port: number): { count: () => number; stop: () => void } {
  const child = spawn(need('smtp-sink'), ['-c', '-u', 'nobody', `${host}:${port}`, '1000'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let last = 0;
  child.stdout.on('data', (d: Buffer) => {
    const m = [...d.toString().matchAll(/mesg=(\d+)/g)].at(-1);
    if (m) last = Number(m[1]);
  });
  return { count: () => last, stop: () => child.kill('SIGKILL') };
}

export async function waitFor(what: string, check: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

/** smtp-source: `count` messages of `size` bytes over `sessions` sessions; resolves with the ms it took. */
export function runSource(port: number, host: string, count: number, opts: { sessions: number; size: number; to?: string }): Promise<number> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const extra = (process.env.BENCH_SOURCE_ARGS ?? '').split(' ').filter(Boolean);
    const child = spawn(need('smtp-source'), [...extra, '-s', String(opts.sessions), '-l', String(opts.size), '-m', String(count), '-f', 'bench@example.test', '-t', opts.to ?? 'sink@dest.test', `${host}:${port}`], { stdio: 'inherit' });
    child.on('exit', (code) => (code === 0 ? resolve(performance.now() - started) : reject(new Error(`smtp-source exited ${code}`))));
  });
}

/** `mailfleet relay` as a real process with this config; resolves once /readyz answers. */
export async function spawnRelayProc(dir: string, config: Record<string, unknown> & { http: { port: number } }, logLevel = 'warn'): Promise<ChildProcess> {
  const file = path.join(dir, 'relay.yaml');
  fs.writeFileSync(file, YAML.stringify(config));
  const child = spawn(process.execPath, [path.join(root, 'bin/mailfleet.ts'), 'relay', '--config', file], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, MAILFLEET_LOG_LEVEL: logLevel } });
  child.stdout!.resume();
  // generous: on a loaded machine a cold start of Node with the TypeScript sources is slow
  const deadline = Date.now() + 90_000;
  for (;;) {
    const ok = await fetch(`http://127.0.0.1:${config.http.port}/readyz`).then((r) => r.ok, () => false);
    if (ok) return child;
    if (child.exitCode !== null) throw new Error(`relay exited with ${child.exitCode}`);
    if (Date.now() > deadline) throw new Error('relay did not become ready');
    await sleep(50);
  }
}
