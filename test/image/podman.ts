// Podman for the image tier: the image built by `npm run image:build` (cached, so asking for
// it in every test file is cheap once it exists), podman with the settings of
// scripts/image-env.sh, and containers that are always removed.
//
// Networking: never podman's default bridge network (it adds iptables rules and may turn on
// ip_forward for the whole machine). Containers run in a network namespace the test creates
// (netns.ts) or with --network=none.
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { promisify } from 'node:util';
import { haveTools } from '../support/tools.ts';
import { repoRoot } from '../support/relay-harness.ts';

const run = promisify(execFile);

export const IMAGE = process.env.MAILFLEET_TEST_IMAGE || 'localhost/mailfleet:dev';

/** The tools the image tier needs (installed by .ci/install-deps). */
export const IMAGE_TOOLS = ['podman', 'runc', 'nsenter', 'unshare', 'setpriv', 'swaks', 'smtp-sink', 'curl'];

/** True when the tier can run (root and the tools); otherwise skips loudly (or throws in CI). */
export function imageTierAvailable(tier: string): boolean {
  if (process.getuid?.() !== 0) {
    if (process.env.CI === 'true' || process.env.CI === '1') throw new Error(`[${tier}] needs root (debootstrap, podman, network namespaces); CI=true forbids skipping a tier`);
    console.warn(`\n*** SKIPPING TIER ${tier}: needs root ***\n`);
    return false;
  }
  return haveTools(tier, IMAGE_TOOLS);
}

let env: NodeJS.ProcessEnv | undefined;
/** process.env plus CONTAINERS_CONF from scripts/image-env.sh (unless the caller set one). */
export function podmanEnv(): NodeJS.ProcessEnv {
  if (env) return env;
  const out = execFileSync('bash', [path.join(repoRoot, 'scripts/image-env.sh')], { encoding: 'utf8' });
  env = { ...process.env };
  for (const line of out.split('\n')) {
    const m = /^([A-Z_]+)=(.*)$/.exec(line);
    if (m) env[m[1]!] = m[2]!;
  }
  return env;
}

/** Builds (or finds cached) the image; a cold build assembles the base too (minutes). */
export function ensureImage(): void {
  if (process.env.MAILFLEET_TEST_IMAGE) return;
  execFileSync('bash', [path.join(repoRoot, 'scripts/image-build.sh')], { env: podmanEnv(), stdio: ['ignore', 'ignore', 'pipe'], timeout: 30 * 60_000 });
}

export async function podman(args: string[], opts: { input?: string; timeoutMs?: number } = {}): Promise<{ stdout: string; stderr: string; code: number }> {
  return new Promise((resolve) => {
    const child = execFile('podman', args, { env: podmanEnv(), timeout: opts.timeoutMs ?? 120_000, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
      resolve({ stdout: String(stdout), stderr: String(stderr), code });
    });
    if (opts.input !== undefined) child.stdin!.end(opts.input);
  });
}

export const uniqueName = (prefix: string) => `${prefix}-${process.pid}-${randomBytes(3).toString('hex')}`;

/** A detached container: its logs so far, its exit, and a removal that never throws. */
export interface Container {
  name: string;
  logs(): Promise<string>;
  /** Waits for the container to exit; its exit code. */
  wait(timeoutMs?: number): Promise<number>;
  remove(): Promise<void>;
}

export async function runDetached(name: string, args: string[]): Promise<Container> {
  const res = await podman(['run', '-d', '--name', name, ...args]);
  if (res.code !== 0) {
    await podman(['rm', '-f', '--ignore', name]);
    throw new Error(`podman run ${name} failed (${res.code}): ${res.stderr}`);
  }
  return {
    name,
    logs: async () => { const r = await podman(['logs', name]); return r.stdout + r.stderr; },
    wait: async (timeoutMs = 120_000) => {
      const r = await podman(['wait', name], { timeoutMs });
      if (r.code !== 0) throw new Error(`podman wait ${name}: ${r.stderr}`);
      return Number(r.stdout.trim());
    },
    remove: async () => { await podman(['rm', '-f', '-t', '0', '--ignore', name]); },
  };
}

/** Starts a long-running child that dies with this process (setpriv --pdeathsig). */
export function spawnTied(cmd: string, args: string[], env?: NodeJS.ProcessEnv): ChildProcess {
  return spawn('setpriv', ['--pdeathsig', 'KILL', '--', cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: env ?? process.env });
}

export { run as execFileAsync };
