// List and watch of one kind on the API server: the I/O under a reflector. Paged lists
// through Kube; watches through @kubernetes/client-node's Watch, whose inactivity timer
// (set just above the server-side timeout) ends a connection that went quiet without
// closing. An ERROR event ends the watch: 410 Gone as 'gone', anything else as an error.
import { Watch } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { KubeObject } from '../render/objects.ts';
import type { Kube } from './kube.ts';
import { collectionPath, resourceFor } from './resources.ts';

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK';
export type WatchEnd = 'closed' | 'gone' | Error;

export interface ListPage<T> {
  items: T[];
  resourceVersion: string;
  continue?: string;
}

export interface ListWatch<T extends KubeObject> {
  /** One page of the list (500 objects), from `cont` when continuing. */
  list(cont: string | undefined): Promise<ListPage<T>>;
  /** Watches from resourceVersion rv; resolves with how the watch ended; aborting ends it ('closed'). */
  watch(rv: string, timeoutSeconds: number, onEvent: (type: WatchEventType, obj: T) => void, signal: AbortSignal): Promise<WatchEnd>;
}

/** How long client-node waits for a byte before it aborts a watch: a little past the server's timeout. */
const INACTIVITY_MARGIN_S = 30;

/** namespace: list and watch only there (a namespace-scoped install); undefined: cluster-wide. */
export function kubeListWatch<T extends KubeObject>(kube: Kube, apiVersion: string, kind: string, labelSelector: string | undefined, log: Logger, namespace?: string, fieldSelector?: string): ListWatch<T> {
  const path = collectionPath(resourceFor(apiVersion, kind), namespace);
  return {
    async list(cont) {
      const res = await kube.list<T>(apiVersion, kind, namespace, { labelSelector, fieldSelector, limit: '500', continue: cont });
      return {
        items: res.items.map((it) => ({ ...it, apiVersion, kind })),
        resourceVersion: res.metadata.resourceVersion,
        ...(res.metadata.continue ? { continue: res.metadata.continue } : {}),
      };
    },
    watch(rv, timeoutSeconds, onEvent, signal) {
      const watch = new Watch(kube.kc);
      // Reaches into client-node: requestTimeoutMs is private (default 30 s, which would end
      // every quiet watch early). The silent-stall guard; /healthz is the backstop if it fails.
      // test/unit/dependency-guards.test.ts fails if client-node stops reading it.
      (watch as unknown as { requestTimeoutMs: number }).requestTimeoutMs = (timeoutSeconds + INACTIVITY_MARGIN_S) * 1000;
      return new Promise((resolve) => {
        let ended: WatchEnd | undefined;
        let ctrl: AbortController | undefined;
        const finish = (v: WatchEnd) => { ended ??= v; resolve(ended); };
        const abort = () => ctrl?.abort();
        signal.addEventListener('abort', abort, { once: true });
        watch.watch(path, { resourceVersion: rv, allowWatchBookmarks: true, timeoutSeconds, labelSelector, fieldSelector }, (type, obj) => {
          if (ended) return;
          if (type === 'ERROR') {
            const { code, message } = (obj ?? {}) as { code?: number; message?: string };
            log.info({ kind, namespace, code, message }, 'watch error event');
            ended = code === 410 ? 'gone' : new Error(`watch ERROR event: ${code ?? ''} ${message ?? ''}`.trim());
            abort();
            return;
          }
          onEvent(type as WatchEventType, { ...(obj as T), apiVersion, kind });
        }, (err) => {
          signal.removeEventListener('abort', abort);
          if (err && (err as { statusCode?: number }).statusCode === 410) finish('gone');
          else if (err && !signal.aborted) finish(err instanceof Error ? err : new Error(String(err)));
          else finish('closed');
        }).then((c) => {
          ctrl = c;
          if (signal.aborted || ended) c.abort();
        }, (e: Error) => finish(e));
      });
    },
  };
}
