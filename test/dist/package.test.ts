// The package as a user gets it: `npm run build`, `npm pack`, `npm install -g` of the
// tarball into an empty prefix, and the installed `mailfleet` (the compiled dist/, which
// Node runs from node_modules where it would refuse TypeScript) runs --version, config
// check, and a dev relay that captures a message. The systemd unit is checked by
// systemd-analyze (verify, and security offline: PID 1 here is not systemd, so
// systemd-run cannot start it) and its ExecStart line is run as the unit would run it:
// unprivileged, no-new-privileges, only CAP_NET_BIND_SERVICE (ambient), the unit's UMask
// and environment, binding port 587; SIGHUP reloads, SIGTERM stops it with exit 0.
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import nodemailer from 'nodemailer';
import YAML from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lockDevPorts } from '../support/dev-ports.ts';
import { repoRoot, tempDir, waitUntil } from '../support/relay-harness.ts';
import { haveTools } from '../support/tools.ts';

const ok = haveTools('dist', ['npm', 'systemd-analyze', 'setpriv']);
const pkg = JSON.parse(fs.readFileSync(path.join(repoRoot, 'package.json'), 'utf8')) as { name: string; version: string };
// children find the project's Node 24 first, as `npx`/a user's PATH would
const env = { ...process.env, PATH: `${path.dirname(process.execPath)}:${process.env.PATH}`, NO_UPDATE_NOTIFIER: '1' };

function run(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { cwd: opts.cwd ?? repoRoot, env: opts.env ?? env, encoding: 'utf8', timeout: opts.timeoutMs ?? 600_000, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr });
    });
  });
}

async function must(cmd: string, args: string[], opts: Parameters<typeof run>[2] = {}): Promise<string> {
  const r = await run(cmd, args, opts);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.code}:\n${r.stderr}\n${r.stdout}`);
  return r.stdout;
}

/** A long-running child whose stdout and stderr are collected together. */
function watch(cmd: string, args: string[], opts: { cwd: string; env: NodeJS.ProcessEnv }) {
  const child = spawn(cmd, args, { ...opts, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
  child.stderr.on('data', (d: Buffer) => { out += d.toString(); });
  const exited = new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
  return { child, exited, output: () => out, ready: () => waitUntil(`${args.join(' ')} ready`, () => out.includes('"relay ready"') || child.exitCode !== null, 120_000) };
}

let work = '';
let prefix = '';
let bin = '';
let packed: { path: string }[] = [];

describe.runIf(ok)('the npm package', () => {
  beforeAll(async () => {
    work = tempDir('mailfleet-dist-');
    fs.chmodSync(work, 0o755); // the unit's ExecStart runs the installed bin as an unprivileged user
    await must('npm', ['run', 'build']);
    const [dry] = JSON.parse(await must('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'])) as [{ files: { path: string }[] }];
    packed = dry.files;
    const [out] = JSON.parse(await must('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', work])) as [{ filename: string }];
    prefix = path.join(work, 'prefix');
    fs.mkdirSync(prefix);
    await must('npm', ['install', '--global', '--prefix', prefix, '--no-audit', '--no-fund', '--prefer-offline', path.join(work, out.filename)]);
    bin = path.join(prefix, 'bin', 'mailfleet');
  }, 1_200_000);

  it('holds the compiled build with source maps, the standalone docs and nothing of development', () => {
    const files = packed.map((f) => f.path);
    expect(files).toContain('dist/bin/mailfleet.js');
    expect(files).toContain('dist/bin/mailfleet.js.map');
    expect(files).toContain('dist/relay/relay.js');
    expect(files).toContain('dist/operator/main.js');
    for (const f of ['package.json', 'README.md', 'LICENSE', 'docs/standalone.md', 'deploy/systemd/mailfleet-relay.service', 'examples/relay.yaml']) expect(files).toContain(f);
    const dev = files.filter((f) => !/^dist\/(bin|cli|relay|operator)\/.+\.js(\.map)?$/.test(f)
      && !['package.json', 'README.md', 'LICENSE', 'docs/standalone.md', 'examples/relay.yaml'].includes(f)
      && !f.startsWith('deploy/systemd/'));
    expect(dev, 'files in the tarball that a user does not need').toEqual([]);
    // every compiled module has its map, and no TypeScript source ships
    const js = files.filter((f) => f.endsWith('.js'));
    for (const f of js) expect(files, f).toContain(`${f}.map`);
    expect(files.filter((f) => /\.(ts|mts|cts)$/.test(f))).toEqual([]);
  });

  it('runs from the installed tarball: --version and config check', async () => {
    const installed = path.join(prefix, 'lib', 'node_modules', pkg.name);
    expect(fs.realpathSync(bin)).toBe(path.join(installed, 'dist', 'bin', 'mailfleet.js'));
    expect((await must(bin, ['--version'])).trim()).toBe(`mailfleet ${pkg.version}`);
    expect(await must(bin, ['config', 'check', path.join(installed, 'examples', 'relay.yaml'), '--schema-only'])).toMatch(/: ok\n$/);
    // a full check reads the files the config names
    const dir = tempDir();
    const hash = await must('sh', ['-c', 'printf %s app-password | "$0" hash-password', bin]);
    fs.writeFileSync(path.join(dir, 'app.hash'), hash);
    const config = {
      hostname: 'relay.test', dataDir: path.join(dir, 'data'), tls: { selfSigned: true },
      listeners: [{ name: 'submission', port: 2587, mode: 'starttls' }],
      credentials: [{ username: 'app', passwordHashFile: 'app.hash', domains: ['example.test'] }],
      domains: [{ domain: 'example.test' }],
    };
    fs.writeFileSync(path.join(dir, 'relay.yaml'), YAML.stringify(config));
    expect(await must(bin, ['config', 'check', path.join(dir, 'relay.yaml')])).toMatch(/: ok\n$/);
    fs.rmSync(path.join(dir, 'app.hash'));
    const missing = await run(bin, ['config', 'check', path.join(dir, 'relay.yaml')]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/passwordHashFile.*app\.hash/);
  }, 300_000);

  it('runs a dev relay from the installed tarball that captures what it is sent', async () => {
    const release = await lockDevPorts();
    const cwd = tempDir();
    const { child, exited, output, ready } = watch(bin, ['relay', '--dev'], { cwd, env: { ...env, MAILFLEET_DEV_PASSWORD: 'installed-pw' } });
    try {
      await ready();
      expect(output()).toContain('"relay ready"');
      await nodemailer.createTransport({ host: '127.0.0.1', port: 2587, requireTLS: true, tls: { ca: fs.readFileSync(path.join(cwd, '.mailfleet', 'tls', 'selfsigned.crt')) }, auth: { user: 'dev', pass: 'installed-pw' } })
        .sendMail({ from: 'you@example.test', to: 'someone@example.org', subject: 'from the tarball', text: 'x' });
      await waitUntil('captured', () => output().includes('"message captured"'), 60_000);
      const captured = fs.readdirSync(path.join(cwd, '.mailfleet', 'captured'));
      expect(captured).toHaveLength(1);
      expect(fs.readFileSync(path.join(cwd, '.mailfleet', 'captured', captured[0]!), 'utf8')).toMatch(/^DKIM-Signature: .*d=example\.test/m);
    } finally {
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
      release();
    }
  }, 300_000);

  describe('systemd unit', () => {
    const unitFile = path.join(repoRoot, 'deploy', 'systemd', 'mailfleet-relay.service');
    const unit = fs.readFileSync(unitFile, 'utf8');
    const directive = (name: string) => unit.split('\n').filter((l) => l.startsWith(`${name}=`)).map((l) => l.slice(name.length + 1));

    it('passes systemd-analyze verify and security with a low exposure, and its promises hold', async () => {
      // the unit as installed, pointing at the mailfleet this test installed
      const dir = tempDir();
      const copy = path.join(dir, 'mailfleet-relay.service');
      fs.writeFileSync(copy, unit.replace('/usr/local/bin/mailfleet', bin));
      const verify = await run('systemd-analyze', ['verify', copy]);
      expect(verify.stderr.split('\n').filter((l) => l.includes('mailfleet-relay.service')), verify.stderr).toEqual([]);
      expect(verify.code).toBe(0);
      const security = await run('systemd-analyze', ['security', '--offline=true', '--no-pager', copy]);
      const level = Number(/Overall exposure level for mailfleet-relay\.service: ([\d.]+)/.exec(security.stdout)?.[1]);
      expect(level, security.stdout).toBeLessThanOrEqual(2.0);
      expect(directive('ProtectSystem')).toEqual(['strict']);
      expect(directive('StateDirectory')).toEqual(['mailfleet']);
      expect(directive('User')).toEqual(['mailfleet']);
      expect(directive('NoNewPrivileges')).toEqual(['yes']);
      expect(directive('CapabilityBoundingSet')).toEqual(['CAP_NET_BIND_SERVICE']);
      expect(directive('AmbientCapabilities')).toEqual(['CAP_NET_BIND_SERVICE']);
      expect(directive('ExecReload')).toEqual(['/bin/kill -HUP $MAINPID']);
      // the example config the unit runs listens below 1024: that is why the capability is there
      const example = YAML.parse(fs.readFileSync(path.join(repoRoot, 'examples', 'relay.yaml'), 'utf8')) as { dataDir: string; listeners: { port: number }[] };
      expect(example.listeners.some((l) => l.port < 1024)).toBe(true);
      expect(example.dataDir).toBe('/var/lib/mailfleet'); // = StateDirectory
    }, 120_000);

    it("runs its ExecStart line as the unit would: unprivileged, no new privileges, CAP_NET_BIND_SERVICE only; reload and stop", async () => {
      const [execStart] = directive('ExecStart');
      const [cmd, ...args] = execStart!.split(/\s+/);
      expect(cmd).toBe('/usr/local/bin/mailfleet');
      expect(args.slice(0, 2)).toEqual(['relay', '--config']);
      // /etc/mailfleet and /var/lib/mailfleet of this run, owned as systemd would set them up
      const root = tempDir();
      fs.chmodSync(root, 0o755);
      const etc = path.join(root, 'etc');
      const state = path.join(root, 'state');
      fs.mkdirSync(etc, { mode: 0o750 });
      fs.mkdirSync(state, { mode: 0o700 });
      const uid = 65534;
      fs.chownSync(state, uid, uid);
      fs.chownSync(etc, 0, uid);
      const config = {
        hostname: 'relay.test', dataDir: state,
        listeners: [{ name: 'submission', host: '127.0.0.87', port: 587, mode: 'starttls' }],
        tls: { selfSigned: true },
        http: { host: '127.0.0.87', port: 9465 },
        recipientChecks: { dns: false },
        delivery: { mode: 'capture' },
      };
      const configFile = path.join(etc, 'relay.yaml');
      fs.writeFileSync(configFile, YAML.stringify(config), { mode: 0o640 });
      fs.chownSync(configFile, 0, uid);
      const umask = Number.parseInt(directive('UMask')[0]!, 8);
      const unitEnv = Object.fromEntries(directive('Environment').map((e) => e.split('=', 2) as [string, string]));
      // systemd's setup of the process, spelled with setpriv
      const setpriv = ['--reuid', String(uid), '--regid', String(uid), '--clear-groups', '--no-new-privs',
        '--inh-caps=-all,+net_bind_service', '--ambient-caps=-all,+net_bind_service', '--bounding-set=-all,+net_bind_service'];
      const { child, exited, output, ready } = watch('sh', ['-c', `umask ${umask.toString(8)} && exec setpriv "$@"`, 'sh', ...setpriv, bin, ...args.slice(0, 2), configFile], {
        cwd: '/', env: { PATH: env.PATH, ...unitEnv, STATE_DIRECTORY: state, CONFIGURATION_DIRECTORY: etc },
      });
      try {
        await ready();
        expect(output()).toContain('"relay ready"');
        const status = fs.readFileSync(`/proc/${child.pid}/status`, 'utf8');
        expect(/^Uid:\s+(\d+)/m.exec(status)?.[1]).toBe(String(uid));
        expect(/^NoNewPrivs:\s+(\d)/m.exec(status)?.[1]).toBe('1');
        expect(/^CapEff:\s+(\w+)/m.exec(status)?.[1]).toBe('0000000000000400'); // CAP_NET_BIND_SERVICE (bit 10) alone
        expect(/^CapBnd:\s+(\w+)/m.exec(status)?.[1]).toBe('0000000000000400');
        // everything it wrote is in the state directory, private (UMask=0077)
        const key = path.join(state, 'tls', 'selfsigned.key');
        expect(fs.statSync(key).uid).toBe(uid);
        expect(fs.statSync(path.join(state, 'queue')).mode & 0o077).toBe(0);
        // ExecReload
        process.kill(child.pid!, 'SIGHUP');
        await waitUntil('reloaded', () => output().includes('"msg":"config reloaded"'), 60_000);
      } finally {
        child.kill('SIGTERM');
      }
      expect(await exited, output()).toBe(0);
    }, 300_000);
  });

  afterAll(() => {
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });
});
