// GitOps readers of MailFleet status, as the tests apply them to objects: Argo CD's health
// Lua (run by a real Lua interpreter) and kstatus' generic rules (what Flux and kpt use for
// custom resources; a transcription of sigs.k8s.io/cli-utils pkg/kstatus/status/generic.go).
import { execFileSync } from 'node:child_process';
import path from 'node:path';

export const HEALTH_LUA = path.resolve(import.meta.dirname, '../../charts/mailfleet/files/argocd/health.lua');

/** A JSON value as a Lua table constructor (null becomes nil, i.e. the key is absent). */
export function toLua(v: unknown): string {
  if (v === null || v === undefined) return 'nil';
  if (typeof v === 'boolean' || typeof v === 'number') return String(v);
  if (typeof v === 'string') return `"${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n').replace(/\r/g, '\\r')}"`;
  if (Array.isArray(v)) return `{${v.map(toLua).join(', ')}}`;
  return `{${Object.entries(v as Record<string, unknown>).filter(([, x]) => x !== null && x !== undefined)
    .map(([k, x]) => `[${toLua(k)}] = ${toLua(x)}`).join(', ')}}`;
}

export interface Health { status: string; message: string }

/** Runs the Argo CD health script on obj with lua5.4, as Argo does: obj is a global, the chunk returns hs. */
export function argoHealth(obj: unknown, lua = 'lua5.4'): Health {
  const program = `obj = ${toLua(obj)}
local chunk = assert(loadfile(${toLua(HEALTH_LUA)}))
local hs = chunk()
io.write(hs.status, "\\t", hs.message or "")`;
  const out = execFileSync(lua, ['-'], { input: program, encoding: 'utf8' });
  const [status = '', message = ''] = out.split('\t');
  return { status, message };
}

export type KStatus = 'InProgress' | 'Failed' | 'Current' | 'Terminating';

/** kstatus for a custom resource: the generic rules, then Current (no type-specific rules apply). */
export function kstatus(obj: any): KStatus {
  if (obj.metadata?.deletionTimestamp) return 'Terminating';
  const gen = obj.metadata?.generation;
  const observed = obj.status?.observedGeneration;
  if (gen !== undefined && observed !== undefined && observed !== gen) return 'InProgress';
  for (const c of obj.status?.conditions ?? []) {
    if (c.type === 'Reconciling' && c.status === 'True') return 'InProgress';
    if (c.type === 'Stalled' && c.status === 'True') return 'Failed';
  }
  return 'Current';
}
