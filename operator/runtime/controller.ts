// The I/O edge: caches fed by reflectors, a work queue, and the two reconcile loops that
// gather inputs, call the pure reconcilers, and apply only what differs.
import { generateKeyPair, randomBytes, createHash } from 'node:crypto';
import { Resolver } from 'node:dns/promises';
import { promisify } from 'node:util';
import type { Logger } from 'pino';
import { hashPassword } from '../../relay/auth/password.ts';
import { API_VERSION } from '../api/common.ts';
import { formatIssues } from '../../relay/util/zod-issues.ts';
import { emailRelaySpec } from '../api/emailrelay.ts';
import { senderDomainSpec } from '../api/senderdomain.ts';
import { resolveClaims } from '../reconcilers/claims.ts';
import { findCondition, mergeConditions, summaryConditions } from '../reconcilers/conditions.ts';
import { planDkim, type KeyAlgorithm } from '../reconcilers/dkim.ts';
import { detectAlgorithm, parseInternal, reconcileDomain, type SenderDomain } from '../reconcilers/domain.ts';
import {
  DOMAIN_LABEL, FIELD_MANAGER, MANAGED_BY, RELAY_LABEL, ROTATE_ANNOTATION, decodeSecretData, domainNames, relayHost, relayNames,
  relaySelector, selectorString, type KubeObject,
} from '../reconcilers/objects.ts';
import { referencedSecrets, reconcileRelay, type AttachedDomain, type EmailRelay } from '../reconcilers/relay.ts';
import { canonical, needsApply, withIntent } from './diff.ts';
import { ApiError, type Kube } from './kube.ts';
import type { OperatorMetrics } from './metrics.ts';
import { WorkQueue } from './queue.ts';
import { Reflector, type WatchEventType } from './reflector.ts';

const genKeyPair = promisify(generateKeyPair);

export interface ControllerOptions {
  kube: Kube;
  log: Logger;
  metrics: OperatorMetrics;
  image: string;
  identity: string;
  dnsServers?: string[];
  resyncMs: number;
  workers: number;
  /** Server-side watch timeouts (tests shorten them). */
  watchSeconds?: [number, number];
}

const OWNED_KINDS: [string, string][] = [
  ['v1', 'ConfigMap'], ['v1', 'Secret'], ['v1', 'Service'], ['apps/v1', 'StatefulSet'], ['apps/v1', 'Deployment'],
  ['policy/v1', 'PodDisruptionBudget'], ['autoscaling/v2', 'HorizontalPodAutoscaler'], ['networking.k8s.io/v1', 'NetworkPolicy'],
];

type Status = Record<string, unknown> & { conditions?: any[] };

/** An object we would write exists and belongs to someone else: only a person can resolve it. */
class NotControlledError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NotControlledError';
  }
}

export class Controller {
  private readonly o: ControllerOptions;
  readonly relays: Reflector<EmailRelay>;
  readonly domains: Reflector<SenderDomain>;
  readonly owned = new Map<string, Reflector<KubeObject>>();
  readonly queue: WorkQueue;
  private resyncTimer: NodeJS.Timeout | undefined;
  private workers: Promise<void>[] = [];
  private apis = { serviceMonitor: false, certManager: false };

  constructor(o: ControllerOptions) {
    this.o = o;
    this.queue = new WorkQueue({ onDepth: (d) => o.metrics.queueDepth.set(d) });
    const mk = <T extends KubeObject>(apiVersion: string, kind: string, onEvent: (t: WatchEventType, obj: T) => void, labelSelector?: string) =>
      new Reflector<T>({
        kube: o.kube, apiVersion, kind, labelSelector, log: o.log, onEvent, ...(o.watchSeconds ? { watchSeconds: o.watchSeconds } : {}),
        onRestart: (reason) => o.metrics.watchRestarts.inc({ kind, reason }),
      });
    this.relays = mk<EmailRelay>(API_VERSION, 'EmailRelay', (_t, r) => this.onRelay(r));
    this.domains = mk<SenderDomain>(API_VERSION, 'SenderDomain', (_t, sd) => this.onDomain(sd));
    for (const [apiVersion, kind] of OWNED_KINDS) {
      this.owned.set(kind, mk<KubeObject>(apiVersion, kind, (_t, obj) => this.onOwned(obj), `${MANAGED_BY}=${FIELD_MANAGER}`));
    }
  }

  private onRelay(r: EmailRelay): void {
    const ns = r.metadata.namespace ?? '';
    this.queue.add(`EmailRelay/${ns}/${r.metadata.name}`);
    for (const sd of this.domains.list(ns)) if (sd.spec?.relayRef?.name === r.metadata.name) this.queue.add(`SenderDomain/${ns}/${sd.metadata.name}`);
  }

  private onDomain(sd: SenderDomain): void {
    const ns = sd.metadata.namespace ?? '';
    this.queue.add(`SenderDomain/${ns}/${sd.metadata.name}`);
    if (sd.spec?.relayRef?.name) this.queue.add(`EmailRelay/${ns}/${sd.spec.relayRef.name}`);
    // a claim ending or starting changes who owns a domain or a login on that relay
    for (const other of this.domains.list(ns)) {
      if (other.metadata.name === sd.metadata.name) continue;
      if (other.spec?.domain === sd.spec?.domain || (sd.spec?.relayRef?.name && other.spec?.relayRef?.name === sd.spec.relayRef.name)) {
        this.queue.add(`SenderDomain/${ns}/${other.metadata.name}`);
      }
    }
  }

  private onOwned(obj: KubeObject): void {
    const ns = obj.metadata.namespace ?? '';
    const relay = obj.metadata.labels?.[RELAY_LABEL];
    const sd = obj.metadata.labels?.[DOMAIN_LABEL];
    if (relay) this.queue.add(`EmailRelay/${ns}/${relay}`);
    if (sd) this.queue.add(`SenderDomain/${ns}/${sd}`);
  }

  async start(): Promise<void> {
    await this.discover();
    for (const r of [this.relays, this.domains, ...this.owned.values()]) r.start();
    for (let i = 0; i < this.o.workers; i++) this.workers.push(this.work());
    this.resyncTimer = setInterval(() => void this.resync(), this.o.resyncMs);
    this.resyncTimer.unref();
  }

  get synced(): boolean {
    return [this.relays, this.domains, ...this.owned.values()].every((r) => r.synced);
  }

  async stop(): Promise<void> {
    if (this.resyncTimer) clearInterval(this.resyncTimer);
    this.queue.close();
    await Promise.all([this.relays, this.domains, ...this.owned.values()].map((r) => r.close()));
    await Promise.all(this.workers);
  }

  /** Re-checks the optional APIs first, so a resync already renders with what is installed now. */
  private async resync(): Promise<void> {
    await this.discover();
    for (const r of this.relays.list()) this.onRelay(r);
    for (const sd of this.domains.list()) this.queue.add(`SenderDomain/${sd.metadata.namespace}/${sd.metadata.name}`);
  }

  /**
   * Which optional APIs (Prometheus Operator, cert-manager) are served. Checked at start and
   * on every resync, so installing one later needs no operator restart. Only a 404 means
   * "not installed": any other failure keeps what we knew, so a flaky API server does not
   * make every TLS relay Degraded.
   */
  async discover(): Promise<{ serviceMonitor: boolean; certManager: boolean }> {
    const has = async (path: string, known: boolean) => {
      try {
        await this.o.kube.request('GET', path, { verb: 'discovery', resource: 'discovery' });
        return true;
      } catch (e) {
        if (e instanceof ApiError && e.status === 404) return false;
        this.o.log.warn({ path, err: (e as Error).message }, 'API discovery failed; keeping the last answer');
        return known;
      }
    };
    const before = this.apis;
    this.apis = {
      serviceMonitor: await has('/apis/monitoring.coreos.com/v1', before.serviceMonitor),
      certManager: await has('/apis/cert-manager.io/v1', before.certManager),
    };
    if (this.apis.serviceMonitor !== before.serviceMonitor || this.apis.certManager !== before.certManager) {
      this.o.log.info({ apis: this.apis }, 'optional APIs changed');
      for (const r of this.relays.list()) this.onRelay(r);
    }
    return this.apis;
  }

  private async work(): Promise<void> {
    const { metrics, log } = this.o;
    for (;;) {
      const key = await this.queue.get();
      if (key === undefined) return;
      // Reconcile only from a complete picture of the world.
      if (!this.synced) { this.queue.done(key); this.queue.addAfter(key, 200); continue; }
      const [kind, ns = '', name = ''] = key.split('/');
      const end = metrics.reconcileDuration.startTimer({ kind });
      try {
        const after = kind === 'EmailRelay' ? await this.reconcileRelay(ns, name) : await this.reconcileDomain(ns, name);
        this.queue.forget(key);
        if (after !== undefined) this.queue.addAfter(key, after);
        metrics.reconciles.inc({ kind, result: 'ok' });
      } catch (e) {
        metrics.reconciles.inc({ kind, result: 'error' });
        const delay = this.queue.addRateLimited(key);
        log.warn({ kind, namespace: ns, name, err: (e as Error).message, retryInMs: delay }, 'reconcile failed');
      } finally {
        end();
        this.queue.done(key);
      }
    }
  }

  // ------------------------------------------------------------------------------------------

  private ownedCached(kind: string, ns: string, name: string): KubeObject | undefined {
    return this.owned.get(kind)?.get(ns, name);
  }

  private async ownedOrLive(kind: 'Secret', ns: string, name: string): Promise<KubeObject | undefined> {
    return this.ownedCached(kind, ns, name) ?? await this.o.kube.getOrUndefined('v1', kind, name, ns);
  }

  /** Applies obj unless the live object already matches; refuses to take over objects we do not control. */
  private async applyOwned(obj: KubeObject, ownerUid: string): Promise<boolean> {
    const desired = withIntent(obj);
    const ns = obj.metadata.namespace ?? '';
    const live = this.owned.has(obj.kind)
      ? this.ownedCached(obj.kind, ns, obj.metadata.name) ?? await this.o.kube.getOrUndefined(obj.apiVersion, obj.kind, obj.metadata.name, ns)
      : await this.o.kube.getOrUndefined(obj.apiVersion, obj.kind, obj.metadata.name, ns);
    if (live) {
      const ctl = live.metadata.ownerReferences?.find((r) => r.controller);
      if (!ctl || ctl.uid !== ownerUid) {
        throw new NotControlledError(`${obj.kind} ${ns}/${obj.metadata.name} exists and is not controlled by this object; rename or delete it`);
      }
    }
    if (!needsApply(desired, live)) return false;
    this.o.log.info({ namespace: ns, name: obj.metadata.name, kind: obj.kind, create: !live }, 'applying');
    await this.o.kube.apply(desired, true);
    return true;
  }

  private async writeStatus(obj: EmailRelay | SenderDomain, status: Status): Promise<void> {
    if (canonical(obj.status ?? {}) === canonical(status)) return;
    await this.o.kube.apply({ apiVersion: API_VERSION, kind: obj.kind, metadata: { name: obj.metadata.name, namespace: obj.metadata.namespace }, status } as KubeObject, true, 'status');
  }

  async event(obj: KubeObject, type: 'Normal' | 'Warning', reason: string, message: string): Promise<void> {
    const now = new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
    try {
      await this.o.kube.create({
        apiVersion: 'v1', kind: 'Event',
        metadata: { name: `${obj.metadata.name}.${Date.now().toString(16)}${randomBytes(2).toString('hex')}`, namespace: obj.metadata.namespace },
        involvedObject: { apiVersion: obj.apiVersion, kind: obj.kind, name: obj.metadata.name, namespace: obj.metadata.namespace, uid: obj.metadata.uid },
        type, reason, message: message.slice(0, 1024), count: 1, firstTimestamp: now, lastTimestamp: now,
        source: { component: FIELD_MANAGER }, reportingComponent: FIELD_MANAGER, reportingInstance: this.o.identity,
      });
    } catch (e) {
      this.o.log.warn({ err: (e as Error).message, reason }, 'could not record event');
    }
  }

  private async readSecret(ns: string, name: string): Promise<Record<string, string> | undefined> {
    const s = await this.o.kube.getOrUndefined<{ data?: Record<string, string> }>('v1', 'Secret', name, ns);
    return s ? decodeSecretData(s) : undefined;
  }

  // ------------------------------------------------------------------------------------------

  private async reconcileRelay(ns: string, name: string): Promise<number | undefined> {
    const log = this.o.log.child({ namespace: ns, name, kind: 'EmailRelay' });
    const raw = this.relays.get(ns, name);
    if (!raw || raw.metadata.deletionTimestamp) return undefined; // children go by garbage collection
    const gen = raw.metadata.generation ?? 0;
    const now = new Date();
    const parsed = emailRelaySpec.safeParse(raw.spec);
    const degrade = async (reason: string, message: string) => {
      const was = findCondition(raw.status?.conditions, 'Degraded');
      const conds = mergeConditions(raw.status?.conditions, summaryConditions('Degraded', reason, message), gen, now);
      await this.writeStatus(raw, { ...raw.status, observedGeneration: gen, conditions: conds });
      if (was?.status !== 'True' || was.message !== message) await this.event(raw, 'Warning', reason, message);
    };
    if (!parsed.success) {
      await degrade('InvalidSpec', formatIssues(parsed.error).join('; '));
      return undefined;
    }
    const relay: EmailRelay = { ...raw, spec: parsed.data };
    const all = this.domains.list(ns).flatMap((sd) => {
      const s = senderDomainSpec.safeParse(sd.spec);
      return s.success ? [{ ...sd, spec: s.data }] : [];
    });
    const { owners } = resolveClaims(all, name);
    const attached: AttachedDomain[] = [];
    for (const sd of owners.values()) {
      const internal = this.ownedCached('Secret', ns, domainNames(sd.metadata.name).internal);
      if (!internal) continue; // its reconcile has not created keys yet; the Secret's event brings us back
      attached.push({ sd, internal: parseInternal(decodeSecretData(internal as { data?: Record<string, string> })) });
    }
    const userSecrets = new Map<string, Record<string, string>>();
    for (const s of referencedSecrets(relay, attached.map((a) => a.sd))) {
      const data = await this.readSecret(ns, s);
      if (data) userSecrets.set(s, data);
    }
    const out = reconcileRelay({ relay, domains: attached, userSecrets, image: this.o.image, apis: this.apis, now });
    if (out.errors.length) {
      log.warn({ errors: out.errors }, 'relay config not rendered');
      await degrade('ConfigInvalid', out.errors.join('; '));
      return undefined;
    }
    let changed = 0;
    try {
      for (const obj of out.objects) if (await this.applyOwned(obj, raw.metadata.uid as string)) changed++;
      for (const a of out.absent) {
        const live = this.ownedCached(a.kind, ns, a.name) ?? (this.owned.has(a.kind) ? undefined : await this.o.kube.getOrUndefined(a.apiVersion, a.kind, a.name, ns));
        if (live && live.metadata.ownerReferences?.some((r) => r.controller && r.uid === raw.metadata.uid)) {
          log.info({ kind: a.kind, child: a.name }, 'deleting object no longer wanted');
          await this.o.kube.delete(a.apiVersion, a.kind, a.name, ns, live.metadata.uid);
          changed++;
        }
      }
    } catch (e) {
      if (e instanceof NotControlledError) {
        await degrade('OwnershipConflict', e.message);
        return undefined; // retrying cannot help; a resync or an edit brings us back
      }
      // The API refusing what we render (a 4xx such as 422) will not go away by retrying:
      // Degraded/Stalled tells people and GitOps tools. A timeout, a 5xx, a conflict or
      // throttling is transient: retry with backoff without flagging the relay as failed.
      const status = e instanceof ApiError ? e.status : 0;
      if (status >= 400 && status < 500 && ![408, 409, 429].includes(status)) await degrade('ApplyFailed', (e as Error).message);
      throw e;
    }
    if (changed) log.info({ changed }, 'reconciled');

    const persistent = relay.spec.queue.persistence.enabled;
    const workload = this.ownedCached(persistent ? 'StatefulSet' : 'Deployment', ns, relayNames(name).workload) as
      (KubeObject & { status?: { replicas?: number; readyReplicas?: number; updatedReplicas?: number; observedGeneration?: number }; metadata: { generation?: number } }) | undefined;
    const want = relay.spec.replicas;
    const ws = workload?.status ?? {};
    const current = (workload?.metadata.generation ?? 0) === (ws.observedGeneration ?? -1);
    const readyN = ws.readyReplicas ?? 0;
    const rolledOut = !!workload && current && readyN >= want && (ws.updatedReplicas ?? 0) >= want && (ws.replicas ?? 0) === want;
    // Observed and applied, pods not all updated and ready: Progressing, and for kstatus
    // Reconciling, so GitOps tools keep waiting until the rollout completes.
    const conds = rolledOut
      ? summaryConditions('Ready', 'Ready', `${readyN}/${want} pods ready`)
      : summaryConditions('Progressing', 'PodsNotReady', `${readyN}/${want} pods ready${workload ? '' : ' (workload not created yet)'}`);
    const wasReady = findCondition(raw.status?.conditions, 'Ready')?.status === 'True';
    const status: Status = {
      observedGeneration: gen,
      conditions: mergeConditions(raw.status?.conditions, conds, gen, now),
      replicas: ws.replicas ?? 0,
      readyReplicas: readyN,
      selector: selectorString(relaySelector(name)),
      endpoint: { host: relayHost(name, ns), ports: out.ports },
      domains: owners.size,
    };
    await this.writeStatus(raw, status);
    if (rolledOut && !wasReady) await this.event(raw, 'Normal', 'RelayReady', `${readyN}/${want} relay pods ready`);
    return undefined;
  }

  // ------------------------------------------------------------------------------------------

  private async reconcileDomain(ns: string, name: string): Promise<number | undefined> {
    try {
      return await this.reconcileDomainInner(ns, name);
    } catch (e) {
      const raw = this.domains.get(ns, name);
      if (!(e instanceof NotControlledError) || !raw) throw e;
      const gen = raw.metadata.generation ?? 0;
      const was = findCondition(raw.status?.conditions, 'Degraded');
      await this.writeStatus(raw, { ...raw.status, observedGeneration: gen, conditions: mergeConditions(raw.status?.conditions, summaryConditions('Degraded', 'OwnershipConflict', e.message), gen, new Date()) });
      if (was?.status !== 'True' || was.message !== e.message) await this.event(raw, 'Warning', 'OwnershipConflict', e.message);
      return undefined; // retrying cannot help; a resync or an edit brings us back
    }
  }

  private async reconcileDomainInner(ns: string, name: string): Promise<number | undefined> {
    const log = this.o.log.child({ namespace: ns, name, kind: 'SenderDomain' });
    const raw = this.domains.get(ns, name);
    if (!raw || raw.metadata.deletionTimestamp) return undefined;
    const gen = raw.metadata.generation ?? 0;
    const now = new Date();
    const parsed = senderDomainSpec.safeParse(raw.spec);
    if (!parsed.success) {
      const msg = formatIssues(parsed.error).join('; ');
      const was = findCondition(raw.status?.conditions, 'Degraded');
      await this.writeStatus(raw, { observedGeneration: gen, conditions: mergeConditions(raw.status?.conditions, summaryConditions('Degraded', 'InvalidSpec', msg), gen, now) });
      if (was?.status !== 'True' || was.message !== msg) await this.event(raw, 'Warning', 'InvalidSpec', msg);
      return undefined;
    }
    const sd: SenderDomain = { ...raw, spec: parsed.data };
    const spec = sd.spec;
    const relay = this.relays.get(ns, spec.relayRef.name);
    const all = this.domains.list(ns).flatMap((d) => {
      const s = senderDomainSpec.safeParse(d.spec);
      return s.success ? [{ ...d, spec: s.data }] : [];
    });
    const refused = resolveClaims(all, spec.relayRef.name).refused.get(name);
    const names = domainNames(name, spec.credentials.secretName);

    const relaySpec = relay ? emailRelaySpec.safeParse(relay.spec) : undefined;
    const rs = relaySpec?.success ? relaySpec.data : emailRelaySpec.parse({});
    const port = rs.listeners.submission.enabled ? rs.listeners.submission.port : rs.listeners.implicitTls.port;
    const host = relayHost(spec.relayRef.name, ns);

    if (refused) {
      const out = reconcileDomain({ sd, relay, refused, internal: parseInternal({}), host, port, now });
      const was = findCondition(raw.status?.conditions, 'Degraded');
      await this.writeStatus(raw, out.status);
      if (was?.status !== 'True' || was.reason !== refused.reason) await this.event(raw, 'Warning', refused.reason, refused.message);
      return undefined;
    }

    // Generated state (DKIM keys, the app password) is read cache first, then from the API:
    // a cache miss is not proof of absence (the watch lags a fresh write, or the object lost
    // our label), and treating it as absence would silently replace keys and passwords.
    const liveInternal = await this.ownedOrLive('Secret', ns, names.internal);
    const internal = parseInternal(decodeSecretData(liveInternal as { data?: Record<string, string> } | undefined));

    let externalAlgorithm: KeyAlgorithm | undefined;
    let externalKeyError: string | undefined;
    if (spec.dkim.secretRef) {
      const data = await this.readSecret(ns, spec.dkim.secretRef.name);
      const pem = data?.[spec.dkim.secretRef.key];
      if (!pem) externalKeyError = `Secret ${spec.dkim.secretRef.name} ${data ? `has no key ${spec.dkim.secretRef.key}` : 'not found'}`;
      else {
        try {
          externalAlgorithm = detectAlgorithm(pem);
          internal.pems[spec.dkim.selector] = pem;
        } catch (e) {
          externalKeyError = `Secret ${spec.dkim.secretRef.name}: ${(e as Error).message}`;
        }
      }
    }
    const plan = planDkim({ spec: spec.dkim, state: internal.dkim, now: now.getTime(), rotateAnnotation: raw.metadata.annotations?.[ROTATE_ANNOTATION], externalAlgorithm });
    for (const g of plan.generate) {
      const kp = g.algorithm === 'ed25519-sha256' ? await genKeyPair('ed25519') : await genKeyPair('rsa', { modulusLength: 2048 });
      internal.pems[g.selector] = kp.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    }
    internal.dkim = plan.state;
    for (const sel of Object.keys(internal.pems)) if (!plan.state.keys.some((k) => k.selector === sel)) delete internal.pems[sel];

    let password: string | undefined;
    if (spec.credentials.enabled) {
      const app = await this.ownedOrLive('Secret', ns, names.credentials);
      if (app && !app.metadata.ownerReferences?.some((r) => r.controller && r.uid === raw.metadata.uid)) {
        throw new NotControlledError(`Secret ${ns}/${names.credentials} exists and is not controlled by this SenderDomain; rename or delete it, or set credentials.secretName`);
      }
      password = app ? decodeSecretData(app as { data?: Record<string, string> }).password : undefined;
      password ||= randomBytes(24).toString('base64url');
      const fp = createHash('sha256').update(password).digest('hex');
      if (internal.passwordFingerprint !== fp || !internal.passwordHash) {
        internal.passwordHash = await hashPassword(password);
        internal.passwordFingerprint = fp;
      }
    }

    let dns: { ok: boolean; message: string } | undefined;
    let requeue = plan.nextAt !== undefined ? Math.max(1000, plan.nextAt - now.getTime()) : undefined;
    if (spec.dnsVerification.enabled) {
      dns = await this.verifyDns(spec.domain, internal);
      if (!dns.ok) requeue = Math.min(requeue ?? Infinity, 60_000);
    }

    const out = reconcileDomain({ sd, relay, internal, ...(password ? { password } : {}), host, port, now, ...(externalKeyError ? { externalKeyError } : {}), ...(dns ? { dns } : {}) });
    for (const obj of out.objects) await this.applyOwned(obj, raw.metadata.uid as string);
    await this.writeStatus(raw, out.status);
    for (const ev of plan.events) {
      log.info({ reason: ev.reason }, ev.message);
      await this.event(raw, 'Normal', ev.reason, ev.message);
    }
    const was = findCondition(raw.status?.conditions, 'DNSVerified');
    const nowDns = findCondition(out.status.conditions as never, 'DNSVerified');
    if (nowDns && was?.status !== nowDns.status) await this.event(raw, nowDns.status === 'True' ? 'Normal' : 'Warning', nowDns.reason, nowDns.message);
    return requeue;
  }

  private async verifyDns(domain: string, internal: ReturnType<typeof parseInternal>): Promise<{ ok: boolean; message: string }> {
    const resolver = new Resolver({ timeout: 3000, tries: 2 });
    if (this.o.dnsServers?.length) resolver.setServers(this.o.dnsServers);
    const { dnsRecords } = await import('../reconcilers/domain.ts');
    const want = dnsRecords(domain, internal.dkim, internal.pems).filter((r) => r.required);
    const missing: string[] = [];
    for (const r of want) {
      try {
        const txt = (await resolver.resolveTxt(r.name)).map((chunks) => chunks.join(''));
        if (!txt.some((t) => t.replace(/\s+/g, '') === r.value.replace(/\s+/g, ''))) missing.push(`${r.name} (different value)`);
      } catch (e) {
        missing.push(`${r.name} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
      }
    }
    return missing.length ? { ok: false, message: `not published: ${missing.join(', ')}` } : { ok: true, message: `${want.length} DKIM record(s) found` };
  }
}

export { ApiError };
