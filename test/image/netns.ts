// A network namespace of the test's own: only a loopback interface, so a container in it
// (podman --network=ns:PATH) and the test's peers started in it (nsenter) talk over
// 127.0.0.1 without touching the machine's network. It lives as long as its holder process,
// which dies with the test process (--pdeathsig) and is killed by close().
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { promisify } from 'node:util';
import { spawnTied } from './podman.ts';

const run = promisify(execFile);
// ip and sysctl live in /usr/sbin, which a non-login PATH may lack.
const sbinEnv = (): NodeJS.ProcessEnv => ({ ...process.env, PATH: `${process.env.PATH ?? '/usr/bin:/bin'}:/usr/sbin:/sbin` });

export interface NetNs {
  /** /proc/<holder>/ns/net, for podman --network=ns:… and nsenter --net=… */
  path: string;
  /** Runs a command inside the namespace to completion. */
  exec(cmd: string, args: string[], opts?: { input?: string; timeoutMs?: number }): Promise<{ stdout: string; stderr: string; code: number }>;
  /** Starts a long-running command inside the namespace (dies with the test process). */
  spawn(cmd: string, args: string[], env?: NodeJS.ProcessEnv): ChildProcess;
  close(): Promise<void>;
}

export async function createNetNs(sysctls: { name: string; value: string }[] = []): Promise<NetNs> {
  const holder = spawnTied('unshare', ['--net', '--', 'sleep', '3600']);
  const pid = holder.pid;
  if (!pid) throw new Error('could not start the network namespace holder');
  const nsPath = `/proc/${pid}/ns/net`;
  // unshare has exec'd sleep once the namespace differs from ours
  const ours = (await run('readlink', ['/proc/self/ns/net'])).stdout.trim();
  for (let i = 0; i < 200; i++) {
    const theirs = await run('readlink', [nsPath]).then((r) => r.stdout.trim(), () => '');
    if (theirs && theirs !== ours) break;
    if (i === 199) throw new Error('network namespace holder did not unshare');
    await new Promise((r) => setTimeout(r, 25));
  }
  const exec: NetNs['exec'] = (cmd, args, opts = {}) => new Promise((resolve) => {
    const child = execFile('nsenter', [`--net=${nsPath}`, '--', cmd, ...args], { timeout: opts.timeoutMs ?? 60_000, maxBuffer: 16 << 20, env: sbinEnv() }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
      resolve({ stdout: String(stdout), stderr: String(stderr), code });
    });
    if (opts.input !== undefined) child.stdin!.end(opts.input);
  });
  const must = async (cmd: string, args: string[]) => {
    const r = await exec(cmd, args);
    if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} in the test netns: ${r.stderr}`);
  };
  await must('ip', ['link', 'set', 'lo', 'up']);
  // Pod sysctls are namespaced (net.*): the runtime sets them in the pod's namespace, so do we.
  for (const s of sysctls) await must('sysctl', ['-q', '-w', `${s.name}=${s.value}`]);
  return {
    path: nsPath,
    exec,
    spawn: (cmd, args, env) => spawn('nsenter', [`--net=${nsPath}`, '--', 'setpriv', '--pdeathsig', 'KILL', '--', cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: env ?? process.env }),
    close: async () => {
      if (holder.exitCode === null && holder.signalCode === null) {
        const gone = new Promise((r) => holder.once('exit', r));
        holder.kill('SIGKILL');
        await gone;
      }
    },
  };
}
