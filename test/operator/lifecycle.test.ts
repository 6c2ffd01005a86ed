// The operator against a real control plane, running under the deploy/rbac.yaml
// ServiceAccount only: creates, updates, repairs and lets the garbage collector remove what
// it owns; writes nothing while the cluster is quiet; hands over leadership.
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { eventually, getJson, readyCondition, repoRoot, sleep, startOperatorProcess, tryGetJson, useOperatorCluster, type OperatorProcess, waitReady as waitReadyIn, conditionOf as cond } from './support.ts';

const cluster = useOperatorCluster();
const NS = 'life';
let op: OperatorProcess | undefined;
afterAll(async () => { await op?.stop(); }, 30_000);

const apply = (obj: unknown) => cluster.get().kubectl(['apply', '-f', '-'], { input: JSON.stringify(obj) });
const relay = (name: string, spec: Record<string, unknown>) => ({ apiVersion: 'mailfleet.io/v1alpha1', kind: 'EmailRelay', metadata: { name, namespace: NS }, spec });
const domain = (name: string, spec: Record<string, unknown>) => ({ apiVersion: 'mailfleet.io/v1alpha1', kind: 'SenderDomain', metadata: { name, namespace: NS }, spec });

async function relayConfig(name: string): Promise<any> {
  const cm = await getJson(cluster.get(), ['get', 'configmap', `${name}-config`, '-n', NS]);
  return YAML.parse(cm.data['relay.yaml']);
}

const waitReady = (kind: string, name: string): Promise<any> => waitReadyIn(cluster.get(), NS, kind, name);

describe.skipIf(!cluster.available)('operator lifecycle (real control plane)', () => {
  it('creates owned objects; pods run on kwok nodes; Ready with observedGeneration', async () => {
    const c = cluster.get();
    await c.kubectl(['create', 'namespace', NS]);
    op = await startOperatorProcess(cluster.operatorKubeconfig());
    await apply(relay('edge', { hostname: 'mail.example.net', replicas: 2, queue: { persistence: { enabled: false } }, delivery: { destinations: { 'gmail.com': { maxConnections: 5 } } } }));
    await apply(domain('example', { domain: 'example.com', relayRef: { name: 'edge' }, allowedSenders: ['noreply'] }));
    await apply(domain('shop', { domain: 'shop.example', relayRef: { name: 'edge' }, dkim: { algorithm: 'ed25519' } }));

    // Ready does not wait for every domain: the RSA key of one may still be in the making.
    const er = await eventually('edge Ready with both domains', async () => {
      const o = await waitReady('emailrelay', 'edge');
      return o.status.domains === 2 ? o : undefined;
    });
    expect(er.status).toMatchObject({ replicas: 2, readyReplicas: 2, domains: 2, endpoint: { host: `edge.${NS}.svc.cluster.local`, ports: { submission: 587, smtps: 465 } } });
    expect(er.status.selector).toBe('app.kubernetes.io/instance=edge,app.kubernetes.io/name=mailfleet-relay');
    for (const [kind, name] of [['deployment', 'edge'], ['service', 'edge'], ['service', 'edge-headless'], ['configmap', 'edge-config'], ['secret', 'edge-secrets'], ['pdb', 'edge']] as [string, string][]) {
      const o = await getJson(c, ['get', kind, name, '-n', NS, '--show-managed-fields']);
      expect(o.metadata.ownerReferences, `${kind}/${name}`).toEqual([{ apiVersion: 'mailfleet.io/v1alpha1', kind: 'EmailRelay', name: 'edge', uid: er.metadata.uid, controller: true, blockOwnerDeletion: true }]);
      expect(o.metadata.managedFields.some((m: any) => m.manager === 'mailfleet-operator' && m.operation === 'Apply')).toBe(true);
    }
    const pods = await getJson(c, ['get', 'pods', '-n', NS, '-l', 'app.kubernetes.io/instance=edge']);
    expect(pods.items.filter((p: any) => p.status.phase === 'Running' && c.nodes.includes(p.spec.nodeName))).toHaveLength(2);

    const sd = await waitReady('senderdomain', 'example');
    expect(sd.status.dnsRecords[0]).toMatchObject({ type: 'TXT', name: 'mailfleet._domainkey.example.com.', purpose: 'dkim' });
    expect(sd.status.dnsRecords[0].value).toMatch(/^v=DKIM1; k=rsa; p=/);
    expect(sd.status.credentialsSecret).toBe('example-smtp');
    const creds = await getJson(c, ['get', 'secret', 'example-smtp', '-n', NS]);
    expect(Object.keys(creds.data).sort()).toEqual(['host', 'password', 'port', 'username']);
    expect(Buffer.from(creds.data.host, 'base64').toString()).toBe(`edge.${NS}.svc.cluster.local`);

    const cfg = await eventually('both domains in the relay config', async () => {
      const cfg = await relayConfig('edge');
      return cfg.domains?.length === 2 && cfg.credentials?.length === 2 ? cfg : undefined;
    });
    expect(cfg.domains.map((d: any) => [d.domain, d.dkim?.keys[0]?.algorithm])).toEqual([['example.com', 'rsa-sha256'], ['shop.example', 'ed25519-sha256']]);
    // No persistent queue: a pod hands its queue on SIGTERM to the ready pods behind the
    // headless Service's name (the peers come from the operator; the API server keeps them).
    expect(cfg.handoff).toMatchObject({ port: 2526, onShutdown: true, peers: [`edge-headless.${NS}.svc:2526`], tokenFile: '/var/run/mailfleet/secrets/fleet.token' });
    // read for a drain request only when the EmailRelay is deleted (docs/operator.md)
    expect(cfg.handoff.annotationsFile).toBe('/var/run/mailfleet/podinfo/annotations');
    const headless = (await getJson(c, ['get', 'service', 'edge-headless', '-n', NS])).spec;
    expect(headless.clusterIP).toBe('None');
    expect(headless.publishNotReadyAddresses ?? false).toBe(false);
    const dep = await getJson(c, ['get', 'deployment', 'edge', '-n', NS]);
    expect(dep.spec.template.spec.containers[0].ports).toContainEqual({ name: 'handoff', containerPort: 2526, protocol: 'TCP' });
    expect(Buffer.from((await getJson(c, ['get', 'secret', 'edge-secrets', '-n', NS])).data['fleet.token'], 'base64').toString()).toMatch(/^[A-Za-z0-9_-]{40,}$/);
    // what the name resolves to: the ready pods (the EndpointSlices CoreDNS serves it from)
    await eventually('the headless Service lists both ready pods', async () => {
      const slices = await getJson(c, ['get', 'endpointslices', '-n', NS, '-l', 'kubernetes.io/service-name=edge-headless']);
      return slices.items.flatMap((s: any) => s.endpoints ?? []).filter((e: any) => e.conditions?.ready).length === 2 || undefined;
    });
    const events = await getJson(c, ['get', 'events', '-n', NS, '--field-selector', 'involvedObject.name=example']);
    expect(events.items.map((e: any) => e.reason)).toContain('DKIMKeyGenerated');
  });

  it('writes nothing while the cluster is quiet', async () => {
    await sleep(3000); // let the last status writes land and their watch events come back
    const before = await op!.writes();
    await sleep(25_000); // longer than --resync 20: every object is reconciled again meanwhile
    expect(await op!.writes()).toBe(before);
    const m = (await op!.get('/metrics')).text;
    expect(m).toMatch(/mailfleet_operator_reconciles_total\{kind="EmailRelay",result="ok"\} \d+/);
  });

  it('follows updates: a domain added, limits changed, kubectl scale — without rolling pods for config', async () => {
    const c = cluster.get();
    const tmplBefore = (await getJson(c, ['get', 'deployment', 'edge', '-n', NS])).spec.template;
    await apply(domain('news', { domain: 'news.example', relayRef: { name: 'edge' }, rateLimit: { perHour: 1000 } }));
    await apply(relay('edge', { hostname: 'mail.example.net', replicas: 2, queue: { persistence: { enabled: false } }, delivery: { destinations: { 'gmail.com': { maxConnections: 2, messagesPerMinute: 60 } } } }));
    await eventually('config follows', async () => {
      const cfg = await relayConfig('edge');
      return cfg.domains.length === 3 && cfg.delivery.destinations['gmail.com']?.maxConnections === 2 && cfg.rateLimits.destinations['gmail.com']?.perMinute === 60
        && cfg.domains.find((d: any) => d.domain === 'news.example')?.rateLimit?.perHour === 1000;
    });
    expect((await getJson(c, ['get', 'deployment', 'edge', '-n', NS])).spec.template).toEqual(tmplBefore);

    await c.kubectl(['scale', 'emailrelay', 'edge', '-n', NS, '--replicas=3']);
    await eventually('3 pods ready', async () => {
      const er = await getJson(c, ['get', 'emailrelay', 'edge', '-n', NS]);
      return er.status.readyReplicas === 3 && readyCondition(er)?.status === 'True' && er.status.domains === 3;
    });
  });

  it('repairs drift: a deleted child comes back, an edited managed field is restored', async () => {
    const c = cluster.get();
    await c.kubectl(['delete', 'service', 'edge', '-n', NS]);
    await c.kubectl(['patch', 'configmap', 'edge-config', '-n', NS, '--type=merge', '-p', '{"data":{"relay.yaml":"hostname: hacked\\n"}}']);
    await c.kubectl(['patch', 'deployment', 'edge', '-n', NS, '--type=merge', '-p', '{"spec":{"replicas":1}}']);
    await eventually('service recreated, config and replicas restored', async () => {
      const svc = await tryGetJson(c, ['get', 'service', 'edge', '-n', NS]);
      const cfg = await relayConfig('edge');
      const dep = await getJson(c, ['get', 'deployment', 'edge', '-n', NS]);
      return svc && cfg.domains?.length === 3 && dep.spec.replicas === 3;
    });
  });

  it('keeps DKIM keys and the app password when their Secrets drop out of the watch cache (label removed)', async () => {
    const c = cluster.get();
    const pub = async () => (await getJson(c, ['get', 'senderdomain', 'example', '-n', NS])).status.dnsRecords[0].value;
    const password = async () => Buffer.from((await getJson(c, ['get', 'secret', 'example-smtp', '-n', NS])).data.password, 'base64').toString();
    const keyBefore = await pub();
    const passwordBefore = await password();
    // Outside the label-selected watch the operator's cache says "absent"; the objects are not.
    await c.kubectl(['label', 'secret', 'example-mailfleet', 'example-smtp', '-n', NS, 'app.kubernetes.io/managed-by-']);
    await eventually('labels restored', async () => {
      const s = await getJson(c, ['get', 'secrets', 'example-mailfleet', 'example-smtp', '-n', NS]);
      return s.items.every((x: any) => x.metadata.labels?.['app.kubernetes.io/managed-by'] === 'mailfleet-operator');
    });
    await waitReady('senderdomain', 'example');
    expect(await pub()).toBe(keyBefore);
    expect(await password()).toBe(passwordBefore);
    const events = await getJson(c, ['get', 'events', '-n', NS, '--field-selector', 'involvedObject.name=example']);
    expect(events.items.filter((e: any) => e.reason === 'DKIMKeyGenerated')).toHaveLength(1);
  });

  it('refuses the later of two SenderDomains claiming one domain', async () => {
    const c = cluster.get();
    await apply(domain('example-copy', { domain: 'example.com', relayRef: { name: 'edge' } }));
    const sd = await eventually('conflict condition', async () => {
      const o = await tryGetJson(c, ['get', 'senderdomain', 'example-copy', '-n', NS]);
      return readyCondition(o)?.reason === 'DomainConflict' ? o : undefined;
    });
    expect(readyCondition(sd).message).toMatch(/already claimed by SenderDomain example \(created earlier\)/);
    expect(cond(sd, 'Degraded')).toMatchObject({ status: 'True', reason: 'DomainConflict', observedGeneration: sd.metadata.generation });
    expect(cond(sd, 'Stalled')).toMatchObject({ status: 'True', reason: 'DomainConflict' });
    expect(await tryGetJson(c, ['get', 'secret', 'example-copy-smtp', '-n', NS])).toBeUndefined();
  });

  it('refuses the later of two SenderDomains asking for one SMTP username', async () => {
    const c = cluster.get();
    // example.com (created first) logs in as "example.com"; this one asks for the same login
    await apply(domain('squat', { domain: 'squat.example', relayRef: { name: 'edge' }, credentials: { username: 'example.com' } }));
    const sd = await eventually('UsernameConflict', async () => {
      const o = await tryGetJson(c, ['get', 'senderdomain', 'squat', '-n', NS]);
      return cond(o, 'Stalled')?.reason === 'UsernameConflict' && o.status.observedGeneration === o.metadata.generation ? o : undefined;
    });
    expect(cond(sd, 'Degraded')).toMatchObject({ status: 'True', message: expect.stringMatching(/SMTP username example\.com is already used on relay edge by SenderDomain example/) });
    expect(readyCondition(sd).status).toBe('False');
    expect(await tryGetJson(c, ['get', 'secret', 'squat-smtp', '-n', NS])).toBeUndefined();
    const events = await getJson(c, ['get', 'events', '-n', NS, '--field-selector', 'involvedObject.name=squat']);
    expect(events.items.map((e: any) => e.reason)).toContain('UsernameConflict');
    // the relay keeps serving: one login per name, the refused domain not listed
    const cfg = await relayConfig('edge');
    expect(cfg.credentials.filter((x: any) => x.username === 'example.com')).toHaveLength(1);
    expect(cfg.domains.map((d: any) => d.domain)).not.toContain('squat.example');
    expect(readyCondition(await getJson(c, ['get', 'emailrelay', 'edge', '-n', NS])).status).toBe('True');
    // fixed: a free username, and the domain is served
    await apply(domain('squat', { domain: 'squat.example', relayRef: { name: 'edge' }, credentials: { username: 'squatter' } }));
    await waitReady('senderdomain', 'squat');
    await eventually('squatter login in the relay config', async () => (await relayConfig('edge')).credentials.some((x: any) => x.username === 'squatter'));
  });

  it("is Degraded (OwnershipConflict), not retrying, when its credentials Secret name is someone else's Secret", async () => {
    const c = cluster.get();
    await c.kubectl(['create', 'secret', 'generic', 'taken-smtp', '-n', NS, '--from-literal=password=mine']);
    await apply(domain('taken', { domain: 'taken.example', relayRef: { name: 'edge' } }));
    const sd = await eventually('OwnershipConflict', async () => {
      const o = await tryGetJson(c, ['get', 'senderdomain', 'taken', '-n', NS]);
      return cond(o, 'Stalled')?.status === 'True' && o.status.observedGeneration === o.metadata.generation ? o : undefined;
    });
    expect(cond(sd, 'Degraded')).toMatchObject({ status: 'True', reason: 'OwnershipConflict', message: expect.stringContaining('Secret life/taken-smtp exists and is not controlled by this') });
    // the user's Secret is untouched
    const secret = await getJson(c, ['get', 'secret', 'taken-smtp', '-n', NS]);
    expect(Buffer.from(secret.data.password, 'base64').toString()).toBe('mine');
    expect(secret.metadata.ownerReferences).toBeUndefined();
    // pointed at a Secret name of its own, it is served
    await apply(domain('taken', { domain: 'taken.example', relayRef: { name: 'edge' }, credentials: { secretName: 'taken-login' } }));
    await waitReady('senderdomain', 'taken');
  });

  it('creates the Certificate once cert-manager is installed while the operator runs (no restart)', async () => {
    const c = cluster.get();
    await apply(relay('tls', { hostname: 'smtp.example.com', replicas: 1, queue: { persistence: { enabled: false } }, tls: { issuerRef: { name: 'letsencrypt', kind: 'ClusterIssuer' } } }));
    const degraded = await eventually('tls Degraded without cert-manager', async () => {
      const o = await tryGetJson(c, ['get', 'emailrelay', 'tls', '-n', NS]);
      return cond(o, 'Stalled')?.status === 'True' && o.status.observedGeneration === o.metadata.generation ? o : undefined;
    });
    expect(cond(degraded, 'Degraded').message).toContain('cert-manager');
    expect(await tryGetJson(c, ['get', 'configmap', 'tls-config', '-n', NS])).toBeUndefined();

    await c.kubectl(['apply', '-f', path.join(repoRoot, 'test/examples/fixtures/cert-manager-certificate-crd.yaml')]);
    await c.kubectl(['wait', '--for=condition=Established', 'crd/certificates.cert-manager.io', '--timeout=60s']);
    // the next resync (--resync 20) re-discovers the API
    const cert = await eventually('Certificate tls-tls', () => tryGetJson(c, ['get', 'certificates.cert-manager.io', 'tls-tls', '-n', NS]), 90_000);
    expect(cert.spec).toMatchObject({ secretName: 'tls-tls', issuerRef: { name: 'letsencrypt', kind: 'ClusterIssuer', group: 'cert-manager.io' }, dnsNames: ['smtp.example.com'] });
    expect(cert.metadata.ownerReferences[0]).toMatchObject({ kind: 'EmailRelay', name: 'tls', controller: true });
    const cfg = await relayConfig('tls');
    expect(cfg.tls).toEqual({ certFile: '/var/run/mailfleet/tls/tls.crt', keyFile: '/var/run/mailfleet/tls/tls.key' });
    await eventually('tls no longer Degraded', async () => cond(await getJson(c, ['get', 'emailrelay', 'tls', '-n', NS]), 'Degraded')?.status === 'False');
    // its pods here run no relay to report an empty queue: let the deletion go without the drain
    await c.kubectl(['annotate', 'emailrelay', 'tls', '-n', NS, 'mailfleet.io/skip-drain=true']);
    await c.kubectl(['delete', 'emailrelay', 'tls', '-n', NS]);
  });

  it('renders a StatefulSet with a volume claim per pod when persistence is on', async () => {
    const c = cluster.get();
    await apply(relay('durable', { hostname: 'mail.example.net', replicas: 1, queue: { persistence: { size: '2Gi' } } }));
    const sts = await eventually('statefulset', () => tryGetJson(c, ['get', 'statefulset', 'durable', '-n', NS]));
    expect(sts.spec.volumeClaimTemplates[0].spec.resources.requests.storage).toBe('2Gi');
    expect(sts.spec.serviceName).toBe('durable-headless');
    expect(sts.spec.template.spec.containers[0].volumeMounts).toContainEqual({ name: 'data', mountPath: '/var/lib/mailfleet' });
  });

  it('hands over leadership: a second operator waits, takes over when the first is killed', async () => {
    const second = await startOperatorProcess(cluster.operatorKubeconfig(), ['--lease-duration', '4']);
    try {
      await sleep(3000);
      expect((await second.get('/readyz')).text).toBe('standby\n');
      expect(await second.writes()).toBe(0);
      await op!.stop('SIGKILL');
      await eventually('second operator leads', async () => (await second.get('/readyz')).text === 'leader\n', 60_000);
      // and acts: a change made now is reconciled by the new leader
      await apply(domain('late', { domain: 'late.example', relayRef: { name: 'edge' } }));
      await waitReady('senderdomain', 'late');
    } finally {
      op = second;
    }
  });

  it('deletes: children are garbage-collected with the EmailRelay (skip-drain: its pods run no relay to drain; test/operator/deployment-delete.test.ts drains)', async () => {
    const c = cluster.get();
    await c.kubectl(['annotate', 'emailrelay', 'edge', '-n', NS, 'mailfleet.io/skip-drain=true']);
    await c.kubectl(['delete', 'emailrelay', 'edge', '-n', NS, '--wait=true']);
    await eventually('children gone', async () => {
      const left = await getJson(c, ['get', 'deployments,services,configmaps,pdb', '-n', NS, '-l', 'mailfleet.io/relay=edge']);
      return left.items.length === 0;
    });
  });
});
