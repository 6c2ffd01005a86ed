// Every command `mailfleet --help` documents runs inside the image, hardened as the pods run
// it (read-only root, non-root, no capabilities, no-new-privileges, no network): the list is
// read from the image's own usage text, so a command added without a run here fails the test.
// The image has no openssl, no compiler and no shell tools beyond Debian's minimal base.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from '../support/eventually.ts';
import { IMAGE, ensureImage, imageTierAvailable, podman, runDetached, uniqueName } from './podman.ts';

const available = imageTierAvailable('image');

/** The hardened flags of the relay's pod (checked against the rendered pod in relay-image.test.ts). */
const HARDENED = ['--network=none', '--read-only', '--read-only-tmpfs=false', '--user', '65532:65532', '--cap-drop=ALL', '--security-opt=no-new-privileges'];
const STACK = /^\s+at .+:\d+:\d+\)?$/m;

interface Out { stdout: string; stderr: string; code: number }
const mf = (args: string[], extra: string[] = [], input?: string): Promise<Out> =>
  podman(['run', '--rm', ...(input !== undefined ? ['-i'] : []), ...HARDENED, ...extra, IMAGE, ...args], input !== undefined ? { input } : {});

describe.skipIf(!available)('every documented mailfleet command in the image', () => {
  let dir: string;
  let usage: string;
  const vol = (sub: string, target: string, ro = true) => ['-v', `${path.join(dir, sub)}:${target}${ro ? ':ro' : ''}`];

  beforeAll(async () => {
    ensureImage();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mailfleet-cli-image-'));
    fs.chmodSync(dir, 0o755);
    fs.mkdirSync(path.join(dir, 'etc'));
    fs.mkdirSync(path.join(dir, 'data'), { mode: 0o777 });
    fs.chmodSync(path.join(dir, 'data'), 0o777);
    const h = await mf(['--help']);
    expect(h.code, h.stderr).toBe(0);
    usage = h.stdout + h.stderr;
  }, 40 * 60_000);

  afterAll(() => { if (dir) fs.rmSync(dir, { recursive: true, force: true }); });

  /**
   * `relay`, `config check`, ...: from the usage's command list (the indented lines after
   * "commands:", up to a blank line), the words of each line up to its first flag or
   * placeholder, with `a|b` alternatives expanded.
   */
  const documented = () => {
    const lines = usage.split('\n');
    const start = lines.findIndex((l) => /^commands:\s*$/.test(l));
    const block = start >= 0 ? lines.slice(start + 1, lines.findIndex((l, i) => i > start && l.trim() === '')) : lines;
    const out = new Set<string>();
    for (const l of block) {
      if (!/^\s{2,}[a-z]/.test(l)) continue;
      const words: string[] = [];
      for (const t of l.trim().split(/\s{2,}/)[0]!.split(' ')) {
        if (!/^[a-z][a-z-]*(\|[a-z][a-z-]*)*$/.test(t) || words.length === 2) break;
        words.push(t);
      }
      const [first, second] = words;
      if (!first) continue;
      for (const alt of second ? second.split('|') : ['']) out.add(alt ? `${first} ${alt}` : first);
    }
    return [...out];
  };

  const runs: Record<string, () => Promise<void>> = {
    relay: async () => {
      // --dev keeps its state under the working directory: a writable one (an emptyDir in a pod).
      const c = await runDetached(uniqueName('mailfleet-cli-dev'), [...HARDENED, '--tmpfs', '/work:rw,mode=1777', '-w', '/work', IMAGE, 'relay', '--dev']);
      try {
        await eventually('relay --dev to be ready', async () => (await c.logs()).includes('"relay ready"'), 60_000);
        expect((await podman(['kill', '--signal', 'TERM', c.name])).code).toBe(0);
        expect(await c.wait()).toBe(0);
        expect(await c.logs()).not.toMatch(STACK);
      } finally { await c.remove(); }
    },
    operator: async () => {
      // The operator against a control plane runs in operator-image.test.ts; here: it starts and explains itself.
      const r = await mf(['operator', '--help']);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout + r.stderr).toMatch(/operator/);
      expect(r.stderr).not.toMatch(STACK);
    },
    'config check': async () => {
      const hash = (await mf(['hash-password'], [], 'a-password')).stdout.trim();
      fs.writeFileSync(path.join(dir, 'etc', 'relay.yaml'), [
        'hostname: relay.test', 'dataDir: /var/lib/mailfleet',
        'listeners: [{ name: submission, host: 0.0.0.0, port: 587, mode: starttls }]',
        'tls: { selfSigned: true }',
        `credentials: [{ username: app, passwordHash: "${hash}", domains: [example.com] }]`,
        'domains: [{ domain: example.com }]', 'delivery: { mode: mx }', '',
      ].join('\n'));
      fs.writeFileSync(path.join(dir, 'etc', 'bad.yaml'), 'hostname: relay.test\nlisteners: [{ name: x, port: 587, mode: starttls, hots: 1 }]\n');
      const ok = await mf(['config', 'check', '/etc/mailfleet/relay.yaml'], vol('etc', '/etc/mailfleet'));
      expect(ok.code, ok.stderr).toBe(0);
      expect(ok.stdout).toMatch(/ok/);
      const bad = await mf(['config', 'check', '/etc/mailfleet/bad.yaml'], vol('etc', '/etc/mailfleet'));
      expect(bad.code).toBe(1);
      expect(bad.stderr).toMatch(/hots/);
      expect(bad.stderr).not.toMatch(STACK);
    },
    'config schema': async () => {
      const r = await mf(['config', 'schema']);
      expect(r.code, r.stderr).toBe(0);
      const schema = JSON.parse(r.stdout) as { properties?: Record<string, unknown> };
      expect(Object.keys(schema.properties ?? {})).toEqual(expect.arrayContaining(['listeners', 'domains', 'delivery']));
    },
    'hash-password': async () => {
      const r = await mf(['hash-password'], [], 'a-password');
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout.trim()).toMatch(/^scrypt\$/);
    },
    'suppression list': async () => {
      const r = await mf(['suppression', 'list', '--data-dir', '/var/lib/mailfleet'], vol('data', '/var/lib/mailfleet', false));
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr).not.toMatch(STACK);
    },
    'suppression add': async () => {
      const r = await mf(['suppression', 'add', 'nobody@example.com', '--scope', 'example.com', '--data-dir', '/var/lib/mailfleet'], vol('data', '/var/lib/mailfleet', false));
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr).not.toMatch(STACK);
    },
    dns: async () => {
      // no cluster in the image tier: the command must fail cleanly (exit 1, one line), not crash
      const r = await mf(['dns', 'shop/example-com', '--kubeconfig', '/nonexistent/kubeconfig']);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/^mailfleet dns: /);
      expect(r.stderr).not.toMatch(STACK);
    },
    'suppression remove': async () => {
      const r = await mf(['suppression', 'remove', 'nobody@example.com', '--data-dir', '/var/lib/mailfleet'], vol('data', '/var/lib/mailfleet', false));
      expect([0, 1]).toContain(r.code); // 1: was not suppressed
      expect(r.stdout).toMatch(/nobody@example\.com/);
      expect(r.stderr).not.toMatch(STACK);
    },
    // The queue tools, offline on an empty data dir (the relay-image test drives a real queue):
    // they run, and an unknown id is a one-line answer, not a crash.
    ...Object.fromEntries(['list', 'show', 'retry', 'hold', 'release', 'delete', 'import'].map((sub) => [`queue ${sub}`, async () => {
      const arg = sub === 'list' ? [] : sub === 'import' ? ['/var/lib/mailfleet/other'] : ['MX0000000000000000'];
      fs.mkdirSync(path.join(dir, 'data', 'other'), { recursive: true, mode: 0o777 });
      fs.chmodSync(path.join(dir, 'data', 'other'), 0o777);
      const r = await mf(['queue', sub, ...arg, '--data-dir', '/var/lib/mailfleet'], vol('data', '/var/lib/mailfleet', false));
      expect(r.stderr).not.toMatch(STACK);
      expect([0, 1], r.stdout + r.stderr).toContain(r.code);
      if (r.code !== 0) expect(r.stderr.trim().split('\n').length, r.stderr).toBe(1);
    }])),
  };

  it('documents commands, and each one has a run below', () => {
    expect(documented().length).toBeGreaterThan(3);
    expect(documented().filter((c) => !(c in runs))).toEqual([]);
  });

  it('prints its usage and version without a stack trace', async () => {
    expect(usage).not.toMatch(STACK);
    const v = await mf(['--version']);
    expect(v.stderr).not.toMatch(STACK);
    const version = (JSON.parse(fs.readFileSync(path.join(import.meta.dirname, '../../package.json'), 'utf8')) as { version: string }).version;
    expect(v.code).toBe(0);
    expect(v.stdout).toContain(version);
  });

  for (const [cmd, fn] of Object.entries(runs)) {
    it(`mailfleet ${cmd}`, async () => {
      expect(documented(), `${cmd} is no longer documented: remove its run`).toContain(cmd);
      await fn();
    }, 180_000);
  }
});
