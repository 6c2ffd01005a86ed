// Runs a container of a rendered pod template with podman the way a kubelet would: the
// user, group and fsGroup, read-only root filesystem, capabilities, no-new-privileges,
// seccomp, env (fieldRefs resolved), args, grace period, and every volume mount with the
// content and permissions the kubelet gives it (ConfigMap and Secret files, emptyDirs, the
// claim of a volumeClaimTemplate). Everything is READ from the pod template, so a change in
// the operator's renderer changes what the image test runs; a field the translation does not
// know is an error rather than silently ignored.
import fs from 'node:fs';
import path from 'node:path';

type Obj = Record<string, any>;

export interface PodRun {
  /** podman run arguments, up to and including the image and its args. */
  args: string[];
  /** Namespaced sysctls the pod asks for; the caller sets them in the pod's network namespace. */
  sysctls: { name: string; value: string }[];
  /** The effective uid/gid/supplementary groups the container runs with. */
  user: { uid: number; gid: number; groups: number[] };
  readOnlyRoot: boolean;
  capDrop: string[];
  capAdd: string[];
  noNewPrivileges: boolean;
  /** httpGet probes with their named ports resolved. */
  probes: Record<'readinessProbe' | 'livenessProbe' | 'startupProbe', { path: string; port: number } | undefined>;
  /** mountPath -> host directory, per volume name. */
  volumes: Record<string, { hostDir: string; mountPath: string; readOnly: boolean }>;
}

export interface PodRunInput {
  /** A Deployment or StatefulSet as rendered. */
  workload: Obj;
  containerName: string;
  /** Objects the volumes refer to (ConfigMaps and Secrets by name), as rendered or given by the test. */
  objects: Obj[];
  /** Where volume contents are laid out; a claim's directory survives between runs of the same pod. */
  dir: string;
  podName: string;
  /** The network namespace of the pod (podman --network=ns:PATH). */
  netns: string;
  /** podman arguments added before the image: what a cluster would add (e.g. the API credentials of a ServiceAccount). */
  extra?: string[];
}

const KNOWN_POD_SECURITY = new Set(['runAsNonRoot', 'runAsUser', 'runAsGroup', 'fsGroup', 'seccompProfile', 'sysctls']);
const KNOWN_CONTAINER_SECURITY = new Set(['allowPrivilegeEscalation', 'readOnlyRootFilesystem', 'runAsNonRoot', 'runAsUser', 'runAsGroup', 'privileged', 'capabilities', 'seccompProfile']);

function must<T>(v: T | undefined, what: string): T {
  if (v === undefined) throw new Error(`pod-runner: ${what}`);
  return v;
}

function decode(obj: Obj): Record<string, Buffer> {
  const out: Record<string, Buffer> = {};
  for (const [k, v] of Object.entries((obj.data ?? {}) as Record<string, string>)) out[k] = obj.kind === 'Secret' ? Buffer.from(v, 'base64') : Buffer.from(v);
  for (const [k, v] of Object.entries((obj.stringData ?? {}) as Record<string, string>)) out[k] = Buffer.from(v);
  return out;
}

/** The namespaced sysctls a workload's pods ask for (to set in the pod's network namespace first). */
export function podSysctls(workload: Obj): { name: string; value: string }[] {
  return (workload.spec?.template?.spec?.securityContext?.sysctls ?? []) as { name: string; value: string }[];
}

export function podRun(input: PodRunInput): PodRun {
  const pod = must(input.workload.spec?.template?.spec as Obj | undefined, `${input.workload.kind} has no pod template`);
  const c = must((pod.containers as Obj[]).find((x) => x.name === input.containerName), `no container ${input.containerName}`);
  const psc: Obj = pod.securityContext ?? {};
  const csc: Obj = c.securityContext ?? {};
  for (const k of Object.keys(psc)) if (!KNOWN_POD_SECURITY.has(k)) throw new Error(`pod-runner: pod securityContext.${k} is not translated`);
  for (const k of Object.keys(csc)) if (!KNOWN_CONTAINER_SECURITY.has(k)) throw new Error(`pod-runner: container securityContext.${k} is not translated`);
  if (csc.privileged) throw new Error('pod-runner: a privileged container is never run');

  const uid = Number(csc.runAsUser ?? psc.runAsUser ?? NaN);
  const gid = Number(csc.runAsGroup ?? psc.runAsGroup ?? uid);
  if (!Number.isInteger(uid)) throw new Error('pod-runner: no runAsUser (the image user would be used; declare it)');
  if ((csc.runAsNonRoot ?? psc.runAsNonRoot) && uid === 0) throw new Error('pod-runner: runAsNonRoot with uid 0');
  const fsGroup = psc.fsGroup as number | undefined;
  const groups = fsGroup !== undefined && fsGroup !== gid ? [fsGroup] : [];

  const args: string[] = ['--network', `ns:${input.netns}`, '--hostname', input.podName, '--user', `${uid}:${gid}`];
  for (const g of groups) args.push('--group-add', String(g));
  const readOnlyRoot = csc.readOnlyRootFilesystem === true;
  // --read-only-tmpfs=false: podman would add tmpfs on /tmp, /run, /var/tmp, which a pod does not get.
  if (readOnlyRoot) args.push('--read-only', '--read-only-tmpfs=false');
  const capDrop: string[] = csc.capabilities?.drop ?? [];
  const capAdd: string[] = csc.capabilities?.add ?? [];
  for (const cap of capDrop) args.push(`--cap-drop=${cap}`);
  for (const cap of capAdd) args.push(`--cap-add=${cap}`);
  const noNewPrivileges = csc.allowPrivilegeEscalation === false;
  if (noNewPrivileges) args.push('--security-opt=no-new-privileges');
  const seccomp = (csc.seccompProfile ?? psc.seccompProfile)?.type;
  if (seccomp === 'Unconfined') args.push('--security-opt=seccomp=unconfined');
  else if (seccomp !== undefined && seccomp !== 'RuntimeDefault') throw new Error(`pod-runner: seccompProfile ${seccomp} is not translated`);
  if (pod.terminationGracePeriodSeconds !== undefined) args.push('--stop-timeout', String(pod.terminationGracePeriodSeconds));

  for (const e of (c.env ?? []) as Obj[]) {
    let v: string;
    if (e.value !== undefined) v = String(e.value);
    else if (e.valueFrom?.fieldRef?.fieldPath === 'metadata.name') v = input.podName;
    else if (e.valueFrom?.fieldRef?.fieldPath === 'metadata.namespace') v = input.workload.metadata?.namespace ?? 'default';
    else throw new Error(`pod-runner: env ${e.name} source is not translated`);
    args.push('-e', `${e.name}=${v}`);
  }

  // --- volumes ---
  const claimTemplates = new Set(((input.workload.spec?.volumeClaimTemplates ?? []) as Obj[]).map((t) => t.metadata?.name as string));
  const podVolumes = new Map(((pod.volumes ?? []) as Obj[]).map((v) => [v.name as string, v]));
  const volumes: PodRun['volumes'] = {};
  const byName = (kind: string, name: string) => must(input.objects.find((o) => o.kind === kind && o.metadata?.name === name), `${kind} ${name} (a volume source) was not given`);
  const owner = fsGroup ?? 0;
  for (const m of (c.volumeMounts ?? []) as Obj[]) {
    const name = m.name as string;
    const hostDir = path.join(input.dir, 'volumes', name);
    const v = podVolumes.get(name);
    const writeFiles = (files: Record<string, Buffer>, mode: number) => {
      fs.rmSync(hostDir, { recursive: true, force: true });
      fs.mkdirSync(hostDir, { recursive: true });
      for (const [k, data] of Object.entries(files)) {
        const f = path.join(hostDir, k);
        fs.writeFileSync(f, data, { mode });
        fs.chmodSync(f, mode);
        fs.chownSync(f, 0, owner); // the kubelet gives projected files to root:fsGroup
      }
      fs.chmodSync(hostDir, 0o755);
    };
    if (v?.configMap) writeFiles(decode(byName('ConfigMap', v.configMap.name)), v.configMap.defaultMode ?? 0o644);
    else if (v?.secret) writeFiles(decode(byName('Secret', v.secret.secretName)), v.secret.defaultMode ?? 0o644);
    else if (v?.downwardAPI) {
      // As the kubelet projects them: a map field is one `key="value"` line per entry, sorted
      // by key, values quoted as Go's %q does (JSON quoting agrees for the values a test sets).
      const meta = { ...(input.workload.spec?.template?.metadata ?? {}), name: input.podName, namespace: input.workload.metadata?.namespace ?? 'default' } as Obj;
      const files: Record<string, Buffer> = {};
      for (const item of (v.downwardAPI.items ?? []) as Obj[]) {
        const field = item.fieldRef?.fieldPath as string | undefined;
        const value = field === 'metadata.annotations' ? meta.annotations ?? {} : field === 'metadata.labels' ? meta.labels ?? {}
          : field === 'metadata.name' ? meta.name : field === 'metadata.namespace' ? meta.namespace
          : (() => { throw new Error(`pod-runner: downwardAPI field ${field} is not translated`); })();
        files[item.path as string] = Buffer.from(typeof value === 'string' ? value
          : Object.keys(value as Record<string, string>).sort().map((k) => `${k}=${JSON.stringify((value as Record<string, string>)[k])}\n`).join(''));
      }
      writeFiles(files, v.downwardAPI.defaultMode ?? 0o644);
    } else if (v?.emptyDir) {
      fs.rmSync(hostDir, { recursive: true, force: true });
      fs.mkdirSync(hostDir, { recursive: true });
      fs.chmodSync(hostDir, 0o777); // as the kubelet makes an emptyDir
    } else if (!v && claimTemplates.has(name)) {
      // A claim keeps its content between runs of the same pod (a StatefulSet's PVC).
      if (!fs.existsSync(hostDir)) {
        fs.mkdirSync(hostDir, { recursive: true });
        fs.chownSync(hostDir, 0, owner);
        fs.chmodSync(hostDir, fsGroup !== undefined ? 0o2775 : 0o755); // fsGroup: group-owned, setgid
      }
    } else throw new Error(`pod-runner: volume ${name} has a source that is not translated: ${JSON.stringify(v)}`);
    const readOnly = m.readOnly === true;
    volumes[name] = { hostDir, mountPath: m.mountPath, readOnly };
    args.push('-v', `${hostDir}:${m.mountPath}${readOnly ? ':ro' : ''}`);
  }

  const portOf = (p: string | number) => (typeof p === 'number' ? p : must((c.ports as Obj[] | undefined)?.find((x) => x.name === p)?.containerPort, `no port named ${p}`));
  const probe = (k: 'readinessProbe' | 'livenessProbe' | 'startupProbe') => {
    const p = c[k] as Obj | undefined;
    if (!p) return undefined;
    const g = must(p.httpGet as Obj | undefined, `${k} is not an httpGet probe`);
    return { path: g.path as string, port: portOf(g.port) };
  };

  args.push(...(input.extra ?? []));
  if (c.command) args.push('--entrypoint', JSON.stringify(c.command));
  args.push(must(c.image as string | undefined, 'container has no image'), ...((c.args ?? []) as string[]));
  return {
    args,
    sysctls: podSysctls(input.workload),
    user: { uid, gid, groups },
    readOnlyRoot, capDrop, capAdd, noNewPrivileges,
    probes: { readinessProbe: probe('readinessProbe'), livenessProbe: probe('livenessProbe'), startupProbe: probe('startupProbe') },
    volumes,
  };
}
