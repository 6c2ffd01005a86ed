// The one duration grammar of MailFleet, shared by the relay config and the CRDs: a whole
// number with a unit ("200ms", "90s", "15m", "2h", "5d"). In a relay config file a bare
// number is also accepted and means seconds. Internally everything is milliseconds.
//
// DURATION_PATTERN is written for RE2 as well, because the CRDs hand it to the API server.
import { z } from 'zod';

export const DURATION_PATTERN = '^[0-9]+(ms|s|m|h|d)$';
const DURATION_RE = new RegExp(DURATION_PATTERN);
const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

export const DURATION_HINT = 'a whole number with a unit: ms, s, m, h or d (e.g. 200ms, 90s, 15m, 5d)';

export function parseDuration(value: string | number): number {
  if (typeof value === 'number') {
    if (!Number.isFinite(value) || value < 0) throw new Error(`${value} is not a duration (a number means seconds and must be 0 or more)`);
    return value * 1000;
  }
  const m = DURATION_RE.exec(value);
  const ms = m ? Number(value.slice(0, -(m[1]!.length))) * UNIT_MS[m[1] as keyof typeof UNIT_MS] : Number.NaN;
  if (!Number.isSafeInteger(ms)) throw new Error(`"${value}" is not a duration (${DURATION_HINT})`);
  return ms;
}

/** zod type for relay config files: "15m" | 900 → 900000 (ms). */
export const duration = z.union([z.string(), z.number().nonnegative()]).transform((v, ctx) => {
  try {
    return parseDuration(v);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: (err as Error).message });
    return z.NEVER;
  }
});
