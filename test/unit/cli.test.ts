// The CLI behaves like one: every command answers --help/-h with its usage on stdout and
// exit 0, `--version` prints the package's version, and a wrong invocation (unknown
// option, command or subcommand, a missing argument) gets one line on stderr and exit 2,
// never a stack trace. Runs the real bin/mailfleet.ts as a process.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot } from '../support/relay-harness.ts';

interface Result { code: number; stdout: string; stderr: string }

function mailfleet(args: string[]): Promise<Result> {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, [path.join(repoRoot, 'bin/mailfleet.ts'), ...args], { encoding: 'utf8', timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr });
    });
    child.stdin?.end();
  });
}

/** Runs them four at a time: a few dozen node processes at once would starve a small CI machine. */
async function all(runs: string[][]): Promise<Result[]> {
  const out: Result[] = [];
  for (let i = 0; i < runs.length; i += 4) out.push(...await Promise.all(runs.slice(i, i + 4).map((args) => mailfleet(args))));
  return out;
}

const SLOW = 300_000; // dozens of process starts

const COMMANDS = [[], ['relay'], ['operator'], ['config'], ['config', 'check'], ['config', 'schema'], ['hash-password'], ['suppression'], ['suppression', 'list'], ['suppression', 'remove'], ['queue'], ['queue', 'list']];

describe('mailfleet CLI', () => {
  it('prints usage and exits 0 for --help and -h on every command', async () => {
    const runs = COMMANDS.flatMap((c) => [[...c, '--help'], [...c, '-h']]);
    const results = await all(runs);
    results.forEach((r, i) => {
      const what = `mailfleet ${runs[i]!.join(' ')}`;
      expect(r.code, what).toBe(0);
      expect(r.stdout, what).toMatch(/^usage: /);
      expect(r.stderr, what).toBe('');
      // the usage of the command asked about
      const cmd = runs[i]![0];
      if (cmd && !cmd.startsWith('-')) expect(r.stdout, what).toContain(`mailfleet ${cmd}`);
    });
    expect((await mailfleet(['help', 'relay'])).stdout).toContain('--deliver');
  }, SLOW);

  it("lists every flag the operator parses in `mailfleet operator --help`", async () => {
    // the operator owns its flags (operator/main.ts); the usage text must not fall behind
    const source = fs.readFileSync(path.join(repoRoot, 'operator', 'main.ts'), 'utf8');
    const block = /parseArgs\(\{[\s\S]*?options: \{([\s\S]*?)\n\s*\},\n\s*\}\)/.exec(source)?.[1];
    const flags = [...(block ?? '').matchAll(/^\s*'?([a-z][a-z-]*)'?: \{ type:/gm)].map((m) => m[1]!);
    expect(flags.length).toBeGreaterThan(5);
    const help = (await mailfleet(['operator', '--help'])).stdout;
    for (const f of flags) expect(help, `--${f}`).toMatch(new RegExp(`--${f}\\b`));
  });

  it('prints the version of the package', async () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(repoRoot, 'package.json'), 'utf8')) as { version: string };
    const r = await mailfleet(['--version']);
    expect(r).toEqual({ code: 0, stdout: `mailfleet ${pkg.version}\n`, stderr: '' });
  });

  it('answers a wrong invocation with one line and exit 2', async () => {
    const cases: [string[], RegExp][] = [
      [['frob'], /^mailfleet: unknown command 'frob'/],
      [['--frob'], /^mailfleet: unknown option '--frob'/],
      [['relay', '--frob'], /^mailfleet relay: unknown option '--frob'/],
      [['relay'], /^mailfleet relay: give --config FILE/],
      [['relay', '--config'], /^mailfleet relay: option '-c, --config <value>' argument missing/i],
      [['relay', '--dev', '--config', 'x.yaml'], /not both/],
      [['relay', '--config', 'x.yaml', '--deliver'], /--deliver goes with --dev/],
      [['relay', '--dev', 'extra'], /^mailfleet relay: unexpected argument 'extra'/],
      [['operator', '--frob'], /^mailfleet operator: unknown option '--frob'/],
      [['operator', 'extra'], /^mailfleet operator: unexpected argument 'extra'/],
      [['config'], /^mailfleet config: give a subcommand/],
      [['config', 'frob'], /^mailfleet config: unknown subcommand 'frob'/],
      [['config', 'check'], /^mailfleet config: give the config FILE/],
      [['config', 'check', 'a.yaml', '--frob'], /^mailfleet config: unknown option '--frob'/],
      [['config', 'schema', 'extra'], /unexpected argument 'extra'/],
      [['hash-password', '--frob'], /^mailfleet hash-password: unknown option '--frob'/],
      [['hash-password'], /give the password on stdin/],
      [['suppression', 'frob'], /unknown subcommand 'frob'/],
      [['suppression', 'list'], /give --config FILE or --data-dir DIR/],
      [['queue', '--frob'], /^mailfleet queue: unknown option '--frob'/],
      [['suppression', 'remove', '--data-dir', '/nonexistent'], /give the ADDRESS/],
    ];
    const results = await all(cases.map(([args]) => args));
    results.forEach((r, i) => {
      const [args, message] = cases[i]!;
      const what = `mailfleet ${args.join(' ')}`;
      expect(r.code, what).toBe(2);
      expect(r.stdout, what).toBe('');
      expect(r.stderr, what).toMatch(message);
      expect(r.stderr.split('\n'), what).toHaveLength(2); // one line and its newline
      expect(r.stderr, what).toContain('--help');
    });
  }, SLOW);

  it('reports a failing command without a stack trace, exit 1', async () => {
    const r = await mailfleet(['suppression', 'list', '--config', '/nonexistent/relay.yaml']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^invalid config \/nonexistent\/relay.yaml:\n {2}cannot read: ENOENT/);
    const op = await mailfleet(['operator', '--kubeconfig', '/nonexistent/kubeconfig', '--http', '127.0.0.1:0']);
    expect(op.code).toBe(1);
    expect(op.stderr).toMatch(/^mailfleet operator: .*\/nonexistent\/kubeconfig/);
    for (const out of [r.stderr, op.stderr]) expect(out).not.toMatch(/^\s+at /m);
  });
});
