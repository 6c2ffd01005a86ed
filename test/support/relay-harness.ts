// Starts a real relay for a test: in this process (fast, for most tests) or as a child
// process running the real CLI (for kill -9 and signal tests). Config is written to a
// temp dir as YAML so reload tests can edit it.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { pino } from 'pino';
import { Relay, type RelayOptions } from '../../relay/relay.ts';
import { loadConfigFile } from '../../relay/config/load.ts';
import type { RelayConfigInput } from '../../relay/config/schema.ts';
import { eventually } from './eventually.ts';
import { loopbackSinksConfig } from './outbound.ts';

export const repoRoot = path.resolve(import.meta.dirname, '../..');

export function tempDir(prefix = 'mailfleet-test-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

export function writeConfig(dir: string, input: RelayConfigInput): string {
  const file = path.join(dir, 'relay.yaml');
  fs.writeFileSync(file, YAML.stringify({ outbound: loopbackSinksConfig, ...input }));
  return file;
}

export interface TestRelay {
  relay: Relay;
  dir: string;
  configFile: string;
  port(listener: string): number;
  httpPort: number;
  logFile: string;
  stop(): Promise<void>;
}

export async function startRelay(input: RelayConfigInput, opts: Partial<RelayOptions> & { dir?: string } = {}): Promise<TestRelay> {
  const dir = opts.dir ?? tempDir();
  const configFile = writeConfig(dir, { dataDir: path.join(dir, 'data'), http: { host: '127.0.0.1', port: 0 }, ...input });
  const logFile = path.join(dir, 'relay.log');
  const log = pino({ level: 'debug' }, pino.destination({ dest: logFile, sync: true }));
  const relay = new Relay({ config: loadConfigFile(configFile), configFile, log, watchIntervalMs: 100, ...opts });
  await relay.start();
  return {
    relay, dir, configFile, logFile,
    port: (name) => relay.listenerAddresses()[name]!.port,
    httpPort: relay.httpAddress().port,
    stop: () => relay.stop(),
  };
}

export interface ChildRelay {
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
}

/** Runs `mailfleet relay --config FILE` as a real process; resolves once it is ready. */
export async function spawnRelay(configFile: string, env: NodeJS.ProcessEnv = {}): Promise<ChildRelay> {
  const child = spawn(process.execPath, [path.join(repoRoot, 'bin/mailfleet.ts'), 'relay', '--config', configFile], {
    env: { ...process.env, MAILFLEET_LOG_LEVEL: 'info', ...env }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
  child.stderr!.on('data', (d: Buffer) => { out += d.toString(); });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const deadline = Date.now() + 30_000;
  while (!out.includes('"relay ready"')) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`relay did not start:\n${out}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return { child, output: () => out, exited };
}

export async function waitUntil(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 20_000, everyMs = 50): Promise<void> {
  await eventually(what, check, timeoutMs, { everyMs });
}

export async function scrape(httpPort: number): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${httpPort}/metrics`);
  return res.text();
}

/** The value of one sample in Prometheus text format (0 when absent). */
export function metricValue(text: string, name: string, labels: Record<string, string> = {}): number {
  let total = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-zA-Z_:][\w:]*)(\{([^}]*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries((m[3] ?? '').split(',').filter(Boolean).map((kv) => {
      const [k, v] = kv.split('=');
      return [k, v?.replace(/^"|"$/g, '')];
    }));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) total += Number(m[4]);
  }
  return total;
}
