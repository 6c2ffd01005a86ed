// `npm test`: typecheck, then every test tier. Tiers whose system tools are missing skip
// loudly on a person's machine; with CI=true they fail instead (see test/support/tools.ts).
// Ends with one plain summary line ("tests: N passed, N failed, N skipped") from vitest's
// JSON report, so a reader of CI output need not parse vitest's own format.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

function run(cmd: string, args: string[]): number {
  return spawnSync(cmd, args, { stdio: 'inherit' }).status ?? 1;
}

const typecheck = run('tsc', ['--noEmit', '-p', 'tsconfig.json']);
if (typecheck !== 0) process.exit(typecheck);

const report = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'mailfleet-vitest-')), 'report.json');
const status = run('vitest', ['run', '--reporter=default', '--reporter=json', `--outputFile.json=${report}`, ...process.argv.slice(2)]);
try {
  const r = JSON.parse(fs.readFileSync(report, 'utf8')) as { numPassedTests: number; numFailedTests: number; numPendingTests: number; numTodoTests: number };
  console.log(`tests: ${r.numPassedTests} passed, ${r.numFailedTests} failed, ${r.numPendingTests + r.numTodoTests} skipped`);
} catch {
  console.log('tests: no report (vitest did not finish)');
} finally {
  fs.rmSync(path.dirname(report), { recursive: true, force: true });
}
process.exit(status);
