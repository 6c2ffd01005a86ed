// "No write when nothing changed": an apply is skipped when the live object already holds
// every field we would set (a subset comparison, so server defaults do not count as drift)
// and carries the hash of the intent we last applied (so a field we stopped setting, which
// SSA would then remove, still triggers one apply).
import { createHash } from 'node:crypto';
import { INTENT_ANNOTATION, type KubeObject } from '../render/objects.ts';

export function canonical(v: unknown): string {
  return JSON.stringify(v, (_k, val) => (val && typeof val === 'object' && !Array.isArray(val)
    ? Object.fromEntries(Object.keys(val).sort().map((k) => [k, (val as Record<string, unknown>)[k]]))
    : val));
}

export function intentHash(obj: KubeObject): string {
  return createHash('sha256').update(canonical(obj)).digest('base64url').slice(0, 22);
}

export function withIntent(obj: KubeObject): KubeObject {
  const hash = intentHash(obj);
  return { ...obj, metadata: { ...obj.metadata, annotations: { ...obj.metadata.annotations, [INTENT_ANNOTATION]: hash } } };
}

const QTY = /^([+-]?[0-9.]+)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$/;
const MULT: Record<string, number> = { m: 1e-3, k: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15, E: 1e18, Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, Pi: 2 ** 50, Ei: 2 ** 60 };
function quantity(v: unknown): number | undefined {
  if (typeof v === 'number') return v;
  if (typeof v !== 'string') return undefined;
  const m = QTY.exec(v);
  return m ? Number(m[1]) * (m[2] ? MULT[m[2]] ?? 1 : 1) : undefined;
}

/** Does `live` hold every value of `want`? Quantities compare by value ("0.5" = "500m"). */
export function isSubset(want: unknown, live: unknown): boolean {
  if (want === live) return true;
  if (Array.isArray(want)) {
    return Array.isArray(live) && live.length === want.length && want.every((w, i) => isSubset(w, live[i]));
  }
  if (want && typeof want === 'object') {
    if (!live || typeof live !== 'object' || Array.isArray(live)) return false;
    return Object.entries(want).every(([k, v]) => isSubset(v, (live as Record<string, unknown>)[k]));
  }
  const a = quantity(want);
  const b = quantity(live);
  if (typeof want === 'string' && a !== undefined && b !== undefined && QTY.test(want)) return Math.abs(a - b) < 1e-9 * Math.max(1, Math.abs(a));
  return false;
}

export function needsApply(desired: KubeObject, live: KubeObject | undefined): boolean {
  if (!live) return true;
  const hash = desired.metadata.annotations?.[INTENT_ANNOTATION];
  if (live.metadata.annotations?.[INTENT_ANNOTATION] !== hash) return true;
  const { metadata, ...rest } = desired;
  const { annotations, ...metaRest } = metadata;
  return !isSubset({ ...rest, metadata: { ...metaRest, annotations } }, live);
}
