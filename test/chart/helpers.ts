// Shared by the chart tests: paths, a helm runner that needs no cluster, and the parsed
// multi-document output of `helm template`.
import { execFile } from 'node:child_process';
import path from 'node:path';
import YAML from 'yaml';

export const repoRoot = path.resolve(import.meta.dirname, '../..');
export const chartDir = path.join(repoRoot, 'charts/mailfleet');
/** helm built from source defaults to Kubernetes v1.20 for template/lint; say what we target. */
export const KUBE_VERSION = '1.36.0';

export interface RunResult { code: number; stdout: string; stderr: string }

/** Runs helm with a private HOME-less config (no repos, no plugins); never throws. */
export function helm(bin: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<RunResult> {
  return new Promise((resolve) => {
    execFile(bin, args, { env: { ...process.env, ...env }, timeout: 60_000, maxBuffer: 32 * 1024 * 1024, encoding: 'utf8' },
      (err, stdout, stderr) => {
        const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
        resolve({ code, stdout, stderr });
      });
  });
}

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  [k: string]: any;
}

/** The objects of a multi-document YAML stream (empty documents dropped). */
export function parseObjects(text: string): K8sObject[] {
  return YAML.parseAllDocuments(text).map((d) => d.toJS() as K8sObject | null).filter((o): o is K8sObject => !!o);
}

export function find(objs: K8sObject[], kind: string, name?: string): K8sObject {
  const o = objs.find((x) => x.kind === kind && (name === undefined || x.metadata.name === name));
  if (!o) throw new Error(`no ${kind}${name ? `/${name}` : ''} in [${objs.map((x) => `${x.kind}/${x.metadata.name}`).join(', ')}]`);
  return o;
}
