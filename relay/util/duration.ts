// Durations in config files are written the way people say them ("90s", "15m", "5d");
// a bare number means seconds. Internally everything is milliseconds.
import { z } from 'zod';

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

export function parseDuration(value: string | number): number {
  if (typeof value === 'number') return value * 1000;
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$/.exec(value);
  if (!m) throw new Error(`"${value}" is not a duration (use e.g. 30s, 15m, 2h, 5d)`);
  return Number(m[1]) * (UNIT_MS[m[2] ?? 's'] ?? 1000);
}

/** zod type: "15m" | 900 → 900000 (ms). */
export const duration = z.union([z.string(), z.number().nonnegative()]).transform((v, ctx) => {
  try {
    return parseDuration(v);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: (err as Error).message });
    return z.NEVER;
  }
});

export function formatDuration(ms: number): string {
  for (const [unit, size] of [['d', 86_400_000], ['h', 3_600_000], ['m', 60_000], ['s', 1000]] as const) {
    if (ms >= size && ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}
