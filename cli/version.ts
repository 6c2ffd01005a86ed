// The package's version, read from its package.json: one level above cli/ in the sources,
// two above dist/cli/ in the compiled build.
import fs from 'node:fs';
import path from 'node:path';

export function packageVersion(): string {
  let dir = import.meta.dirname;
  for (let up = 0; up < 3; up++, dir = path.dirname(dir)) {
    try {
      const pkg = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'mailfleet' && pkg.version) return pkg.version;
    } catch {
      // not here: one level up
    }
  }
  return 'unknown';
}
