// The invariants of the Dockerfile, checked statically (test/image builds and runs it): Node
// 24 base, multi-stage, a runtime with production deps only and the compiled build, non-root
// user, the mailfleet entrypoint; and that the sources the build stage copies exist, survive
// .dockerignore, and cover everything the entrypoint imports (so `mailfleet operator` and
// `mailfleet relay` cannot fail in the image with a missing module).
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot } from './helpers.ts';

interface Instr { op: string; args: string; stage: number }

/** Dockerfile instructions with line continuations joined and comments dropped. */
function parseDockerfile(text: string): Instr[] {
  const joined = text.replace(/\\\r?\n/g, ' ');
  const out: Instr[] = [];
  let stage = -1;
  for (const raw of joined.split(/\r?\n/)) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const m = /^([A-Za-z]+)\s+(.*)$/.exec(line);
    if (!m) throw new Error(`unparsable Dockerfile line: ${line}`);
    const op = m[1]!.toUpperCase();
    if (op === 'FROM') stage++;
    out.push({ op, args: m[2]!.trim(), stage });
  }
  return out;
}

function dockerignored(rel: string, patterns: string[]): boolean {
  const parts = rel.split('/');
  // a pattern that matches a directory excludes everything below it
  for (let i = 1; i <= parts.length; i++) {
    const prefix = parts.slice(0, i).join('/');
    if (patterns.some((p) => path.matchesGlob(prefix, p))) return true;
  }
  return false;
}

/** Every local file reachable through static and dynamic imports, and every package imported for its value. */
function importClosure(entries: string[]): { files: Set<string>; packages: Set<string> } {
  const files = new Set<string>();
  const packages = new Set<string>();
  const todo = [...entries];
  for (let guard = 0; todo.length > 0 && guard < 10_000; guard++) {
    const file = todo.pop()!;
    if (files.has(file)) continue;
    files.add(file);
    const text = fs.readFileSync(file, 'utf8');
    const specs = [
      ...[...text.matchAll(/^\s*(?:import|export)\s+(?!type\s)[^'";]*?from\s+'([^']+)'/gm)].map((m) => m[1]!),
      ...[...text.matchAll(/^\s*import\s+'([^']+)'/gm)].map((m) => m[1]!),
      ...[...text.matchAll(/\bimport\(\s*'([^']+)'\s*\)/g)].map((m) => m[1]!),
    ];
    for (const s of specs) {
      if (s.startsWith('.')) todo.push(path.resolve(path.dirname(file), s));
      else if (!s.startsWith('node:')) packages.add(s.startsWith('@') ? s.split('/').slice(0, 2).join('/') : s.split('/')[0]!);
    }
  }
  return { files, packages };
}

const dockerfile = parseDockerfile(fs.readFileSync(path.join(repoRoot, 'Dockerfile'), 'utf8'));
const ignore = fs.readFileSync(path.join(repoRoot, '.dockerignore'), 'utf8').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
const lastStage = Math.max(...dockerfile.map((i) => i.stage));
const final = dockerfile.filter((i) => i.stage === lastStage);
const stageNamed = (name: string) => {
  const from = dockerfile.find((i) => i.op === 'FROM' && new RegExp(`\\sAS\\s+${name}$`, 'i').test(i.args));
  if (!from) throw new Error(`no stage named ${name}`);
  return dockerfile.filter((i) => i.stage === from.stage);
};
const pkg = JSON.parse(fs.readFileSync(path.join(repoRoot, 'package.json'), 'utf8')) as { dependencies: Record<string, string>; devDependencies: Record<string, string> };

describe('Dockerfile (static)', () => {
  it('is multi-stage on a Node 24 base', () => {
    expect(lastStage).toBeGreaterThanOrEqual(1);
    const arg = dockerfile.find((i) => i.op === 'ARG' && i.args.startsWith('NODE_IMAGE='));
    const bases = dockerfile.filter((i) => i.op === 'FROM').map((i) => i.args.split(/\s+/)[0]!.replace('${NODE_IMAGE}', arg?.args.split('=')[1] ?? ''));
    for (const b of bases) expect(b).toMatch(/^node:24[.-]/);
  });

  it('installs dependencies reproducibly without install scripts, and production ones only into the runtime', () => {
    const runs = dockerfile.filter((i) => i.op === 'RUN').map((i) => i.args);
    const npm = runs.filter((r) => /\bnpm\s+(ci|install|i)\b/.test(r));
    expect(npm.length).toBeGreaterThan(0);
    for (const r of npm) {
      expect(r).toMatch(/\bnpm ci\b/);
      expect(r).toContain('--ignore-scripts');
    }
    // the runtime stage takes node_modules from the deps stage only: no install of its own
    expect(final.filter((i) => i.op === 'RUN' && /\bnpm\b/.test(i.args))).toEqual([]);
    expect(final.some((i) => i.op === 'COPY' && /--from=deps\s+\/app\/node_modules\b/.test(i.args))).toBe(true);
    const depsInstall = stageNamed('deps').filter((i) => i.op === 'RUN' && /\bnpm ci\b/.test(i.args));
    expect(depsInstall.length).toBe(1);
    expect(depsInstall[0]!.args).toContain('--omit=dev');
    // and the compiled build from the build stage, made by the package's own build script
    expect(final.some((i) => i.op === 'COPY' && /--from=build\s+\/app\/dist\b/.test(i.args))).toBe(true);
    expect(stageNamed('build').some((i) => i.op === 'RUN' && /\bnpm run build\b/.test(i.args))).toBe(true);
  });

  it('runs as a non-root user', () => {
    const users = final.filter((i) => i.op === 'USER');
    expect(users.length).toBeGreaterThan(0);
    const user = users.at(-1)!.args.split(':')[0]!;
    expect(user).not.toMatch(/^(root|0)$/);
    expect(user).toBe('65532'); // numeric, so runAsNonRoot can verify it; the uid the pod specs use
  });

  it('has the compiled mailfleet bin as ENTRYPOINT (exec form), the one the npm package runs', () => {
    const ep = final.filter((i) => i.op === 'ENTRYPOINT').at(-1);
    expect(ep).toBeDefined();
    expect(JSON.parse(ep!.args)).toEqual(['node', '/app/dist/bin/mailfleet.js']);
    expect(pkg).toHaveProperty('bin.mailfleet', 'dist/bin/mailfleet.js');
  });

  it('compiles sources that exist, are not excluded by .dockerignore, and cover every import of the entrypoint', () => {
    const copied: string[] = [];
    for (const c of [...stageNamed('build'), ...final].filter((i) => i.op === 'COPY' && !i.args.includes('--from='))) {
      const parts = c.args.split(/\s+/).filter((p) => !p.startsWith('--'));
      for (const src of parts.slice(0, -1)) {
        expect(fs.existsSync(path.join(repoRoot, src)), `COPY ${src}: not in the repository`).toBe(true);
        expect(dockerignored(src, ignore), `COPY ${src}: excluded by .dockerignore`).toBe(false);
        copied.push(src);
      }
    }
    for (const src of dockerfile.filter((i) => i.op === 'COPY' && !i.args.includes('--from=')).flatMap((i) => i.args.split(/\s+/).slice(0, -1))) {
      expect(fs.existsSync(path.join(repoRoot, src)), `COPY ${src}`).toBe(true);
      expect(dockerignored(src, ignore), `COPY ${src}: excluded by .dockerignore`).toBe(false);
    }
    // operator/main.ts as well: `mailfleet operator` runs it (through cli/ once wired there)
    const { files, packages } = importClosure([path.join(repoRoot, 'bin/mailfleet.ts'), path.join(repoRoot, 'operator/main.ts')]);
    expect(files.size).toBeGreaterThan(20);
    const outside = [...files].map((f) => path.relative(repoRoot, f))
      .filter((f) => !copied.some((c) => f === c || f.startsWith(`${c.replace(/\/$/, '')}/`)));
    expect(outside, 'imported by bin/mailfleet.ts but not copied into the build stage').toEqual([]);
    const notProd = [...packages].filter((p) => !(p in pkg.dependencies));
    expect(notProd, 'imported at runtime but not a production dependency (npm ci --omit=dev leaves it out)').toEqual([]);
    // and the things that must never be in the image's context
    for (const p of ['node_modules', '.git', 'test', '.mailfleet']) expect(dockerignored(p, ignore), p).toBe(true);
  });
});
