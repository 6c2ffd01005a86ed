// `npm test`: typecheck, then every test tier. Tiers whose system tools are missing skip
// loudly on a person's machine; with CI=true they fail instead (see test/support/tools.ts).
import { spawnSync } from 'node:child_process';

function run(cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, { stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status ?? 1);
}

run('tsc', ['--noEmit', '-p', 'tsconfig.json']);
run('vitest', ['run', ...process.argv.slice(2)]);
