// The namespace-scoped install's runtime side: --watch-namespaces is validated (a typo is an
// error naming the flag), every reflector of the cache lists and watches per watched
// namespace (none cluster-wide), reads merge them, a namespace outside the scope is empty,
// and the Applier refuses a write outside the scope. The cluster tier
// (test/operator/namespace-scoped.test.ts) runs the operator under the chart's Roles.
import { afterEach, describe, expect, it } from 'vitest';
import type { KubeObject } from '../../../operator/render/objects.ts';
import { Applier, NotControlledError } from '../../../operator/runtime/apply.ts';
import { Cache, CacheSyncTimeoutError, OWNED_KINDS } from '../../../operator/runtime/cache.ts';
import { createOperatorMetrics } from '../../../operator/runtime/metrics.ts';
import { assertWatchable, inScope, parseWatchNamespaces } from '../../../operator/runtime/watch-scope.ts';
import { GatedSource, silentLog, unreachableKube } from './fakes.ts';

describe('parseWatchNamespaces', () => {
  it('absent: every namespace; a list: sorted, distinct, trimmed', () => {
    expect(parseWatchNamespaces(undefined)).toBeUndefined();
    expect(parseWatchNamespaces('team-b, team-a,team-b')).toEqual(['team-a', 'team-b']);
    expect(inScope(undefined, 'x')).toBe(true);
    expect(inScope(['a'], 'b')).toBe(false);
  });
  it.each([
    ['', /--watch-namespaces: empty; name at least one namespace/],
    [' , ', /--watch-namespaces: empty/],
    ['a,,b', /--watch-namespaces: entry 2 of "a,,b" is empty/],
    ['a,', /--watch-namespaces: entry 2 of "a," is empty/],
    ['Team-A', /--watch-namespaces: "Team-A" is not a namespace name/],
    ['team_a', /--watch-namespaces: "team_a" is not a namespace name/],
    ['-a', /"-a" is not a namespace name/],
    ['a/b', /"a\/b" is not a namespace name/],
    ['x'.repeat(64), /is not a namespace name/],
  ])('refuses %j', (value, message) => {
    expect(() => parseWatchNamespaces(value)).toThrow(message);
  });
});

const relay = (ns: string, name: string): KubeObject => ({ apiVersion: 'mailfleet.io/v1alpha1', kind: 'EmailRelay', metadata: { name, namespace: ns, resourceVersion: '1' } });

const closers: (() => Promise<void>)[] = [];
afterEach(async () => { for (const c of closers.splice(0)) await c(); });

/** A cache over scripted sources; `asked` records every (kind, namespace) a source was made for. */
function cache(namespaces: string[] | undefined, hold: string[] = []) {
  const asked: string[] = [];
  const sources = new Map<string, GatedSource>();
  const kube = unreachableKube();
  const c = new Cache({
    kube, log: silentLog, metrics: createOperatorMetrics(), onEvent: () => undefined, ...(namespaces ? { namespaces } : {}),
    source: (_v, kind, _l, namespace) => {
      const at = `${kind}@${namespace ?? '*'}`;
      asked.push(at);
      const items = kind === 'EmailRelay' ? (namespace ? [relay(namespace, 'r')] : [relay('a', 'r'), relay('z', 'r')]) : [];
      const s = new GatedSource(items, !hold.includes(at));
      sources.set(at, s);
      return s;
    },
  });
  closers.push(async () => { await c.close(); kube.close(); });
  return { c, asked, sources, kube };
}

describe('assertWatchable', () => {
  it('refuses a cluster-scoped kind under --watch-namespaces, allows it cluster-wide', () => {
    expect(() => assertWatchable(['a'], 'Namespace', false)).toThrow(/Namespace is cluster-scoped: it cannot be watched under --watch-namespaces/);
    expect(() => assertWatchable(undefined, 'Namespace', false)).not.toThrow();
    expect(() => assertWatchable(['a'], 'Secret', true)).not.toThrow();
  });
});

describe('Cache under --watch-namespaces', () => {
  it('watches every kind once per watched namespace and never cluster-wide', async () => {
    const { c, asked } = cache(['a', 'b']);
    // and the user Secrets that consent to MailFleet's use, by label and by type (runtime/cache.ts)
    const kinds = ['EmailRelay', 'SenderDomain', ...OWNED_KINDS.map(([, k]) => k), 'Secret', 'Secret'];
    expect(asked.sort()).toEqual(kinds.flatMap((k) => [`${k}@a`, `${k}@b`]).sort());
    c.start();
    await c.waitForSync(5_000, new AbortController().signal);
    expect(c.relays.list().map((o) => o.metadata.namespace).sort()).toEqual(['a', 'b']);
    expect(c.relays.get('a', 'r')?.metadata.namespace).toBe('a');
    expect(c.relays.get('z', 'r')).toBeUndefined(); // outside the scope
    expect(c.relays.list('z')).toEqual([]);
    expect(c.relays.list('b')).toHaveLength(1);
  });

  it('cluster mode: one cluster-wide watch per kind', async () => {
    const { c, asked } = cache(undefined);
    expect(asked.every((a) => a.endsWith('@*'))).toBe(true);
    c.start();
    await c.waitForSync(5_000, new AbortController().signal);
    expect(c.relays.list().map((o) => o.metadata.namespace).sort()).toEqual(['a', 'z']);
    expect(c.relays.get('z', 'r')).toBeDefined();
  });

  it('is synced only when every namespace has listed; a timeout names the kind and the namespace', async () => {
    const { c } = cache(['a', 'b'], ['SenderDomain@b']);
    c.start();
    const err = await c.waitForSync(300, new AbortController().signal).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(CacheSyncTimeoutError);
    expect((err as Error).message).toMatch(/caches not synced after 300 ms: SenderDomain in b \(/);
    expect(c.synced).toBe(false);
  });
});

describe('Applier under --watch-namespaces', () => {
  it('refuses to write or delete outside the watched namespaces before asking the API server', async () => {
    const { c, kube } = cache(['a']);
    const apply = new Applier({ kube, log: silentLog, cache: c, identity: 't', namespaces: ['a'] });
    const owner = { ...relay('z', 'r'), metadata: { ...relay('z', 'r').metadata, uid: 'u1' } };
    const cm: KubeObject = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'r-config', namespace: 'z' } };
    await expect(apply.apply(cm, owner)).rejects.toThrow(NotControlledError);
    await expect(apply.apply(cm, owner)).rejects.toThrow(/ConfigMap r-config is in namespace z, outside the operator's --watch-namespaces/);
    await expect(apply.deleteIfOwned({ apiVersion: 'v1', kind: 'ConfigMap', name: 'r-config' }, owner)).rejects.toThrow(/outside the operator's --watch-namespaces/);
  });
});
