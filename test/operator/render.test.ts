// The pure renderers: what an EmailRelay and its SenderDomains render to, checked through
// the relay's own config schema (the contract), and the DKIM rotation plan over time.
import { describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { relayConfigSchema } from '../../relay/config/schema.ts';
import { generateKeyPairSync } from 'node:crypto';
import { keyPhase, planDkim, signingKeys, waitingKeys, type DkimState } from '../../operator/render/dkim.ts';
import { txtStrings } from '../../operator/render/dns-records.ts';
import { parseInternal } from '../../operator/render/domain-internal.ts';
import { renderSenderDomain } from '../../operator/render/sender-domain.ts';
import { renderRelay, type RelayInput } from '../../operator/render/relay.ts';
import { resolveClaims } from '../../operator/render/claims.ts';
import { summaryConditions } from '../../operator/render/conditions.ts';
import { decodeSecretData } from '../../operator/render/objects.ts';
import { domainObject, ed25519Pem, relayObject, domainInternal, RENDER_NOW } from './fixtures.ts';

const rsaPem = () => generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;

const now = RENDER_NOW;

const internalFor = domainInternal;

function input(over: Partial<RelayInput> = {}): RelayInput {
  return {
    relay: relayObject('edge', { tls: { secretName: 'edge-cert' } }),
    domains: [],
    userSecrets: new Map(),
    image: 'ghcr.io/mailfleet/mailfleet:0.1.0',
    apis: { serviceMonitor: false, certManager: false },
    now,
    ...over,
  };
}

const kindOf = (out: ReturnType<typeof renderRelay>, kind: string) => out.objects.find((o) => o.kind === kind) as any;

describe('renderRelay', () => {
  it('renders a config the relay schema accepts, with files that the Secret provides', () => {
    const sd = domainObject('example', { domain: 'example.com', relayRef: { name: 'edge' }, allowedSenders: ['noreply'], rateLimit: { perMinute: 60 } });
    const out = renderRelay(input({ domains: [{ sd, internal: internalFor('mailfleet') }] }));
    expect(out.errors).toEqual([]);
    const cm = kindOf(out, 'ConfigMap');
    const cfg = relayConfigSchema.parse(YAML.parse(cm.data['relay.yaml']));
    expect(cfg.listeners.map((l) => [l.name, l.port, l.host])).toEqual([['submission', 587, '0.0.0.0'], ['smtps', 465, '0.0.0.0']]);
    expect(cfg.dataDir).toBe('/var/lib/mailfleet');
    expect(cfg.queue.maxLifetime).toBe(5 * 86_400_000);
    const dom = cfg.domains[0]!;
    expect(dom.domain).toBe('example.com');
    expect(dom.allowedSenders).toEqual(['noreply']);
    const secret = decodeSecretData(kindOf(out, 'Secret'));
    const files = [dom.dkim!.keys[0]!.privateKeyFile, cfg.credentials[0]!.passwordHashFile!];
    for (const f of files) {
      expect(f.startsWith('/var/run/mailfleet/secrets/')).toBe(true);
      expect(secret[f.split('/').pop()!]).toBeTruthy();
    }
    expect(cfg.tls.certFile).toBe('/var/run/mailfleet/tls/tls.crt');
  });

  it('refuses to render an invalid config (Degraded), and applies nothing', () => {
    // a plain listener without trustedNetworks is an open relay: the relay schema says no
    const out = renderRelay(input({ relay: relayObject('edge', { listeners: { plain: { port: 25 } } }) }));
    expect(out.objects).toEqual([]);
    expect(out.errors.join('\n')).toMatch(/trustedNetworks/);
  });

  it('reports a missing smarthost credentials Secret instead of rendering without auth', () => {
    const relay = relayObject('edge', { delivery: { mode: 'smarthost', smarthosts: [{ host: 'smtp.example.net', credentialsSecretRef: { name: 'provider' } }] } });
    expect(renderRelay(input({ relay })).errors).toEqual(['delivery.smarthosts[0] credentials: Secret provider not found', 'delivery.smarthosts[0] credentials: Secret provider not found']);
    const ok = renderRelay(input({ relay, userSecrets: new Map([['provider', { username: 'u', password: 'p' }]]) }));
    expect(ok.errors).toEqual([]);
    const cfg = relayConfigSchema.parse(YAML.parse(kindOf(ok, 'ConfigMap').data['relay.yaml']));
    expect(cfg.delivery.smarthosts[0]!.auth).toEqual({ user: 'u', passwordFile: '/var/run/mailfleet/secrets/smarthost-0.password' });
    expect(decodeSecretData(kindOf(ok, 'Secret'))['smarthost-0.password']).toBe('p');
  });

  it('keeps the pod template identical when domains and limits change (the relay hot-reloads)', () => {
    const a = renderRelay(input());
    const sd = domainObject('example', { domain: 'example.com', relayRef: { name: 'edge' } });
    const relay = relayObject('edge', { tls: { secretName: 'edge-cert' }, rateLimits: { perDomain: { perHour: 100 } }, delivery: { destinations: { 'gmail.com': { maxConnections: 3, messagesPerMinute: 100 }, 'partner.example': { tls: 'require' } } } });
    const b = renderRelay(input({ relay, domains: [{ sd, internal: internalFor('mailfleet') }] }));
    expect(kindOf(b, 'StatefulSet').spec.template).toEqual(kindOf(a, 'StatefulSet').spec.template);
    expect(kindOf(b, 'ConfigMap')).not.toEqual(kindOf(a, 'ConfigMap'));
    const cfg = relayConfigSchema.parse(YAML.parse(kindOf(b, 'ConfigMap').data['relay.yaml']));
    expect(cfg.delivery.destinations['gmail.com']).toEqual({ maxConnections: 3 });
    expect(cfg.delivery.destinations['partner.example']).toEqual({ tls: 'require' });
    expect(cfg.rateLimits.destinations['gmail.com']).toEqual({ perMinute: 100 });
  });

  it('hardens the pod and probes the relay HTTP port', () => {
    const sts = kindOf(renderRelay(input()), 'StatefulSet');
    const pod = sts.spec.template.spec;
    const c = pod.containers[0];
    expect(c.args).toEqual(['relay', '--config', '/etc/mailfleet/relay.yaml']);
    expect(c.securityContext).toMatchObject({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, runAsNonRoot: true, capabilities: { drop: ['ALL'] }, seccompProfile: { type: 'RuntimeDefault' } });
    expect(pod.securityContext.runAsNonRoot).toBe(true);
    expect(c.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'metrics' });
    expect(c.ports.find((p: any) => p.name === 'metrics').containerPort).toBe(9464);
    expect(pod.terminationGracePeriodSeconds).toBeGreaterThanOrEqual(30);
    expect(sts.spec.volumeClaimTemplates[0].spec.resources.requests.storage).toBe('1Gi');
  });

  it('switches to a Deployment with an emptyDir when persistence is off, and adds an HPA on the EmailRelay', () => {
    const out = renderRelay(input({ relay: relayObject('edge', { queue: { persistence: { enabled: false } } }) }));
    expect(kindOf(out, 'StatefulSet')).toBeUndefined();
    expect(kindOf(out, 'Deployment').spec.template.spec.volumes).toContainEqual({ name: 'data', emptyDir: {} });
    expect(out.absent).toContainEqual({ apiVersion: 'apps/v1', kind: 'StatefulSet', name: 'edge' });
    // autoscaling needs the persistent queue (an emptyDir one is refused by the schema)
    const scaled = renderRelay(input({ relay: relayObject('edge', { autoscaling: { maxReplicas: 5 } }) }));
    expect(kindOf(scaled, 'HorizontalPodAutoscaler').spec.scaleTargetRef).toEqual({ apiVersion: 'mailfleet.io/v1alpha1', kind: 'EmailRelay', name: 'edge' });
  });

  it('with a persistent queue: the hand-off listener, its fleet token, the pods that stay as peers, the annotations file, and a NetworkPolicy rule letting only the fleet reach it', () => {
    const relay = relayObject('edge', { replicas: 3, tls: { secretName: 'edge-cert' }, networkPolicy: { enabled: true, allowFrom: ['10.0.0.0/8'] } });
    const out = renderRelay(input({ relay, fleetToken: 'fleet-secret', workloadReplicas: 5 }));
    expect(out.errors).toEqual([]);
    const cfg = relayConfigSchema.parse(YAML.parse(kindOf(out, 'ConfigMap').data['relay.yaml']));
    expect(cfg.handoff).toEqual({
      annotationsFile: '/var/run/mailfleet/podinfo/annotations', host: '0.0.0.0', port: 2526, tokenFile: '/var/run/mailfleet/secrets/fleet.token', connections: 4, onShutdown: false,
      peers: ['edge-0.edge-headless.mail.svc:2526', 'edge-1.edge-headless.mail.svc:2526', 'edge-2.edge-headless.mail.svc:2526'],
    });
    expect(decodeSecretData(kindOf(out, 'Secret'))['fleet.token']).toBe('fleet-secret');
    const sts = kindOf(out, 'StatefulSet');
    expect(sts.spec.replicas).toBe(5); // leaving pods drain before the StatefulSet lets them go
    expect(sts.spec.template.spec.volumes).toContainEqual({ name: 'podinfo', downwardAPI: { items: [{ path: 'annotations', fieldRef: { fieldPath: 'metadata.annotations' } }] } });
    expect(sts.spec.template.spec.containers[0].ports).toContainEqual({ name: 'handoff', containerPort: 2526, protocol: 'TCP' });
    const np = kindOf(out, 'NetworkPolicy');
    expect(np.spec.ingress).toContainEqual({ from: [{ podSelector: { matchLabels: { 'app.kubernetes.io/name': 'mailfleet-relay', 'app.kubernetes.io/instance': 'edge' } } }], ports: [{ protocol: 'TCP', port: 2526 }] });
    // the hand-off port is no Service port, and the SMTP rule (allowFrom) does not open it
    for (const svc of out.objects.filter((o) => o.kind === 'Service') as any[]) expect(svc.spec.ports.map((p: any) => p.port)).not.toContain(2526);
    expect(np.spec.ingress[0].ports.map((p: any) => p.port)).not.toContain(2526);
    const clash = renderRelay(input({ relay: relayObject('edge', { tls: { secretName: 'edge-cert' }, listeners: { submission: { port: 2526 } } }), fleetToken: 't' }));
    expect(clash.errors).toEqual(["listeners.submission: port 2526 is the fleet's hand-off listener (every relay pod runs it); choose another port"]);
  });

  it('without a persistent queue: the pods hand their queue on SIGTERM to the ready pods behind the headless Service, reachable from the fleet only', () => {
    const relay = relayObject('edge', { replicas: 3, tls: { secretName: 'edge-cert' }, queue: { persistence: { enabled: false } }, networkPolicy: { enabled: true, allowFrom: ['10.0.0.0/8'] } });
    const out = renderRelay(input({ relay, fleetToken: 'fleet-secret' }));
    expect(out.errors).toEqual([]);
    const cfg = relayConfigSchema.parse(YAML.parse(kindOf(out, 'ConfigMap').data['relay.yaml']));
    // SIGTERM is the signal on scale-down and rollout; the annotations file carries a drain
    // request only when the EmailRelay is deleted (every pod goes at once, no peer stays)
    expect(cfg.handoff).toEqual({
      annotationsFile: '/var/run/mailfleet/podinfo/annotations',
      host: '0.0.0.0', port: 2526, tokenFile: '/var/run/mailfleet/secrets/fleet.token', connections: 4, onShutdown: true, peers: ['edge-headless.mail.svc:2526'],
    });
    expect(decodeSecretData(kindOf(out, 'Secret'))['fleet.token']).toBe('fleet-secret');
    const dep = kindOf(out, 'Deployment');
    const pod = dep.spec.template.spec;
    expect(pod.containers[0].ports).toContainEqual({ name: 'handoff', containerPort: 2526, protocol: 'TCP' });
    expect(pod.volumes).toContainEqual({ name: 'podinfo', downwardAPI: { items: [{ path: 'annotations', fieldRef: { fieldPath: 'metadata.annotations' } }] } });
    expect(pod.containers[0].volumeMounts).toContainEqual({ name: 'podinfo', mountPath: '/var/run/mailfleet/podinfo', readOnly: true });
    // the new pod is ready before an old one goes, so a rollout always has a peer to hand to
    expect(dep.spec.strategy.rollingUpdate).toEqual({ maxUnavailable: 0, maxSurge: 1 });
    // the whole shutdown (drainTimeout, the 10 s hand-off grace, closing) fits before SIGKILL
    expect(pod.terminationGracePeriodSeconds).toBe(30 + 30);
    // the peer name: the headless Service over the same pods, ready ones only
    const headless = out.objects.find((o) => o.kind === 'Service' && o.metadata.name === 'edge-headless') as any;
    expect(headless.spec).toMatchObject({ clusterIP: 'None', selector: dep.spec.selector.matchLabels });
    expect(headless.spec.publishNotReadyAddresses).toBeUndefined(); // false: not-ready pods are not in its records
    for (const svc of out.objects.filter((o) => o.kind === 'Service') as any[]) expect(svc.spec.ports.map((p: any) => p.port)).not.toContain(2526);
    const np = kindOf(out, 'NetworkPolicy');
    expect(np.spec.ingress).toContainEqual({ from: [{ podSelector: { matchLabels: dep.spec.selector.matchLabels } }], ports: [{ protocol: 'TCP', port: 2526 }] });
    expect(np.spec.ingress.filter((r: any) => r.ports.some((p: any) => p.port === 2526))).toHaveLength(1);
  });

  it('the peers come from the operator only: a spec naming hand-off peers or a token changes nothing', () => {
    const plain = renderRelay(input({ relay: relayObject('edge', { queue: { persistence: { enabled: false } } }), fleetToken: 't' }));
    for (const spec of [{ handoff: { peers: ['evil.example.net:25'] } }, { queue: { persistence: { enabled: false }, handoff: { peers: ['evil.example.net:25'] } } }]) {
      const relay = relayObject('edge', { queue: { persistence: { enabled: false } }, ...spec } as never);
      const out = renderRelay(input({ relay, fleetToken: 't' }));
      expect(out.errors).toEqual([]);
      expect(kindOf(out, 'ConfigMap')).toEqual(kindOf(plain, 'ConfigMap'));
      expect(kindOf(out, 'ConfigMap').data['relay.yaml']).not.toContain('evil');
    }
  });

  it('sets controller ownerReferences on everything', () => {
    for (const o of renderRelay(input()).objects) {
      expect(o.metadata.ownerReferences).toEqual([{ apiVersion: 'mailfleet.io/v1alpha1', kind: 'EmailRelay', name: 'edge', uid: 'uid-edge', controller: true, blockOwnerDeletion: true }]);
    }
  });
});

describe('domain claims', () => {
  it('gives a contested domain to the older SenderDomain, then the lower name', () => {
    const a = domainObject('b-first', { domain: 'x.example', relayRef: { name: 'r' } }, 'mail', '2025-01-01T00:00:00Z');
    const b = domainObject('a-later', { domain: 'x.example', relayRef: { name: 'r' } }, 'mail', '2025-01-02T00:00:00Z');
    const c = domainObject('a-same', { domain: 'y.example', relayRef: { name: 'r' } }, 'mail', '2025-01-01T00:00:00Z');
    const d = domainObject('b-same', { domain: 'y.example', relayRef: { name: 'r' } }, 'mail', '2025-01-01T00:00:00Z');
    const owners = resolveClaims([b, a, d, c]).owners;
    expect(owners.get('x.example')?.metadata.name).toBe('b-first');
    expect(owners.get('y.example')?.metadata.name).toBe('a-same');
    const refusal = resolveClaims([b, a, d, c]).refused.get('mail/a-later');
    expect(refusal).toMatchObject({ reason: 'DomainConflict', with: 'mail/b-first' });
    expect([...resolveClaims([b, a, d, c]).refused.keys()].sort()).toEqual(['mail/a-later', 'mail/b-same']);
    const refused = renderSenderDomain({ sd: b, relay: undefined, refused: refusal!, internal: parseInternal({}), host: 'h', port: 587, now });
    expect(refused.objects).toEqual([]);
    expect(refused.status.conditions?.[0]).toMatchObject({ type: 'Ready', status: 'False', reason: 'DomainConflict', observedGeneration: 1 });
    expect(refused.status.conditions?.[0]?.message).toMatch(/already claimed by SenderDomain b-first/);
    // a permanent error: Degraded for Argo CD, Stalled for kstatus, nothing in progress
    const byType = Object.fromEntries(refused.status.conditions!.map((x) => [x.type, x.status]));
    expect(byType).toMatchObject({ Degraded: 'True', Stalled: 'True', Progressing: 'False', Reconciling: 'False' });
  });

  it('refuses the later of two SenderDomains asking for one SMTP username, explicit or generated', () => {
    const first = domainObject('first', { domain: 'a.example', relayRef: { name: 'r' }, credentials: { username: 'apps' } }, 'mail', '2025-01-01T00:00:00Z');
    const second = domainObject('second', { domain: 'b.example', relayRef: { name: 'r' }, credentials: { username: 'apps' } }, 'mail', '2025-01-02T00:00:00Z');
    // its generated username (the domain) collides with an explicit one created earlier
    const third = domainObject('third', { domain: 'c.example', relayRef: { name: 'r' } }, 'mail', '2025-01-03T00:00:00Z');
    const squatter = domainObject('squatter', { domain: 'd.example', relayRef: { name: 'r' }, credentials: { username: 'c.example' } }, 'mail', '2025-01-01T00:00:00Z');
    // same username on another relay, or without credentials: no conflict
    const elsewhere = domainObject('elsewhere', { domain: 'e.example', relayRef: { name: 'other' }, credentials: { username: 'apps' } }, 'mail', '2025-01-01T00:00:00Z');
    const noLogin = domainObject('nologin', { domain: 'f.example', relayRef: { name: 'r' }, credentials: { enabled: false, username: 'apps' } }, 'mail', '2025-01-01T00:00:00Z');
    const claims = resolveClaims([third, second, elsewhere, first, squatter, noLogin]);
    const onR = [...claims.owners.values()].filter((o) => o.spec.relayRef.name === 'r');
    expect(onR.map((o) => o.metadata.name).sort()).toEqual(['first', 'nologin', 'squatter']);
    expect(Object.fromEntries([...claims.refused].map(([k, v]) => [k, [v.reason, v.with]]))).toEqual({
      'mail/second': ['UsernameConflict', 'mail/first'], 'mail/third': ['UsernameConflict', 'mail/squatter'],
    });
    expect(claims.refused.get('mail/second')!.message).toMatch(/SMTP username apps is already used on relay r by SenderDomain first/);
    const out = renderSenderDomain({ sd: second, relay: undefined, refused: claims.refused.get('mail/second')!, internal: parseInternal({}), host: 'h', port: 587, now });
    expect(out.objects).toEqual([]);
    expect(out.status.conditions?.find((x) => x.type === 'Degraded')).toMatchObject({ status: 'True', reason: 'UsernameConflict' });

    // the relay config then lists each login once (the relay refuses a config naming one twice)
    const domains = onR.map((sd) => ({ sd, internal: internalFor('mailfleet') }));
    const rendered = renderRelay(input({ domains }));
    expect(rendered.errors).toEqual([]);
    expect(rendered.config!.credentials!.map((c) => c.username).sort()).toEqual(['apps', 'c.example']);
  });
});

describe('summary conditions', () => {
  it('mirror Progressing as Reconciling and Degraded as Stalled, so Argo CD and kstatus agree', () => {
    const s = (p: Parameters<typeof summaryConditions>[0]) => Object.fromEntries(summaryConditions(p, 'R', 'm').map((c) => [c.type, c.status]));
    expect(s('Ready')).toEqual({ Ready: 'True', Progressing: 'False', Reconciling: 'False', Degraded: 'False', Stalled: 'False' });
    expect(s('Progressing')).toEqual({ Ready: 'False', Progressing: 'True', Reconciling: 'True', Degraded: 'False', Stalled: 'False' });
    expect(s('Degraded')).toEqual({ Ready: 'False', Progressing: 'False', Reconciling: 'False', Degraded: 'True', Stalled: 'True' });
  });

  it('a SenderDomain waiting for its relay is Progressing; one whose key Secret is unreadable is Degraded', () => {
    const sd = domainObject('d', { domain: 'example.com', relayRef: { name: 'gone' } });
    const base = { sd, relay: undefined, internal: internalFor('mailfleet'), password: 'pw', host: 'h', port: 587, now };
    const waiting = renderSenderDomain(base).status.conditions!;
    expect(waiting.find((x) => x.type === 'Reconciling')).toMatchObject({ status: 'True', reason: 'RelayNotFound' });
    expect(waiting.find((x) => x.type === 'Stalled')?.status).toBe('False');
    const broken = renderSenderDomain({ ...base, internal: parseInternal({}), externalKeyError: 'Secret k not found' }).status.conditions!;
    expect(broken.find((x) => x.type === 'Stalled')).toMatchObject({ status: 'True', reason: 'KeyUnreadable', message: 'Secret k not found' });
  });
});

describe('ServiceMonitor', () => {
  const matches = (sel: Record<string, string>, labels: Record<string, string> | undefined) => Object.entries(sel).every(([k, v]) => labels?.[k] === v);
  for (const persistence of [true, false]) {
    it(`selects only the Service that serves metrics, not the headless one (persistence ${persistence})`, () => {
      const relay = relayObject('edge', { tls: { secretName: 'edge-cert' }, metrics: { serviceMonitor: { enabled: true } }, queue: { persistence: { enabled: persistence } } });
      const out = renderRelay(input({ relay, apis: { serviceMonitor: true, certManager: false } }));
      expect(out.errors).toEqual([]);
      const sm = kindOf(out, 'ServiceMonitor');
      const services = out.objects.filter((o) => o.kind === 'Service') as any[];
      expect(services).toHaveLength(2);
      const selected = services.filter((svc) => matches(sm.spec.selector.matchLabels, svc.metadata.labels));
      expect(selected.map((svc) => svc.metadata.name)).toEqual(['edge']);
      expect(selected[0].spec.clusterIP).toBeUndefined();
      expect(selected[0].spec.ports.map((p: any) => p.name)).toContain(sm.spec.endpoints[0].port);
    });
  }
});

describe('planDkim', () => {
  const spec = domainObject('d', { domain: 'example.com', relayRef: { name: 'r' }, dkim: { algorithm: 'both', rotationDelay: '1h', retireAfter: '2h' } }).spec.dkim;
  const t0 = Date.parse('2025-03-01T00:00:00Z');
  const h = 3_600_000;

  it('generates the first keys signing at once, then rotates: publish, switch once DNS has shown the records for the delay, retire later', () => {
    const first = planDkim({ spec, state: { keys: [] }, now: t0 });
    expect(first.generate).toEqual([{ selector: 'mailfleet', algorithm: 'rsa-sha256' }, { selector: 'mailfleet-ed', algorithm: 'ed25519-sha256' }]);
    expect(signingKeys(first.state, t0).map((k) => k.selector)).toEqual(['mailfleet', 'mailfleet-ed']);
    // replaying at the same state and later with nothing due changes nothing
    expect(planDkim({ spec, state: first.state, now: t0 + 10 * h }).state).toEqual(first.state);

    const rot = planDkim({ spec, state: first.state, now: t0 + h, rotateAnnotation: 'now' });
    expect(rot.generate.map((k) => k.selector)).toEqual(['mailfleet-2', 'mailfleet-2-ed']);
    expect(signingKeys(rot.state, t0 + h).map((k) => k.selector)).toEqual(['mailfleet', 'mailfleet-ed']);
    expect(waitingKeys(rot.state).map((k) => k.selector)).toEqual(['mailfleet-2', 'mailfleet-2-ed']);
    // same annotation again: no second rotation
    const same = planDkim({ spec, state: rot.state, now: t0 + h + 1000, rotateAnnotation: 'now' });
    expect(same.generate).toEqual([]);

    // the clock alone never switches: a day later with the records absent, the old key still signs
    const absent = planDkim({ spec, state: rot.state, now: t0 + 25 * h, rotateAnnotation: 'now', dnsSeen: { 'mailfleet-2': false, 'mailfleet-2-ed': false } });
    expect(signingKeys(absent.state, t0 + 25 * h).map((k) => k.selector)).toEqual(['mailfleet', 'mailfleet-ed']);
    expect(absent.blocked).toEqual(['mailfleet-2', 'mailfleet-2-ed']); // publishWithin (24h) passed

    // one record seen, the other not: still waiting (a generation switches as a whole)
    const half = planDkim({ spec, state: absent.state, now: t0 + 26 * h, rotateAnnotation: 'now', dnsSeen: { 'mailfleet-2': true, 'mailfleet-2-ed': false } });
    expect(signingKeys(half.state, t0 + 30 * h).map((k) => k.selector)).toEqual(['mailfleet', 'mailfleet-ed']);
    expect(half.blocked).toEqual(['mailfleet-2-ed']);
    const both = planDkim({ spec, state: half.state, now: t0 + 27 * h, rotateAnnotation: 'now', dnsSeen: { 'mailfleet-2': true, 'mailfleet-2-ed': true } });
    expect(both.blocked).toEqual([]);
    expect(both.nextAt).toBe(t0 + 28 * h); // the ed25519 record was first seen at 27h; rotationDelay is 1h
    // seen, then gone before the delay passed: the wait starts over
    const lost = planDkim({ spec, state: both.state, now: t0 + 27.5 * h, rotateAnnotation: 'now', dnsSeen: { 'mailfleet-2': true, 'mailfleet-2-ed': false } });
    expect(lost.events.map((e) => e.reason)).toEqual(['DKIMRecordLost']);
    const back = planDkim({ spec, state: lost.state, now: t0 + 28 * h, rotateAnnotation: 'now', dnsSeen: { 'mailfleet-2': true, 'mailfleet-2-ed': true } });
    expect(signingKeys(back.state, t0 + 28 * h).map((k) => k.selector)).toEqual(['mailfleet', 'mailfleet-ed']);

    const switched = planDkim({ spec, state: back.state, now: t0 + 29 * h, rotateAnnotation: 'now', dnsSeen: { 'mailfleet-2': true, 'mailfleet-2-ed': true } });
    expect(signingKeys(switched.state, t0 + 29 * h).map((k) => k.selector)).toEqual(['mailfleet-2', 'mailfleet-2-ed']);
    expect(switched.state.keys.filter((k) => k.retireAt).map((k) => k.selector)).toEqual(['mailfleet', 'mailfleet-ed']);
    expect(switched.events.map((e) => e.reason)).toEqual(['DKIMRotated']);
    expect(switched.nextAt).toBe(t0 + 31 * h);

    const retired = planDkim({ spec, state: switched.state, now: t0 + 31 * h, rotateAnnotation: 'now' });
    expect(retired.state.keys.map((k) => k.selector)).toEqual(['mailfleet-2', 'mailfleet-2-ed']);
  });

  it('gates the first key on DNS when dnsVerification is on (one sighting: it replaces no signature)', () => {
    const first = planDkim({ spec, state: { keys: [] }, now: t0, gateFirstKey: true });
    expect(signingKeys(first.state, t0)).toEqual([]);
    const notYet = planDkim({ spec, state: first.state, now: t0 + h, gateFirstKey: true, dnsSeen: { mailfleet: true, 'mailfleet-ed': false } });
    expect(signingKeys(notYet.state, t0 + h)).toEqual([]);
    const live = planDkim({ spec, state: notYet.state, now: t0 + 2 * h, gateFirstKey: true, dnsSeen: { mailfleet: true, 'mailfleet-ed': true } });
    expect(signingKeys(live.state, t0 + 2 * h).map((k) => k.selector)).toEqual(['mailfleet', 'mailfleet-ed']);
    expect(live.events.map((e) => e.reason)).toEqual(['DKIMKeyActive']);
  });

  it('turns a rotation scheduled by the clock (state of an earlier version) into one that waits for DNS', () => {
    const legacy: DkimState = { keys: [
      { selector: 'mailfleet', algorithm: 'rsa-sha256', generation: 1, publishedAt: new Date(t0).toISOString(), activeAt: new Date(t0).toISOString() },
      { selector: 'mailfleet-2', algorithm: 'rsa-sha256', generation: 2, publishedAt: new Date(t0 + h).toISOString(), activeAt: new Date(t0 + 3 * h).toISOString() },
    ] };
    const s = { ...spec, algorithm: 'rsa-2048' as const };
    const later = planDkim({ spec: s, state: legacy, now: t0 + 2 * h });
    expect(planDkim({ spec: s, state: later.state, now: t0 + 4 * h }).state.keys.map((k) => [k.selector, keyPhase(k, t0 + 4 * h)]))
      .toEqual([['mailfleet', 'active'], ['mailfleet-2', 'published']]);
  });

  it('rotates on a period', () => {
    const s = { ...spec, algorithm: 'ed25519' as const, rotationPeriod: '30d' };
    const first = planDkim({ spec: s, state: { keys: [] }, now: t0 });
    expect(first.nextAt).toBe(t0 + 30 * 24 * h);
    const due = planDkim({ spec: s, state: first.state, now: t0 + 30 * 24 * h });
    expect(due.generate.map((k) => k.selector)).toEqual(['mailfleet-2']);
  });

  it('lists every published selector in status.dnsRecords with SPF and DMARC suggestions', () => {
    const state: DkimState = { keys: [
      { selector: 'old', algorithm: 'ed25519-sha256', generation: 1, publishedAt: now.toISOString(), activeAt: now.toISOString(), retireAt: '2030-01-01T00:00:00Z' },
      { selector: 'new', algorithm: 'ed25519-sha256', generation: 2, publishedAt: now.toISOString(), activeAt: now.toISOString() },
    ] };
    const sd = domainObject('d', { domain: 'example.com', relayRef: { name: 'r' } });
    const out = renderSenderDomain({ sd, relay: relayObject('r'), internal: { dkim: state, pems: { old: ed25519Pem(), new: ed25519Pem() } }, password: 'pw', host: 'r.mail.svc.cluster.local', port: 587, now });
    expect(out.status.dnsRecords?.map((r) => [r.name, r.purpose])).toEqual([
      ['old._domainkey.example.com.', 'dkim'], ['new._domainkey.example.com.', 'dkim'], ['example.com.', 'spf'], ['_dmarc.example.com.', 'dmarc'],
    ]);
    expect(out.status.dnsRecords?.[0]).toMatchObject({ type: 'TXT', ttl: 3600, selector: 'old' });
    expect(out.status.dnsRecords?.[0]?.zone).toBe(`old._domainkey.example.com. 3600 IN TXT "${out.status.dnsRecords?.[0]?.value}"`);
    expect(out.status.dnsRecords?.[0]?.value).toMatch(/^v=DKIM1; k=ed25519; p=[A-Za-z0-9+/]{43}=$/);
    expect(out.status.dkim?.activeSelectors).toEqual(['new']);
    const creds = decodeSecretData(out.objects.find((o) => o.metadata.name === 'd-smtp') as any);
    expect(creds).toEqual({ host: 'r.mail.svc.cluster.local', port: '587', username: 'example.com', password: 'pw' });
    expect(out.ready).toBe(true);
  });

  it('splits a long TXT value into ≤255-byte character-strings that join back to the value, and a zone line with all of them', () => {
    const state: DkimState = { keys: [{ selector: 'rsa', algorithm: 'rsa-sha256', generation: 1, publishedAt: now.toISOString(), activeAt: now.toISOString() }] };
    const sd = domainObject('d', { domain: 'example.com', relayRef: { name: 'r' } });
    const out = renderSenderDomain({ sd, relay: relayObject('r'), internal: { dkim: state, pems: { rsa: rsaPem() } }, password: 'pw', host: 'h', port: 587, now });
    const rec = out.status.dnsRecords![0]!;
    expect(rec.value.length).toBeGreaterThan(255);
    expect(rec.values.length).toBe(Math.ceil(rec.value.length / 255));
    expect(rec.values.every((v) => Buffer.byteLength(v) <= 255)).toBe(true);
    expect(rec.values.join('')).toBe(rec.value);
    expect(rec.zone).toBe(`rsa._domainkey.example.com. 3600 IN TXT ${rec.values.map((v) => `"${v}"`).join(' ')}`);
    // never split inside a UTF-8 sequence
    const utf = txtStrings('é'.repeat(200));
    expect(utf.every((v) => Buffer.byteLength(v) <= 255 && !v.includes('\uFFFD'))).toBe(true);
    expect(utf.join('')).toBe('é'.repeat(200));
  });
});
