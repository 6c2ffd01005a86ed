// DKIM selector length on a real control plane: the API server refuses a spec.dkim.selector
// that a rotation's suffix would push past one DNS label, saying why; the longest one it
// accepts rotates into valid labels; and a longer one stored before the rule (the CRD
// without it, then upgraded) is not rotated — DKIMRotationBlocked SelectorTooLong, a Warning
// Event, the current key still signing — nor given a first key it cannot name.
// The planner's arithmetic: test/operator/dkim-selector-length.test.ts.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { DKIM_SELECTOR_MAX, DNS_LABEL_MAX } from '../../operator/api/common.ts';
import { conditionOf as cond, eventually, getJson, repoRoot, senderDomainObject as sd, startOperatorProcess, tryGetJson, useOperatorCluster, waitReady, type OperatorProcess } from './support.ts';

const cluster = useOperatorCluster();
const NS = 'dkimsel';
const GROUP = 'mailfleet.io/v1alpha1';
const longest = `s${'x'.repeat(DKIM_SELECTOR_MAX - 1)}`;
const overLong = `o${'x'.repeat(DNS_LABEL_MAX - 1)}`;
const dnsLabel = /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;
const CRD_FILE = path.join(repoRoot, 'crds/senderdomains.mailfleet.io.yaml');

let op: OperatorProcess | undefined;
afterAll(async () => { await op?.stop(); }, 30_000);

const apply = (obj: unknown, check = true) => cluster.get().kubectl(['apply', '-f', '-'], { input: JSON.stringify(obj), check });
const domain = (name: string, selector: string, algorithm: string) =>
  sd(NS, name, { domain: `${name}.test`, relayRef: { name: 'edge' }, dkim: { selector, algorithm }, credentials: { enabled: false } });
const get = (name: string) => tryGetJson(cluster.get(), ['get', 'senderdomain', name, '-n', NS]);

/** The SenderDomain CRD as generated, or without the selector's length rule (as before it existed). */
function crd(withCap: boolean): unknown {
  const doc = YAML.parse(fs.readFileSync(CRD_FILE, 'utf8'));
  if (withCap) return doc;
  const selector = doc.spec.versions[0].schema.openAPIV3Schema.properties.spec.properties.dkim.properties.selector;
  const rules = selector['x-kubernetes-validations'] as { rule: string }[];
  selector['x-kubernetes-validations'] = rules.filter((r) => !r.rule.startsWith('size(self)'));
  expect(selector['x-kubernetes-validations'].length).toBe(rules.length - 1);
  return doc;
}

describe.skipIf(!cluster.available)('DKIM selector length and rotation (real control plane)', { timeout: 240_000 }, () => {
  it(`the API server refuses a selector over ${DKIM_SELECTOR_MAX} characters, saying why, and accepts ${DKIM_SELECTOR_MAX}`, async () => {
    const c = cluster.get();
    await c.kubectl(['create', 'namespace', NS]);
    const refused = await apply(domain('too-long', `${longest}y`, 'both'), false);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain(`spec.dkim.selector: Invalid value: "${longest}y": must have at most ${DKIM_SELECTOR_MAX} characters: key rotations append -<generation> and, with algorithm both, -ed (up to 10 characters), and the selector they publish must stay within one 63-character DNS label`);
    // a multi-label selector counts whole, as it is stored
    const dotted = await apply(domain('dotted', `a.${'b'.repeat(DKIM_SELECTOR_MAX - 1)}`, 'both'), false);
    expect(dotted.code).not.toBe(0);
    expect(dotted.stderr).toContain(`must have at most ${DKIM_SELECTOR_MAX} characters`);
    await apply(domain('longest', longest, 'both'));
  });

  it('the longest allowed selector rotates (algorithm both) into selectors that are DNS labels', async () => {
    const c = cluster.get();
    await c.kubectl(['create', 'secret', 'generic', 'platform-login', '-n', NS, '--from-literal=username=u', '--from-literal=password=p']);
    await c.kubectl(['label', 'secret', 'platform-login', '-n', NS, 'mailfleet.io/use=true']);
    op = await startOperatorProcess(cluster.operatorKubeconfig(), ['--resync', '3600']);
    await apply({
      apiVersion: GROUP, kind: 'EmailRelay', metadata: { name: 'edge', namespace: NS },
      spec: {
        hostname: 'mail.example.net', replicas: 1, queue: { persistence: { enabled: false } }, senderDomains: { requireVerification: false },
        delivery: { mode: 'smarthost', smarthosts: [{ host: 'smtp.platform.example', credentialsSecretRef: { name: 'platform-login' } }] },
      },
    });
    await waitReady(c, NS, 'senderdomain', 'longest');
    await c.kubectl(['annotate', 'senderdomain', 'longest', '-n', NS, 'mailfleet.io/rotate-dkim=1']);
    const o = await eventually('generation 2 published', async () => {
      const x = await get('longest');
      return x?.status?.dkim?.selectors?.length === 4 ? x : undefined;
    }, 60_000);
    const selectors = o.status.dkim.selectors.map((s: any) => s.selector).sort();
    expect(selectors).toEqual([longest, `${longest}-2`, `${longest}-2-ed`, `${longest}-ed`].sort());
    for (const s of selectors) expect(s.length <= DNS_LABEL_MAX && dnsLabel.test(s), s).toBe(true);
    const names = o.status.dnsRecords.filter((r: any) => r.purpose === 'dkim').map((r: any) => r.name);
    expect(names.sort()).toEqual(selectors.map((s: string) => `${s}._domainkey.longest.test.`).sort());
    expect(cond(o, 'DKIMRotationBlocked')?.reason).not.toBe('SelectorTooLong');
    expect(cond(o, 'Ready')?.status).toBe('True');
  });

  it('a selector stored before the rule: its rotation is refused with a condition and an Event, the current key keeps signing; a first key it cannot name is not generated', async () => {
    const c = cluster.get();
    await apply(crd(false));
    await eventually('the CRD without the length rule in force', async () => (await apply(domain('old', overLong, 'ed25519'), false)).code === 0, 30_000);
    await apply(domain('old-both', overLong, 'both'));
    await apply(crd(true));
    await eventually('the length rule back in force', async () => (await apply(domain('new', overLong, 'ed25519'), false)).code !== 0, 30_000);

    // its first key is named by the selector as is (63 characters): served
    await waitReady(c, NS, 'senderdomain', 'old');
    // an unchanged field is not judged again (validation ratcheting): the annotation goes in
    await c.kubectl(['annotate', 'senderdomain', 'old', '-n', NS, 'mailfleet.io/rotate-dkim=1']);
    const o = await eventually('old: rotation refused', async () => {
      const x = await get('old');
      return cond(x, 'DKIMRotationBlocked')?.reason === 'SelectorTooLong' ? x : undefined;
    }, 60_000);
    expect(cond(o, 'DKIMRotationBlocked')).toMatchObject({ status: 'True' });
    expect(cond(o, 'DKIMRotationBlocked').message).toBe(`signing stays with the current key: no key generated for generation 2: its selector ${overLong}-2 would have 65 characters, `
      + `more than the 63 of one DNS label (rotations append -<generation>, and -ed with algorithm both); shorten spec.dkim.selector to at most ${DKIM_SELECTOR_MAX} characters and the rotation goes ahead`);
    expect(o.status.dkim.selectors.map((s: any) => s.selector)).toEqual([overLong]);
    expect(o.status.dkim.activeSelectors).toEqual([overLong]);
    expect(cond(o, 'Ready')?.status).toBe('True');
    await eventually('a Warning Event SelectorTooLong on old', async () =>
      (await getJson(c, ['get', 'events', '-n', NS, '--field-selector', 'involvedObject.name=old'])).items.some((e: any) => e.type === 'Warning' && e.reason === 'SelectorTooLong'));

    // with algorithm both its first Ed25519 key would be <selector>-ed: none is generated
    const both = await eventually('old-both: no first key', async () => {
      const x = await get('old-both');
      return cond(x, 'Degraded')?.reason === 'SelectorTooLong' ? x : undefined;
    }, 60_000);
    expect(cond(both, 'DKIMKeyReady')).toMatchObject({ status: 'False', reason: 'SelectorTooLong' });
    expect(cond(both, 'DKIMKeyReady').message).toContain(`its selector ${overLong}-ed would have 66 characters`);
    expect(cond(both, 'Ready')?.status).toBe('False');
    expect(both.status.dkim?.selectors ?? []).toEqual([]);
  });
});
