// The I/O around the drain plan (operator/render/drain.ts): reading the pods that may
// leave (a StatefulSet's by ordinal, a Deployment's by its selector) and their /status, and
// the writes the plan asks for — the drain annotation on pods,
// the deletion of emptied volumes, the finalizer. Progress is read through the API server's
// pods/proxy subresource (GET /api/v1/namespaces/NS/pods/POD:9464/proxy/status), so the
// operator needs no network path to the pods and RBAC says exactly what it may read.
import fs from 'node:fs';
import type { Logger } from 'pino';
import { DRAIN_ANNOTATION, DRAIN_FINALIZER, podName, type DrainPlan, type DrainPod, type PodProgress } from '../render/drain.ts';
import { relayNames, relaySelector, selectorString, type EmailRelay, type KubeObject } from '../render/objects.ts';
import { HTTP_PORT } from '../render/relay-paths.ts';
import { ApiError, type Kube } from '../runtime/kube.ts';

/** Reads one relay pod's /status. */
export interface PodStatusReader {
  read(namespace: string, pod: string): Promise<PodProgress>;
}

function progressOf(body: unknown): PodProgress {
  const b = (typeof body === 'string' ? JSON.parse(body) : body) as { draining?: unknown; queued?: unknown; sessions?: unknown } | undefined;
  if (!b || typeof b.draining !== 'boolean' || typeof b.queued !== 'number') return { error: 'the pod\'s /status has no draining/queued (an older relay image?)' };
  return { draining: b.draining, queued: b.queued, ...(typeof b.sessions === 'number' ? { sessions: b.sessions } : {}) };
}

/** Production: through the API server's proxy to the pod's metrics port. */
export class ProxyStatusReader implements PodStatusReader {
  private readonly kube: Kube;
  constructor(kube: Kube) { this.kube = kube; }

  async read(namespace: string, pod: string): Promise<PodProgress> {
    try {
      const body = await this.kube.request('GET', `/api/v1/namespaces/${namespace}/pods/${encodeURIComponent(pod)}:${HTTP_PORT}/proxy/status`, { verb: 'get', resource: 'pods/proxy' });
      return progressOf(body);
    } catch (e) {
      return { error: (e as Error).message };
    }
  }
}

/**
 * TEST SEAM (`--test-only-pod-status-urls FILE`): where the test control plane runs no
 * containers, the test runs the relay processes itself and lists, in FILE, the base URL
 * of each pod's HTTP port as JSON `{"namespace/pod": "http://127.0.0.1:PORT"}` (re-read
 * on every call). Only the way /status is reached differs; what is done with it is the same.
 */
export class TestOnlyUrlStatusReader implements PodStatusReader {
  private readonly file: string;
  constructor(file: string) { this.file = file; }

  async read(namespace: string, pod: string): Promise<PodProgress> {
    try {
      const urls = JSON.parse(fs.readFileSync(this.file, 'utf8')) as Record<string, string>;
      const base = urls[`${namespace}/${pod}`];
      if (!base) return { error: `no URL for ${namespace}/${pod} in ${this.file}` };
      const res = await fetch(`${base}/status`, { signal: AbortSignal.timeout(5_000) });
      return progressOf(await res.text());
    } catch (e) {
      return { error: (e as Error).message };
    }
  }
}

export class DrainIO {
  private readonly kube: Kube;
  private readonly reader: PodStatusReader;
  private readonly log: Logger;

  constructor(kube: Kube, reader: PodStatusReader, log: Logger) {
    this.kube = kube;
    this.reader = reader;
    this.log = log;
  }

  /** The pods of ordinals below `count`, and the /status of those already asked to drain. */
  async observe(relay: EmailRelay, count: number): Promise<{ pods: DrainPod[]; progress: Map<string, PodProgress> }> {
    const ns = relay.metadata.namespace ?? 'default';
    const pods: DrainPod[] = [];
    const progress = new Map<string, PodProgress>();
    for (let ordinal = 0; ordinal < count; ordinal++) {
      const name = podName(relay.metadata.name, ordinal);
      const pod = await this.kube.getOrUndefined<KubeObject>('v1', 'Pod', name, ns);
      const drainRequested = pod?.metadata.annotations?.[DRAIN_ANNOTATION];
      pods.push({ ordinal, name, exists: !!pod && !pod.metadata.deletionTimestamp, drainRequested });
      if (pod && drainRequested) progress.set(name, await this.reader.read(ns, name));
    }
    return { pods, progress };
  }

  /**
   * A Deployment's pods (no ordinals): those with the relay's selector labels that its own
   * ReplicaSets control (a pod someone else labelled alike is neither asked nor waited for),
   * metadata only, and the /status of those already asked to drain.
   */
  async observeDeployment(relay: EmailRelay): Promise<{ pods: DrainPod[]; progress: Map<string, PodProgress> }> {
    const ns = relay.metadata.namespace ?? 'default';
    const workload = relayNames(relay.metadata.name).workload;
    const list = await this.kube.listMetadata('v1', 'Pod', ns, { labelSelector: selectorString(relaySelector(relay.metadata.name)) });
    const pods: DrainPod[] = [];
    const progress = new Map<string, PodProgress>();
    for (const pod of list.items) {
      const hash = pod.metadata.labels?.['pod-template-hash'];
      const owner = pod.metadata.ownerReferences?.find((r) => r.controller);
      if (!hash || owner?.kind !== 'ReplicaSet' || owner.name !== `${workload}-${hash}`) continue;
      const name = pod.metadata.name;
      const drainRequested = pod.metadata.annotations?.[DRAIN_ANNOTATION];
      pods.push({ name, exists: !pod.metadata.deletionTimestamp, drainRequested });
      if (drainRequested && !pod.metadata.deletionTimestamp) progress.set(name, await this.reader.read(ns, name));
    }
    pods.sort((a, b) => a.name.localeCompare(b.name));
    return { pods, progress };
  }

  /** The pod-side writes of a plan: drain requests added and withdrawn. */
  async annotate(relay: EmailRelay, plan: DrainPlan, now: Date): Promise<void> {
    const ns = relay.metadata.namespace ?? 'default';
    const at = now.toISOString().replace(/\.\d{3}Z$/, 'Z');
    for (const pod of plan.annotate) {
      this.log.info({ namespace: ns, name: relay.metadata.name, pod }, 'asking pod to drain its queue');
      await this.patchPod(ns, pod, at);
    }
    for (const pod of plan.withdraw) {
      this.log.info({ namespace: ns, name: relay.metadata.name, pod }, 'drain request withdrawn: the pod stays');
      await this.patchPod(ns, pod, null);
    }
  }

  private async patchPod(ns: string, pod: string, value: string | null): Promise<void> {
    try {
      await this.kube.request('PATCH', `/api/v1/namespaces/${ns}/pods/${encodeURIComponent(pod)}`, {
        body: { metadata: { annotations: { [DRAIN_ANNOTATION]: value } } }, contentType: 'application/merge-patch+json', verb: 'patch',
      });
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) return; // gone meanwhile: the next look sees it
      throw e;
    }
  }

  /** Deletes volumes whose queue the pod reported empty (after the StatefulSet let the pod go). */
  async deleteClaims(relay: EmailRelay, claims: string[]): Promise<void> {
    const ns = relay.metadata.namespace ?? 'default';
    for (const claim of claims) {
      const live = await this.kube.getOrUndefined<KubeObject>('v1', 'PersistentVolumeClaim', claim, ns);
      if (!live || live.metadata.deletionTimestamp) continue;
      this.log.info({ namespace: ns, name: relay.metadata.name, claim }, 'deleting the volume of a drained pod (its queue is empty)');
      await this.kube.delete('v1', 'PersistentVolumeClaim', claim, ns, live.metadata.uid);
    }
  }

  /** Adds or removes the finalizer; a concurrent change (409) is retried by the caller's backoff. */
  async finalizer(raw: EmailRelay, action: 'add' | 'remove'): Promise<void> {
    const have = raw.metadata.finalizers ?? [];
    const finalizers = action === 'add' ? [...have, DRAIN_FINALIZER] : have.filter((f) => f !== DRAIN_FINALIZER);
    const ns = raw.metadata.namespace ?? 'default';
    this.log.info({ namespace: ns, name: raw.metadata.name, finalizer: DRAIN_FINALIZER, action }, action === 'add' ? 'finalizer added' : 'finalizer removed');
    await this.kube.request('PATCH', `/apis/mailfleet.io/v1alpha1/namespaces/${ns}/emailrelays/${encodeURIComponent(raw.metadata.name)}`, {
      // resourceVersion: the list is replaced whole, so only on top of what we read
      body: { metadata: { resourceVersion: raw.metadata.resourceVersion, finalizers } }, contentType: 'application/merge-patch+json', verb: 'patch',
    });
  }
}
