// The EmailRelay controller: gathers what a relay's render needs (the SenderDomains that own
// their domain on it, their internal Secrets, the user Secrets the spec references), renders
// it, applies what differs, deletes what is no longer wanted, and writes the status computed
// from the workload's rollout.
import type { Logger } from 'pino';
import { claimKey, relayKeyOf } from '../render/claims.ts';
import { findCondition, mergeConditions, summaryConditions } from '../render/conditions.ts';
import { parseInternal } from '../render/domain-internal.ts';
import { signingKeys } from '../render/dkim.ts';
import { DOMAIN_LABEL, RELAY_LABEL, decodeSecretData, domainNames, relayNames, type EmailRelay, type KubeObject, type SenderDomain } from '../render/objects.ts';
import { renderRelay, type AttachedDomain, type RelayOutput } from '../render/relay.ts';
import { SECRET_BUDGET_EXCEEDED } from '../render/relay-domains.ts';
import { relayStatus, type Workload } from '../render/relay-status.ts';
import { NotControlledError, type Applier } from '../runtime/apply.ts';
import type { Cache } from '../runtime/cache.ts';
import type { OptionalApis } from '../runtime/discovery.ts';
import { ApiError, type Kube } from '../runtime/kube.ts';
import type { Reconciler, Request } from '../runtime/manager.ts';
import { parseRelay } from './specs.ts';
import { claimIndex } from './attachment.ts';
import { verificationRequired, type DomainVerifier } from '../tenancy/verification.ts';
import { selectorCondition } from '../tenancy/admission.ts';
import { OAuth2ProbeCache } from '../../relay/delivery/oauth2/probe.ts';
import { smarthostAuthCondition } from '../render/smarthost-oauth2.ts';
import { IMAGE_OVERRIDE_NOT_ALLOWED, imageOverrideRefusal } from '../tenancy/image-override.ts';
import { domainSecretRefs, namesSecret, relaySecretRefs } from '../tenancy/secret-refs.ts';
import { UserSecrets, refusalCondition } from './user-secrets.ts';
import { TARGET_NOT_ALLOWED, domainTargetRefusals, relayTargetRefusals } from '../tenancy/outbound-targets.ts';
import { EGRESS_CONDITION } from '../render/egress-identity.ts';
import type { EgressIdentityChecker } from './egress-identity.ts';
import { randomBytes } from 'node:crypto';
import { DRAIN_FINALIZER, SKIP_DRAIN_ANNOTATION, planDrain, type DrainPlan } from '../render/drain.ts';
import { FLEET_TOKEN_KEY } from '../render/relay-paths.ts';
import { DrainIO, ProxyStatusReader, type PodStatusReader } from './drain.ts';

export interface EmailRelayControllerOptions {
  cache: Cache;
  apply: Applier;
  kube: Kube;
  log: Logger;
  /** Relay image when spec.image is unset. */
  image: string;
  /** Honour spec.image (--allow-image-override); default false: such a relay is refused. */
  allowImageOverride?: boolean;
  apis: () => OptionalApis;
  /** Asks identity providers whether OAuth2 smarthost credentials work (cached); tests inject one. */
  oauth2Probes?: OAuth2ProbeCache;
  /** Checks the PTR records of MX-mode egress addresses (condition EgressIdentityVerified); off when absent. */
  egressIdentity?: EgressIdentityChecker;
  /** Proof of control over domains, shared with the SenderDomain controller. */
  verifier: DomainVerifier;
  /** How the relay pods' /status is read during a drain; default through the API server's pods/proxy. */
  podStatus?: PodStatusReader;
}

/** How soon a failed OAuth2 check is repeated (the probe cache answers from memory until then). */
const OAUTH2_RECHECK_MS = 300_000;

export class EmailRelayController implements Reconciler {
  readonly kind = 'EmailRelay';

  private readonly o: EmailRelayControllerOptions;
  private readonly probes: OAuth2ProbeCache;
  private readonly secrets: UserSecrets;

  private readonly drain: DrainIO;

  constructor(o: EmailRelayControllerOptions) {
    this.o = o;
    this.drain = new DrainIO(o.kube, o.podStatus ?? new ProxyStatusReader(o.kube), o.log);
    this.probes = o.oauth2Probes ?? new OAuth2ProbeCache({ failedTtlMs: OAUTH2_RECHECK_MS });
    this.secrets = new UserSecrets({ cache: o.cache, kube: o.kube });
    claimIndex(o.cache); // kept from the first event on
  }

  /**
   * The relay itself; the relays of every SenderDomain claiming a SenderDomain's domain (the
   * owner, and so the relay serving it, may move); the relays of a Namespace's SenderDomains
   * (its labels may admit or refuse them); the relay an owned object belongs to; and for a
   * user Secret (its consent label added or removed, it was created) the relays that name it
   * or serve a SenderDomain that does.
   */
  requestsFor(obj: KubeObject): Request[] {
    const namespace = obj.metadata.namespace ?? '';
    const relayOf = (sd: SenderDomain): Request => {
      const [ns = '', name = ''] = relayKeyOf(sd).split('/');
      return { namespace: ns, name };
    };
    const valid = (sd: SenderDomain) => !!sd.spec?.relayRef?.name && typeof sd.spec.domain === 'string';
    if (obj.kind === 'EmailRelay') return [{ namespace, name: obj.metadata.name }];
    if (obj.kind === 'Namespace') return this.o.cache.domains.list(obj.metadata.name).filter(valid).map(relayOf);
    if (obj.kind === 'SenderDomain') {
      const sd = obj as SenderDomain;
      if (!valid(sd)) return [];
      const rivals = claimIndex(this.o.cache).claimantsOf(sd.spec.domain).filter((o) => claimKey(o) !== claimKey(sd));
      return [sd, ...rivals].map(relayOf);
    }
    // a SenderDomain's own Secret: its relay may be in another namespace
    const owner = obj.metadata.labels?.[DOMAIN_LABEL];
    const sd = owner ? this.o.cache.domains.get(namespace, owner) : undefined;
    const relay = obj.metadata.labels?.[RELAY_LABEL];
    const owned: Request[] = sd && valid(sd) ? [relayOf(sd)] : relay && !owner ? [{ namespace, name: relay }] : [];
    return obj.kind === 'Secret' ? [...owned, ...this.namingSecret(namespace, obj.metadata.name)] : owned;
  }

  private namingSecret(namespace: string, secret: string): Request[] {
    const { cache } = this.o;
    const relays = cache.relays.list(namespace).filter((r) => namesSecret(relaySecretRefs(r.spec), secret))
      .map((r) => ({ namespace, name: r.metadata.name }));
    const viaDomains = cache.domains.list(namespace).filter((sd) => namesSecret(domainSecretRefs(sd.spec), secret))
      .flatMap((sd) => {
        const ref = sd.spec?.relayRef as { name?: string; namespace?: string } | undefined;
        return ref?.name ? [{ namespace: ref.namespace ?? namespace, name: ref.name }] : [];
      });
    return [...relays, ...viaDomains];
  }

  async reconcile({ namespace: ns, name }: Request): Promise<number | undefined> {
    const { cache, apply } = this.o;
    const log = this.o.log.child({ namespace: ns, name, kind: this.kind });
    const raw = cache.relays.get(ns, name);
    if (!raw) { this.o.egressIdentity?.forget(`${ns}/${name}`); return undefined; }
    // Children go by garbage collection, once the finalizer saw the queues empty.
    if (raw.metadata.deletionTimestamp) {
      this.o.egressIdentity?.forget(`${ns}/${name}`);
      return this.finalize(raw);
    }
    const parsed = parseRelay(raw);
    if ('error' in parsed) {
      await apply.degrade(raw, 'InvalidSpec', parsed.error);
      return undefined;
    }
    const relay = parsed.relay;
    const imageRefused = imageOverrideRefusal(relay.spec, this.o.allowImageOverride ?? false);
    if (imageRefused) {
      log.warn({ image: relay.spec.image }, 'spec.image refused: image overrides are not allowed');
      await apply.degrade(raw, IMAGE_OVERRIDE_NOT_ALLOWED, imageRefused);
      return undefined;
    }
    const now = new Date();
    const plan = await this.drainPlan(raw, relay, now);
    // Before anything else: a deletion from here on waits for the queues.
    if (plan.finalizer === 'add') await this.drain.finalizer(raw, 'add');
    await this.drain.annotate(relay, plan, now);
    // The relay's own Secrets, each only with its consent: a refused one stops the render
    // (its Secret is not read; what runs keeps running) until the label is added.
    const own = await this.secrets.readAll(ns, relaySecretRefs(relay.spec));
    const refusal = refusalCondition(own.refused);
    if (refusal) {
      log.warn({ reason: refusal.reason, refused: own.refused.map((r) => `${r.ref.field}=${r.ref.name}`) }, 'relay config not rendered: referenced Secrets not usable');
      await apply.degrade(raw, refusal.reason, refusal.message);
      return undefined;
    }
    const targets = relayTargetRefusals(relay.spec);
    if (targets.length) {
      log.warn({ reason: TARGET_NOT_ALLOWED, targets }, 'relay config not rendered: outbound targets the relay never connects to');
      await apply.degrade(raw, TARGET_NOT_ALLOWED, targets.join('; '));
      return undefined;
    }
    const owners = claimIndex(cache).owners(`${ns}/${name}`);
    const domains = await this.attachedDomains(relay, owners, now, log);
    const out = renderRelay({
      relay, domains, userSecrets: own.data, image: this.o.image, apis: this.o.apis(), now,
      fleetToken: await this.fleetToken(relay), workloadReplicas: plan.workloadReplicas,
    });
    if (out.errors.length) {
      log.warn({ errors: out.errors }, 'relay config not rendered');
      await apply.degrade(raw, 'ConfigInvalid', out.errors.join('; '));
      return undefined;
    }
    // what failed for one tenant (its smarthost Secret lacks a key, ...) leaves out that
    // tenant alone; its SenderDomain says why (condition SecretUnusable or ConfigInvalid)
    for (const l of out.leftOut) log.warn({ senderDomain: l.senderDomain, errors: l.errors }, 'SenderDomain left out: it does not render');
    try {
      // The drained pods' volumes go before the StatefulSet lets the pods go (the PVC protection
      // finalizer holds each until its pod is gone): a failure or a restart between the two
      // then finds the pods still there, still empty, and does both again.
      if (plan.deleteClaims.length) await this.drain.deleteClaims(relay, plan.deleteClaims);
      const changed = await this.applyAll(raw, out);
      if (changed) log.info({ changed }, 'reconciled');
    } catch (e) {
      if (e instanceof NotControlledError) {
        await apply.degrade(raw, 'OwnershipConflict', e.message);
        return undefined; // retrying cannot help; a resync or an edit brings us back
      }
      // The API refusing what we render (a 4xx such as 422) will not go away by retrying:
      // Degraded/Stalled tells people and GitOps tools. A timeout, a 5xx, a conflict or
      // throttling is transient: retry with backoff without flagging the relay as failed.
      const status = e instanceof ApiError ? e.status : 0;
      if (status >= 400 && status < 500 && ![408, 409, 429].includes(status)) await apply.degrade(raw, 'ApplyFailed', (e as Error).message);
      throw e;
    }

    const workloadKind = relay.spec.queue.persistence.enabled ? 'StatefulSet' : 'Deployment';
    const workload = cache.ownedObject(workloadKind, ns, relayNames(name).workload) as Workload | undefined;
    const wasReady = findCondition(raw.status?.conditions, 'Ready')?.status === 'True';
    // The relay's own log and metrics show OAuth2 failures per pod; this asks the identity
    // provider once (cached) so the status carries its answer where kubectl shows it.
    const auth = smarthostAuthCondition(await Promise.all(out.oauth2Checks.map(async (c) => ({ what: c.what, result: await this.probes.check(c.config, c.secrets, c.user) }))));
    // A warning beside Ready, never part of it: the relay serves and queues whatever DNS says.
    const egress = await this.o.egressIdentity?.check(`${ns}/${name}`, relay.spec);
    const admission = selectorCondition(relay, cache.namespaceObjects !== undefined);
    const extra = [...(auth ? [auth] : []), ...(egress ? [egress.condition] : []), ...(admission ? [admission] : [])];
    const served = new Set((out.config?.domains ?? []).map((d) => d.domain.toLowerCase()));
    const unservedSenderDomains = owners.filter((sd) => !served.has(sd.spec.domain.toLowerCase()))
      .map((sd) => `${sd.metadata.namespace ?? ''}/${sd.metadata.name}`).sort();
    // read by those SenderDomains, which report it (Degraded SecretBudgetExceeded)
    const overBudgetSenderDomains = out.leftOut.filter((l) => l.overBudget).map((l) => l.senderDomain).sort();
    const { status, rolledOut } = relayStatus({
      relay, workload, ports: out.ports, domains: served.size, unservedSenderDomains, overBudgetSenderDomains, unservedTrustedDomains: out.unservedTrustedDomains, now, extra,
      ...(plan.condition ? { drain: plan.condition } : {}),
    });
    await apply.status(raw, status);
    if (plan.condition?.phase === 'Degraded' && findCondition(raw.status?.conditions, 'Degraded')?.reason !== plan.condition.reason) {
      await apply.event(raw, 'Warning', plan.condition.reason, plan.condition.message);
    }
    if (plan.finalizer === 'remove') await this.drain.finalizer(raw, 'remove');
    if (rolledOut && !wasReady) await apply.event(raw, 'Normal', 'RelayReady', `${status.readyReplicas}/${relay.spec.replicas} relay pods ready`);
    const wasAuth = findCondition(raw.status?.conditions, 'SmarthostAuthenticated');
    if (auth?.status === 'False' && wasAuth?.message !== auth.message) await apply.event(raw, 'Warning', auth.reason, auth.message);
    const wasEgress = findCondition(raw.status?.conditions, EGRESS_CONDITION);
    if (egress?.condition.status === 'False' && wasEgress?.message !== egress.condition.message) {
      log.warn({ reason: egress.condition.reason }, egress.condition.message);
      await apply.event(raw, 'Warning', egress.condition.reason, egress.condition.message);
    }
    const requeue = Math.min(auth?.status === 'False' ? OAUTH2_RECHECK_MS : Infinity, egress?.recheckInMs ?? Infinity, plan.requeueMs ?? Infinity);
    return Number.isFinite(requeue) ? requeue : undefined;
  }

  /**
   * The drain plan's inputs: the StatefulSet's replicas as they are, and — when pods would
   * leave, or a drain was under way at the last look (to withdraw it after a scale back up)
   * — the pods and their /status. A Deployment's pods, found by its selector, while it is deleted.
   */
  private async drainPlan(raw: EmailRelay, relay: EmailRelay, now: Date): Promise<DrainPlan> {
    const ns = relay.metadata.namespace ?? 'default';
    if (!relay.spec.queue.persistence.enabled) {
      // A Deployment is looked at only while it is deleted: its scale-down is the pods' own SIGTERM hand-off.
      const look = relay.metadata.deletionTimestamp && relay.metadata.finalizers?.includes(DRAIN_FINALIZER) && relay.metadata.annotations?.[SKIP_DRAIN_ANNOTATION] !== 'true';
      const { pods, progress } = look ? await this.drain.observeDeployment(relay) : { pods: [], progress: new Map() };
      return planDrain({ relay, liveReplicas: undefined, pods, progress, now });
    }
    const sts = this.o.cache.ownedObject('StatefulSet', ns, relayNames(relay.metadata.name).workload) as { spec?: { replicas?: number } } | undefined;
    const live = sts?.spec?.replicas;
    const target = relay.metadata.deletionTimestamp ? 0 : relay.spec.replicas;
    const was = findCondition(raw.status?.conditions, 'Progressing')?.reason;
    const look = live !== undefined && (live > target || was === 'DrainingPods' || was === 'DrainStalled') ? Math.max(live, relay.spec.replicas) : 0;
    const { pods, progress } = look ? await this.drain.observe(relay, look) : { pods: [], progress: new Map() };
    return planDrain({ relay, liveReplicas: live, pods, progress, now });
  }

  /** An EmailRelay being deleted while it holds our finalizer: every pod drains, by delivery. */
  private async finalize(raw: EmailRelay): Promise<number | undefined> {
    if (!raw.metadata.finalizers?.includes(DRAIN_FINALIZER)) return undefined;
    const parsed = parseRelay(raw);
    // Nothing was ever rendered from a spec that does not parse: nothing to wait for.
    if ('error' in parsed) { await this.drain.finalizer(raw, 'remove'); return undefined; }
    const relay = parsed.relay;
    const now = new Date();
    const plan = await this.drainPlan(raw, relay, now);
    await this.drain.annotate(relay, plan, now);
    if (plan.deleteClaims.length) await this.drain.deleteClaims(relay, plan.deleteClaims);
    if (plan.condition) {
      const current = raw.status ?? {};
      const gen = raw.metadata.generation ?? 0;
      const { phase, reason, message } = plan.condition;
      await this.o.apply.status(raw, { ...current, observedGeneration: gen, conditions: mergeConditions(current.conditions, summaryConditions(phase, reason, message), gen, now) });
      if (phase === 'Degraded' && findCondition(current.conditions, 'Degraded')?.reason !== reason) await this.o.apply.event(raw, 'Warning', reason, message);
    }
    if (plan.notice) await this.o.apply.event(raw, 'Warning', plan.notice.reason, plan.notice.message);
    if (plan.finalizer === 'remove') await this.drain.finalizer(raw, 'remove');
    return plan.requeueMs;
  }

  /** The fleet token in the relay's Secret, or a new one for a relay that has none yet. */
  private async fleetToken(relay: EmailRelay): Promise<string> {
    const secret = await this.o.cache.getOrFetch('v1', 'Secret', relay.metadata.namespace ?? 'default', relayNames(relay.metadata.name).secrets);
    return decodeSecretData(secret as { data?: Record<string, string> } | undefined)[FLEET_TOKEN_KEY] || randomBytes(32).toString('base64url');
  }

  /**
   * The owners' internal data and the user Secrets they name (in their own namespace, with
   * consent). One whose keys do not exist yet is left out (its Secret's event brings us
   * back); so is one naming a Secret it may not use or a smarthost the relay never connects
   * to: its SenderDomain says why (SecretNotAllowed, TargetNotAllowed), and the other
   * tenants' domains are served as before. Left out as well, so that only a domain served
   * whole is served at all (no domain entry, no login: the relay refuses its mail rather
   * than send it unsigned or unchecked): one without a signing key, one its status reports
   * Degraded (an unreadable key), one whose proof of control the relay requires and lacks.
   */
  private async attachedDomains(relay: EmailRelay, owners: SenderDomain[], now: Date, log: Logger): Promise<AttachedDomain[]> {
    const out: AttachedDomain[] = [];
    for (const sd of owners) {
      const ns = sd.metadata.namespace ?? '';
      const secret = this.o.cache.ownedObject('Secret', ns, domainNames(sd.metadata.name).internal);
      if (!secret) continue;
      const internal = parseInternal(decodeSecretData(secret as { data?: Record<string, string> }));
      // Degraded for want of room here is this render's own verdict: it keeps its place in the
      // line (oldest first), or it would be served again at once and the two would alternate
      const degraded = findCondition(sd.status?.conditions, 'Degraded');
      if (degraded?.status === 'True' && degraded.reason !== SECRET_BUDGET_EXCEEDED) continue;
      if (!signingKeys(internal.dkim, now.getTime()).some((k) => internal.pems[k.selector])) continue;
      if (verificationRequired(relay, sd) && !(await this.o.verifier.verify(sd, internal, now.getTime())).serving) continue;
      // all its references, not only those the relay reads: a domain whose DKIM key Secret is
      // refused would otherwise be served unsigned
      const secrets = await this.secrets.readAll(ns, domainSecretRefs(sd.spec));
      const targets = domainTargetRefusals(sd.spec);
      if (secrets.refused.length || targets.length) {
        log.info({ senderDomain: `${ns}/${sd.metadata.name}`, refused: secrets.refused.map((r) => `${r.ref.field}=${r.ref.name}`), targets }, 'SenderDomain left out: its spec names what it may not use');
        continue;
      }
      out.push({ sd, internal, secrets: secrets.data });
    }
    return out;
  }

  /** Applies every rendered object and deletes the unwanted ones; how many writes it made. */
  private async applyAll(owner: EmailRelay, out: RelayOutput): Promise<number> {
    let changed = 0;
    for (const obj of out.objects) if (await this.o.apply.apply(obj, owner)) changed++;
    for (const a of out.absent) if (await this.o.apply.deleteIfOwned(a, owner)) changed++;
    return changed;
  }
}
