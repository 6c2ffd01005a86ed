// "No write when nothing changed": when the live object already holds what we would apply
// (server defaults and quantity spellings aside), and when it does not.
import { describe, expect, it } from 'vitest';
import { INTENT_ANNOTATION, type KubeObject } from '../../../operator/render/objects.ts';
import { canonical, intentHash, isSubset, needsApply, withIntent } from '../../../operator/runtime/diff.ts';

const deployment = (resources: Record<string, unknown>, extra: Record<string, unknown> = {}): KubeObject => ({
  apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'r', namespace: 'ns', labels: { app: 'r' } },
  spec: { replicas: 2, template: { spec: { containers: [{ name: 'relay', image: 'img:1', resources }] } }, ...extra },
});

/** The object as the API server returns it: our fields plus defaults and bookkeeping. */
function asServed(o: KubeObject, change: (spec: any) => void = () => {}): KubeObject {
  const live = structuredClone(o) as any;
  live.metadata = { ...live.metadata, uid: 'u1', resourceVersion: '42', generation: 3, managedFields: [{ manager: 'x' }] };
  live.spec.progressDeadlineSeconds = 600;
  live.spec.template.spec.containers[0].terminationMessagePath = '/dev/termination-log';
  live.status = { replicas: 2 };
  change(live.spec);
  return live;
}

describe('canonical and intentHash', () => {
  it('ignore key order at every level, not array order', () => {
    expect(canonical({ b: 1, a: { d: 1, c: [2, 1] } })).toBe(canonical({ a: { c: [2, 1], d: 1 }, b: 1 }));
    expect(canonical({ a: [1, 2] })).not.toBe(canonical({ a: [2, 1] }));
    const d = deployment({});
    expect(intentHash(d)).toBe(intentHash(structuredClone(d)));
    expect(intentHash(d)).not.toBe(intentHash(deployment({ limits: { cpu: '1' } })));
  });
});

describe('isSubset', () => {
  it('compares quantities by value, however they are spelled', () => {
    for (const [want, live] of [['500m', '0.5'], ['0.5', '500m'], ['1Gi', '1073741824'], ['1024Mi', '1Gi'], ['1', 1], ['2k', '2000'], ['100m', 0.1]] as const) {
      expect(isSubset(want, live), `${want} vs ${live}`).toBe(true);
    }
    for (const [want, live] of [['500m', '0.6'], ['1Gi', '1G'], ['1Mi', '1M'], ['1', '2']] as const) {
      expect(isSubset(want, live), `${want} vs ${live}`).toBe(false);
    }
  });

  it('ignores what the server added, but not a changed, missing or reordered value', () => {
    expect(isSubset({ a: 1, b: { c: 'x' } }, { a: 1, b: { c: 'x', d: 'default' }, e: 2 })).toBe(true);
    expect(isSubset({ a: 1 }, { a: 2 })).toBe(false);
    expect(isSubset({ a: 1, b: 2 }, { a: 1 })).toBe(false);
    expect(isSubset(['x', 'y'], ['y', 'x'])).toBe(false);
    expect(isSubset(['x'], ['x', 'y'])).toBe(false);
    expect(isSubset({ a: 'x' }, { a: ['x'] })).toBe(false);
    expect(isSubset('TCP', 'UDP')).toBe(false);
  });
});

describe('needsApply', () => {
  const want = withIntent(deployment({ requests: { cpu: '500m', memory: '1Gi' } }));

  it('is false for the object as served back: defaults, status, bookkeeping and quantity spellings are not drift', () => {
    const live = asServed(want, (spec) => { spec.template.spec.containers[0].resources = { requests: { cpu: '0.5', memory: '1073741824' } }; });
    expect(needsApply(want, live)).toBe(false);
  });

  it('is true when the object is absent, drifted, or lacks the hash of our intent', () => {
    expect(needsApply(want, undefined)).toBe(true);
    expect(needsApply(want, asServed(want, (spec) => { spec.replicas = 5; }))).toBe(true);
    expect(needsApply(want, asServed(want, (spec) => { spec.template.spec.containers[0].resources.requests.cpu = '250m'; }))).toBe(true);
    const unmarked = asServed(want);
    delete unmarked.metadata.annotations?.[INTENT_ANNOTATION];
    expect(needsApply(want, unmarked)).toBe(true);
  });

  it('is true when we stopped setting a field (the live object still has it, the intent hash changed)', () => {
    const before = withIntent(deployment({}, { minReadySeconds: 10 }));
    const after = withIntent(deployment({}));
    expect(needsApply(after, asServed(before))).toBe(true);
    expect(needsApply(before, asServed(before))).toBe(false);
  });
});
