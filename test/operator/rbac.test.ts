// deploy/rbac.yaml grants every verb the operator's code uses on every resource it touches.
// (The cluster tests go further: the operator runs there under this ServiceAccount only.)
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { RESOURCES } from '../../operator/runtime/resources.ts';

const docs = YAML.parseAllDocuments(fs.readFileSync(path.resolve(import.meta.dirname, '../../deploy/rbac.yaml'), 'utf8')).map((d) => d.toJS());
const rules: { apiGroups: string[]; resources: string[]; verbs: string[] }[] = docs.filter((d) => d.kind === 'ClusterRole' || d.kind === 'Role').flatMap((d) => d.rules);
const allowed = (group: string, resource: string, verb: string) => rules.some((r) => r.apiGroups.includes(group) && r.resources.includes(resource) && r.verbs.includes(verb));

// What operator/runtime does with each: reflectors list+watch, applyOwned get+create+patch,
// absent objects delete, status apply patch, events create, the Lease get/create/update.
const OWNED = ['configmaps', 'secrets', 'services', 'statefulsets', 'deployments', 'poddisruptionbudgets', 'horizontalpodautoscalers', 'networkpolicies'];
const NEEDS: [string, string[]][] = [
  ...OWNED.map((p) => [p, ['get', 'list', 'watch', 'create', 'patch', 'delete']] as [string, string[]]),
  ['emailrelays', ['get', 'list', 'watch']], ['senderdomains', ['get', 'list', 'watch']],
  ['emailrelays/status', ['patch']], ['senderdomains/status', ['patch']],
  ['servicemonitors', ['get', 'create', 'patch', 'delete']], ['certificates', ['get', 'create', 'patch', 'delete']],
  ['dnsendpoints', ['get', 'create', 'patch', 'delete']],
  ['events', ['create']], ['leases', ['get', 'create', 'update']], ['namespaces', ['list', 'watch']],
  // the drain (operator/controllers/drain.ts): finalizer, pod annotation and /status, emptied volumes
  ['emailrelays', ['patch']], ['pods', ['get', 'list', 'patch']], ['pods/proxy', ['get']], ['persistentvolumeclaims', ['get', 'delete']],
];

describe('deploy/rbac.yaml', () => {
  it.each(NEEDS)('allows what the code does on %s', (res, verbs) => {
    const plural = res.split('/')[0];
    const r = RESOURCES.find((x) => x.plural === plural);
    expect(r, `${plural} in operator/runtime/resources.ts`).toBeDefined();
    for (const v of verbs) expect(allowed(r!.group, res, v), `${v} ${r!.group || 'core'}/${res}`).toBe(true);
  });
  it('grants nothing on the custom resources beyond reading them, writing status and patching an EmailRelay (its finalizer)', () => {
    for (const v of ['create', 'update', 'delete']) expect(allowed('mailfleet.io', 'emailrelays', v)).toBe(false);
    for (const v of ['create', 'update', 'patch', 'delete']) expect(allowed('mailfleet.io', 'senderdomains', v)).toBe(false);
  });
  it('reaches pods only to find a relay\'s, annotate them and read /status, volumes only to delete emptied ones', () => {
    for (const v of ['watch', 'create', 'update', 'delete']) expect(allowed('', 'pods', v)).toBe(false);
    for (const v of ['create', 'update', 'patch', 'list']) expect(allowed('', 'persistentvolumeclaims', v)).toBe(false);
    expect(allowed('', 'pods/exec', 'create')).toBe(false);
  });
});
