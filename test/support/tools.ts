// Tiers that need a system tool (swaks, smtp-sink, redis-server, cluster binaries).
// On a person's machine a missing tool skips the tier loudly; in CI it is a failure,
// because a green CI that silently skipped a tier is a lie.
import { execFileSync } from 'node:child_process';

export const inCI = process.env.CI === 'true' || process.env.CI === '1';

export function which(tool: string): string | undefined {
  try {
    return execFileSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).trim() || undefined;
  } catch {
    return undefined;
  }
}

/** Returns true when every tool is present; otherwise warns (or throws in CI). */
export function haveTools(tier: string, tools: string[]): boolean {
  const missing = tools.filter((t) => !which(t));
  if (missing.length === 0) return true;
  const msg = `[${tier}] missing system tools: ${missing.join(', ')} (install them with .ci/install-deps)`;
  if (inCI) throw new Error(`${msg}; CI=true forbids skipping a tier`);
  console.warn(`\n*** SKIPPING TIER ${tier}: ${msg} ***\n`);
  return false;
}
