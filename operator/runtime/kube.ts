// A thin REST client over @kubernetes/client-node's KubeConfig (auth, TLS, in-cluster
// tokens): one request() that every call goes through, so API use is counted by verb and
// resource (the "quiet cluster makes zero writes" check reads those counters).
// Server-side apply is a PATCH with application/apply-patch+yaml on any path, /status
// included, which the generated clients make awkward.
import https from 'node:https';
import http from 'node:http';
import { KubeConfig } from '@kubernetes/client-node';
import type { Counter } from 'prom-client';
import { FIELD_MANAGER, type KubeObject } from '../render/objects.ts';
import { collectionPath, objectPath, resourceFor } from './resources.ts';

export class ApiError extends Error {
  readonly status: number;
  readonly body: unknown;
  constructor(method: string, path: string, status: number, body: unknown) {
    const msg = typeof body === 'object' && body && 'message' in body ? String((body as { message: unknown }).message) : String(body).slice(0, 300);
    super(`${method} ${path}: HTTP ${status}: ${msg}`);
    this.name = 'ApiError';
    this.status = status;
    this.body = body;
  }
}

export interface KubeOptions {
  kubeconfig: KubeConfig;
  requests?: Counter<'verb' | 'resource' | 'code'>;
  timeoutMs?: number;
}

const WRITE_VERBS = new Set(['create', 'update', 'patch', 'delete', 'apply']);
export const isWrite = (verb: string) => WRITE_VERBS.has(verb);

export class Kube {
  readonly kc: KubeConfig;
  private readonly requests: KubeOptions['requests'];
  private readonly agent: https.Agent;
  private readonly server: URL;
  private readonly timeoutMs: number;

  constructor(opts: KubeOptions) {
    this.kc = opts.kubeconfig;
    this.requests = opts.requests;
    const cluster = this.kc.getCurrentCluster();
    if (!cluster) throw new Error('kubeconfig has no current cluster');
    this.server = new URL(cluster.server);
    this.agent = new https.Agent({ keepAlive: true, maxSockets: 16 });
    this.timeoutMs = opts.timeoutMs ?? 30_000;
  }

  async request<T = any>(method: string, path: string, opts: { body?: unknown; contentType?: string; accept?: string; query?: Record<string, string | undefined>; verb?: string; resource?: string } = {}): Promise<T> {
    const url = new URL(path, this.server);
    for (const [k, v] of Object.entries(opts.query ?? {})) if (v !== undefined) url.searchParams.set(k, v);
    const reqOpts: https.RequestOptions = { method, headers: { accept: opts.accept ?? 'application/json' }, timeout: this.timeoutMs };
    await this.kc.applyToHTTPSOptions(reqOpts);
    reqOpts.agent = url.protocol === 'https:' ? this.agent : undefined;
    const payload = opts.body === undefined ? undefined : JSON.stringify(opts.body);
    if (payload !== undefined) {
      const headers = reqOpts.headers as Record<string, string>;
      headers['content-type'] = opts.contentType ?? 'application/json';
      // Not chunked: the API server does not read a chunked DELETE body, and the bytes left
      // on a kept-alive connection turned the next request into a 400 Bad Request.
      headers['content-length'] = String(Buffer.byteLength(payload));
    }
    const verb = opts.verb ?? method.toLowerCase();
    const resource = opts.resource ?? resourceOfPath(url.pathname);
    const lib = url.protocol === 'https:' ? https : http;
    try {
      const { status, text } = await new Promise<{ status: number; text: string }>((resolve, reject) => {
        const req = lib.request(url, reqOpts, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
          res.on('error', reject);
        });
        req.on('timeout', () => req.destroy(new Error(`timeout after ${this.timeoutMs} ms`)));
        req.on('error', reject);
        req.end(payload);
      });
      this.requests?.inc({ verb, resource, code: String(status) });
      let parsed: unknown = text;
      try { parsed = text ? JSON.parse(text) : undefined; } catch { /* not JSON */ }
      if (status >= 400) throw new ApiError(method, url.pathname, status, parsed);
      return parsed as T;
    } catch (e) {
      if (!(e instanceof ApiError)) {
        this.requests?.inc({ verb, resource, code: 'error' });
        throw new Error(`${method} ${url.pathname}: ${(e as Error).message}`, { cause: e });
      }
      throw e;
    }
  }

  get<T = KubeObject>(apiVersion: string, kind: string, name: string, namespace?: string): Promise<T> {
    return this.request<T>('GET', objectPath(resourceFor(apiVersion, kind), name, namespace));
  }

  async getOrUndefined<T = KubeObject>(apiVersion: string, kind: string, name: string, namespace?: string): Promise<T | undefined> {
    try {
      return await this.get<T>(apiVersion, kind, name, namespace);
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) return undefined;
      throw e;
    }
  }

  /**
   * Only the object's metadata (PartialObjectMetadata): for a Secret, its labels and type
   * are known without its data ever leaving the API server. Undefined when absent.
   */
  async metadataOrUndefined(apiVersion: string, kind: string, name: string, namespace?: string): Promise<KubeObject | undefined> {
    try {
      return await this.request<KubeObject>('GET', objectPath(resourceFor(apiVersion, kind), name, namespace), {
        accept: 'application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1', verb: 'get',
      });
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) return undefined;
      throw e;
    }
  }

  /** Only the objects' metadata (PartialObjectMetadataList): a list of pods without their specs. */
  listMetadata(apiVersion: string, kind: string, namespace: string, query: Record<string, string | undefined> = {}): Promise<{ items: KubeObject[] }> {
    return this.request('GET', collectionPath(resourceFor(apiVersion, kind), namespace), {
      query, accept: 'application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1', verb: 'list',
    });
  }

  list<T = KubeObject>(apiVersion: string, kind: string, namespace?: string, query: Record<string, string | undefined> = {}): Promise<{ items: T[]; metadata: { resourceVersion: string; continue?: string } }> {
    return this.request('GET', collectionPath(resourceFor(apiVersion, kind), namespace), { query, verb: 'list' });
  }

  /** Server-side apply; force only for objects we own (the caller decides). */
  apply<T = KubeObject>(obj: KubeObject, force: boolean, subresource?: 'status'): Promise<T> {
    const r = resourceFor(obj.apiVersion, obj.kind);
    const path = objectPath(r, obj.metadata.name, obj.metadata.namespace) + (subresource ? `/${subresource}` : '');
    return this.request<T>('PATCH', path, {
      body: obj, contentType: 'application/apply-patch+yaml', verb: 'apply',
      query: { fieldManager: FIELD_MANAGER, force: force ? 'true' : undefined },
    });
  }

  create<T = KubeObject>(obj: KubeObject): Promise<T> {
    return this.request<T>('POST', collectionPath(resourceFor(obj.apiVersion, obj.kind), obj.metadata.namespace), { body: obj, verb: 'create', query: { fieldManager: FIELD_MANAGER } });
  }

  update<T = KubeObject>(obj: KubeObject): Promise<T> {
    const r = resourceFor(obj.apiVersion, obj.kind);
    return this.request<T>('PUT', objectPath(r, obj.metadata.name, obj.metadata.namespace), { body: obj, verb: 'update', query: { fieldManager: FIELD_MANAGER } });
  }

  async delete(apiVersion: string, kind: string, name: string, namespace?: string, uid?: string): Promise<void> {
    try {
      await this.request('DELETE', objectPath(resourceFor(apiVersion, kind), name, namespace), {
        body: { kind: 'DeleteOptions', apiVersion: 'v1', propagationPolicy: 'Background', ...(uid ? { preconditions: { uid } } : {}) },
      });
    } catch (e) {
      if (e instanceof ApiError && (e.status === 404 || e.status === 409)) return;
      throw e;
    }
  }

  close(): void {
    this.agent.destroy();
  }
}

function resourceOfPath(p: string): string {
  const parts = p.split('/').filter(Boolean);
  // /api/v1/namespaces/ns/secrets/name[/status] or /apis/g/v/namespaces/ns/plural/name
  const start = parts[0] === 'api' ? 2 : 3;
  const rest = parts.slice(start);
  if (rest[0] === 'namespaces' && rest.length >= 3) return rest[2] ?? 'namespaces';
  return rest[0] ?? 'unknown';
}

export function loadKubeConfig(file?: string): KubeConfig {
  const kc = new KubeConfig();
  if (file) kc.loadFromFile(file);
  else kc.loadFromDefault();
  return kc;
}
