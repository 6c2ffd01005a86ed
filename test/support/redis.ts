// A throwaway redis-server for tests: free loopback port, no persistence, temp dir,
// killed afterwards. Callers gate on haveTools('redis', ['redis-server']) first.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TestRedis {
  host: string;
  port: number;
  url: string;
  /** Stops the server (SIGTERM, SIGKILL after 5 s) and waits for its exit. Safe to call twice. */
  stop(): Promise<void>;
  /** Starts it again on the same port (e.g. after stop() in an outage test). */
  restart(): Promise<void>;
  /** SIGSTOP / SIGCONT: a server that accepts nothing and answers nothing (a hung Redis). */
  pause(): void;
  resume(): void;
  /** stop() and remove the temp dir; for afterAll. */
  destroy(): Promise<void>;
}

async function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, host, () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

async function waitForPort(host: string, port: number, proc: ChildProcess, log: () => string): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (let i = 0; Date.now() < deadline; i++) {
    if (proc.exitCode !== null) throw new Error(`redis-server exited with ${proc.exitCode}: ${log()}`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect(port, host);
      s.once('connect', () => {
        s.end();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, Math.min(20 * (i + 1), 200)));
  }
  throw new Error(`redis-server did not listen on ${host}:${port} within 10 s: ${log()}`);
}

export async function startRedis(host = '127.0.0.1'): Promise<TestRedis> {
  const dir = mkdtempSync(join(tmpdir(), 'mailfleet-redis-'));
  const port = await freePort(host);
  let proc: ChildProcess | undefined;
  let output = '';

  const start = async () => {
    output = '';
    const p = spawn(
      'redis-server',
      ['--port', String(port), '--bind', host, '--save', '', '--appendonly', 'no', '--dir', dir, '--protected-mode', 'no'],
      { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    proc = p;
    const keep = (b: Buffer) => {
      output = (output + b.toString()).slice(-4000);
    };
    p.stdout?.on('data', keep);
    p.stderr?.on('data', keep);
    await waitForPort(host, port, p, () => output);
  };

  const stop = async () => {
    const p = proc;
    proc = undefined;
    if (!p || p.exitCode !== null) return;
    const exited = new Promise<void>((r) => p.once('exit', () => r()));
    p.kill('SIGCONT'); // in case a test left it paused
    p.kill('SIGTERM');
    const timer = setTimeout(() => p.kill('SIGKILL'), 5_000);
    await exited;
    clearTimeout(timer);
  };

  await start();
  return {
    host,
    port,
    url: `redis://${host}:${port}`,
    stop: async () => {
      await stop();
    },
    restart: async () => {
      await stop();
      await start();
    },
    pause: () => {
      proc?.kill('SIGSTOP');
    },
    resume: () => {
      proc?.kill('SIGCONT');
    },
    destroy: async () => {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
