// Where the operator may look and write: the whole cluster, or only the namespaces named by
// --watch-namespaces (the namespace-scoped install: the operator then holds Roles in those
// namespaces and no cluster-wide list/watch, so every reflector lists and watches per
// namespace). One value, handed to the cache, so a kind added later inherits the scope.

/** undefined: every namespace; otherwise the namespaces, sorted and distinct. */
export type WatchScope = readonly string[] | undefined;

/** A DNS-1123 label, what Kubernetes accepts as a namespace name. */
const NAMESPACE_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/**
 * Parses the flag's value: a comma-separated list of namespace names. Absent: cluster-wide.
 * An empty value, an empty entry (a stray comma) or a name Kubernetes would refuse is an
 * error naming the flag: a typo must not silently widen or narrow what the operator manages.
 */
export function parseWatchNamespaces(value: string | undefined, flag = '--watch-namespaces'): WatchScope {
  if (value === undefined) return undefined;
  const parts = value.split(',').map((s) => s.trim());
  if (parts.every((p) => p === '')) throw new Error(`${flag}: empty; name at least one namespace, or leave the flag out to watch every namespace`);
  const seen = new Set<string>();
  parts.forEach((p, i) => {
    if (p === '') throw new Error(`${flag}: entry ${i + 1} of "${value}" is empty (a stray comma?)`);
    if (p.length > 63 || !NAMESPACE_NAME.test(p)) {
      throw new Error(`${flag}: "${p}" is not a namespace name (lowercase letters, digits and '-', at most 63, starting and ending with a letter or digit)`);
    }
    seen.add(p);
  });
  return [...seen].sort();
}

/** Does the scope include this namespace? */
export function inScope(scope: WatchScope, namespace: string): boolean {
  return scope === undefined || scope.includes(namespace);
}

/** For logs and messages. */
export function describeScope(scope: WatchScope): string {
  return scope === undefined ? 'all namespaces' : `namespaces ${scope.join(', ')}`;
}

/**
 * A cluster-scoped kind (Namespace, Node) cannot be watched per namespace, and a
 * namespace-scoped install holds no permission to watch it cluster-wide: a cache that asked
 * would never sync. Refused at start, naming the kind.
 */
export function assertWatchable(scope: WatchScope, kind: string, namespaced: boolean): void {
  if (scope !== undefined && !namespaced) {
    throw new Error(`${kind} is cluster-scoped: it cannot be watched under --watch-namespaces (leave it out of a namespace-scoped cache)`);
  }
}
