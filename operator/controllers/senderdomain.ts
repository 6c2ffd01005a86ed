// The SenderDomain controller: resolves its claim on the relay (domain, login), keeps or
// generates its DKIM keys (following the rotation plan) and app password, checks DNS when
// asked to, applies its Secrets and writes the status the pure render computed.
import type { Logger } from 'pino';
import { emailRelaySpec } from '../api/emailrelay.ts';
import { claimKey, relayKeyOf } from '../render/claims.ts';
import { findCondition } from '../render/conditions.ts';
import { detectAlgorithm, planDkim, waitingKeys, type KeyAlgorithm } from '../render/dkim.ts';
import { parseInternal, type DomainInternal } from '../render/domain-internal.ts';
import {
  DOMAIN_LABEL, ROTATE_ANNOTATION, decodeSecretData, domainNames, relayHost, type EmailRelay, type KubeObject, type SenderDomain,
} from '../render/objects.ts';
import { renderSenderDomain } from '../render/sender-domain.ts';
import { SELECTOR_TOO_LONG } from '../render/sender-domain-status.ts';
import { budgetRefusal, domainEntryRefusal } from '../render/relay-domains.ts';
import { parseDkimKey } from '../../relay/dkim/keys.ts';
import { NotControlledError, type Applier } from '../runtime/apply.ts';
import type { Cache } from '../runtime/cache.ts';
import type { Kube } from '../runtime/kube.ts';
import type { Reconciler, Request } from '../runtime/manager.ts';
import type { OperatorMetrics } from '../runtime/metrics.ts';
import { seenSelectors, verifyDkimRecords, type DnsCheck } from './dns-verification.ts';
import { appPassword, generateDkimKey } from './domain-secrets.ts';
import { parseDomain } from './specs.ts';
import { attachment, claimIndex } from './attachment.ts';
import { RELAY_NOT_ALLOWED } from '../tenancy/admission.ts';
import { DomainVerifier, verificationRequired, type Verification } from '../tenancy/verification.ts';
import { OAuth2ProbeCache } from '../../relay/delivery/oauth2/probe.ts';
import { oauth2CheckFromSecret, smarthostAuthCondition } from '../render/smarthost-oauth2.ts';
import type { ConditionInput } from '../render/conditions.ts';
import { parseDuration } from '../../relay/util/duration.ts';
import { domainSecretRefs, namesSecret } from '../tenancy/secret-refs.ts';
import { UserSecrets, refusalCondition, type SecretsRead } from './user-secrets.ts';
import { TARGET_NOT_ALLOWED, domainTargetRefusals } from '../tenancy/outbound-targets.ts';
import { DNS_ENDPOINT_API_VERSION, DNS_ENDPOINT_KIND, DNS_PUBLISHED, dnsEndpointName, type PublishGate } from '../render/dns-publish.ts';
import type { OptionalApis } from '../runtime/discovery.ts';

export interface SenderDomainControllerOptions {
  cache: Cache;
  apply: Applier;
  kube: Kube;
  log: Logger;
  /** Resolvers for dnsVerification and the DKIM rotation gate (default: the system's). */
  dnsServers?: string[];
  /** Asks identity providers whether an oauth2 smarthost credential works (cached; shared with the EmailRelay controller). */
  oauth2Probes?: OAuth2ProbeCache;
  metrics?: OperatorMetrics;
  /** Proof of control over domains, shared with the EmailRelay controller. */
  verifier: DomainVerifier;
  /** Which optional APIs the cluster serves now (the DNSEndpoint kind); default: none. */
  apis?: () => OptionalApis;
  /** --dns-publish: SenderDomains may have their records published through external-dns. */
  dnsPublish?: boolean;
}

/** How soon a failed OAuth2 check is repeated. */
const OAUTH2_RECHECK_MS = 300_000;

const secretData = (s: KubeObject | undefined) => decodeSecretData(s as { data?: Record<string, string> } | undefined);

/** DNS is checked again this often until the records are found. */
const DNS_RECHECK_MS = 60_000;

/** The verifiedAt this operator reported last (display only: never makes a domain verified). */
function verifiedAtOf(raw: SenderDomain): number | undefined {
  const at = raw.status?.verification?.verifiedAt;
  const ms = at ? Date.parse(at) : NaN;
  return Number.isFinite(ms) ? ms : undefined;
}

export class SenderDomainController implements Reconciler {
  readonly kind = 'SenderDomain';

  private readonly o: SenderDomainControllerOptions;

  private readonly probes: OAuth2ProbeCache;
  private readonly secrets: UserSecrets;

  constructor(o: SenderDomainControllerOptions) {
    this.o = o;
    this.probes = o.oauth2Probes ?? new OAuth2ProbeCache({ failedTtlMs: OAUTH2_RECHECK_MS });
    this.secrets = new UserSecrets({ cache: o.cache, kube: o.kube });
    claimIndex(o.cache); // kept from the first event on
  }

  /**
   * The SenderDomain itself, and every other one whose claim it may change (same domain
   * anywhere in the cluster, same relay); the SenderDomains of a relay (its admission rules
   * may have changed) and of a Namespace (its labels may admit or refuse them); the
   * SenderDomain an owned Secret belongs to, and those that name a user Secret (its consent
   * label added or removed, it was created).
   */
  requestsFor(obj: KubeObject): Request[] {
    const namespace = obj.metadata.namespace ?? '';
    const req = (o: KubeObject) => ({ namespace: o.metadata.namespace ?? '', name: o.metadata.name });
    const valid = (o: SenderDomain) => !!o.spec?.relayRef?.name && typeof o.spec.domain === 'string';
    // the claimants (specs that parse) from the index: an event costs what it touches, not every SenderDomain
    const claims = claimIndex(this.o.cache);
    if (obj.kind === 'EmailRelay') return claims.onRelay(`${namespace}/${obj.metadata.name}`).map(req);
    if (obj.kind === 'Namespace') return this.o.cache.domains.list(obj.metadata.name).map(req);
    if (obj.kind === 'SenderDomain') {
      const sd = obj as SenderDomain;
      if (!valid(sd)) return [req(sd)];
      const rivals = new Set([...claims.claimantsOf(sd.spec.domain), ...claims.onRelay(relayKeyOf(sd))].filter((o) => claimKey(o) !== claimKey(sd)));
      return [sd, ...rivals].map(req);
    }
    const domains = this.o.cache.domains.list(namespace);
    const owner = obj.metadata.labels?.[DOMAIN_LABEL];
    const naming = obj.kind === 'Secret'
      ? domains.filter((sd) => sd.metadata.name !== owner && namesSecret(domainSecretRefs(sd.spec), obj.metadata.name)).map((sd) => ({ namespace, name: sd.metadata.name }))
      : [];
    return owner ? [{ namespace, name: owner }, ...naming] : naming;
  }

  async reconcile(req: Request): Promise<number | undefined> {
    const raw = this.o.cache.domains.get(req.namespace, req.name);
    if (!raw || raw.metadata.deletionTimestamp) {
      this.o.metrics?.dkimRotationBlocked.remove({ namespace: req.namespace, name: req.name });
      this.o.verifier.forget(req.namespace, req.name);
      return undefined;
    }
    try {
      return await this.reconcileDomain(raw);
    } catch (e) {
      if (!(e instanceof NotControlledError)) throw e;
      await this.o.apply.degrade(raw, 'OwnershipConflict', e.message);
      return undefined; // retrying cannot help; a resync or an edit brings us back
    }
  }

  private async reconcileDomain(raw: SenderDomain): Promise<number | undefined> {
    const { cache, apply } = this.o;
    const ns = raw.metadata.namespace ?? '';
    const name = raw.metadata.name;
    const log = this.o.log.child({ namespace: ns, name, kind: this.kind });
    const now = new Date();
    const parsed = parseDomain(raw);
    const gate = this.publishGate();
    if ('error' in parsed) {
      // nothing is published for a spec the operator cannot read
      if (gate.installed) await apply.deleteIfOwned({ apiVersion: DNS_ENDPOINT_API_VERSION, kind: DNS_ENDPOINT_KIND, name: dnsEndpointName(name) }, raw);
      await apply.degrade(raw, 'InvalidSpec', parsed.error);
      return undefined;
    }
    const sd = parsed.sd;
    const spec = sd.spec;
    const { relay, relayNamespace, admission } = attachment(cache, sd);
    const { host, port } = this.endpoint(spec.relayRef.name, relay, relayNamespace);

    // A relay in another namespace that is missing or does not admit us: refused whole, and
    // the same words either way (a tenant cannot probe which relays exist elsewhere).
    const foreign = relayNamespace !== ns;
    const refused = !admission.allowed && (relay || foreign)
      ? { reason: RELAY_NOT_ALLOWED, message: relay ? admission.message : `EmailRelay ${relayNamespace}/${spec.relayRef.name} does not exist or does not admit SenderDomains from namespace ${ns}` } as const
      : claimIndex(cache).refusal(sd);
    if (refused) {
      const out = renderSenderDomain({ sd, relay, refused, internal: parseInternal({}), host, port, now, publish: gate });
      for (const a of out.absent) await apply.deleteIfOwned(a, raw);
      await apply.degrade(raw, refused.reason, refused.message, out.status);
      return undefined;
    }

    // Generated state (DKIM keys, the app password) is read cache first, then from the API:
    // a cache miss is not proof of absence, and treating it as absence would silently
    // replace keys and passwords.
    const internal = parseInternal(secretData(await cache.getOrFetch('v1', 'Secret', ns, domainNames(name).internal)));
    // Every user Secret the spec names, only with its consent; a refused one is not read.
    const secrets = await this.secrets.readAll(ns, domainSecretRefs(spec));
    const targets = domainTargetRefusals(spec);
    const specRefused = refusalCondition(secrets.refused) ?? (targets.length ? { reason: TARGET_NOT_ALLOWED, message: targets.join('; ') } : undefined);
    if (specRefused) log.warn({ reason: specRefused.reason, refused: secrets.refused.map((r) => `${r.ref.field}=${r.ref.name}`), targets }, 'domain not served: its spec names what it may not use');
    const external = this.externalKey(sd, internal, secrets);
    // The rotation gate's input: whether the records of the keys that wait to sign are in DNS now.
    const waiting = waitingKeys(internal.dkim).filter((k) => internal.pems[k.selector]);
    const dnsSeen = waiting.length ? await seenSelectors(spec.domain, waiting, internal, this.o.dnsServers) : undefined;
    const plan = planDkim({
      spec: spec.dkim, state: internal.dkim, now: now.getTime(), rotateAnnotation: raw.metadata.annotations?.[ROTATE_ANNOTATION],
      gateFirstKey: spec.dnsVerification.enabled,
      ...(external.algorithm ? { externalAlgorithm: external.algorithm } : {}), ...(dnsSeen ? { dnsSeen } : {}),
    });
    for (const g of plan.generate) internal.pems[g.selector] = await generateDkimKey(g.algorithm);
    internal.dkim = plan.state;
    for (const sel of Object.keys(internal.pems)) if (!plan.state.keys.some((k) => k.selector === sel)) delete internal.pems[sel];

    // Proof of control, when the relay asks for it: until then no login exists for the domain.
    const verification = relay && verificationRequired(relay, sd) ? await this.o.verifier.verify(sd, internal, now.getTime(), verifiedAtOf(raw)) : undefined;
    const serving = !verification || verification.serving;
    const password = spec.credentials.enabled && serving ? await this.password(sd, internal) : undefined;
    // What its relay's render leaves this domain out for (a smarthost Secret without the key
    // the spec names, ...): the same code, so this condition says exactly why.
    const unrenderable = relay && !specRefused ? domainEntryRefusal({ sd, internal, secrets: secrets.data }, now) : undefined;
    if (unrenderable) log.warn({ reason: unrenderable.reason }, unrenderable.message);
    // Renders, but its relay's last render found no room left for it (oldest first): the
    // relay's status says so, and the relay's next render after any change here says again.
    const overBudget = relay && !specRefused && !unrenderable && relay.status?.overBudgetSenderDomains?.includes(claimKey(sd))
      ? budgetRefusal(relayKeyOf(sd)) : undefined;
    if (overBudget) log.warn({ reason: overBudget.reason }, overBudget.message);

    let dns: DnsCheck | undefined;
    let requeue = plan.nextAt !== undefined ? Math.max(1000, plan.nextAt - now.getTime()) : undefined;
    if (spec.dnsVerification.enabled) {
      dns = await verifyDkimRecords(spec.domain, internal, this.o.dnsServers);
      if (!dns.ok) requeue = Math.min(requeue ?? Infinity, DNS_RECHECK_MS);
    }
    // Keys waiting for their records are looked up again until they sign.
    // (at least four times per rotationDelay, so a short delay is not stretched to a minute)
    const gateRecheck = Math.min(DNS_RECHECK_MS, Math.max(5_000, parseDuration(spec.dkim.rotationDelay) / 4));
    if (waitingKeys(plan.state).length) requeue = Math.min(requeue ?? Infinity, gateRecheck);
    this.o.metrics?.dkimRotationBlocked.set({ namespace: ns, name }, plan.blocked.length || plan.selectorRefused ? 1 : 0);
    if (plan.selectorRefused) log.warn({ reason: 'SelectorTooLong', selector: spec.dkim.selector }, plan.selectorRefused);

    const smarthostAuth = await this.smarthostAuth(sd, secrets);
    if (smarthostAuth?.status === 'False') requeue = Math.min(requeue ?? Infinity, OAUTH2_RECHECK_MS);
    if (verification) requeue = Math.min(requeue ?? Infinity, Math.max(1000, verification.nextAt - now.getTime()));

    const out = renderSenderDomain({
      sd, relay, internal, host, port, now, smarthostAuth,
      ...(password ? { password } : {}), ...(external.error ? { externalKeyError: external.error, externalKeyReason: external.reason } : {}), ...(dns ? { dns } : {}),
      specRefused: specRefused ?? unrenderable ?? overBudget,
      rotationBlocked: plan.blocked, selectorRefused: plan.selectorRefused, ...(verification ? { verification } : {}), publish: gate,
    });
    for (const obj of out.objects) await apply.apply(obj, raw);
    for (const a of out.absent) await apply.deleteIfOwned(a, raw);
    await apply.status(raw, out.status);
    const refusal = specRefused ?? unrenderable ?? overBudget;
    const wasDegraded = findCondition(raw.status?.conditions, 'Degraded');
    if (refusal && (wasDegraded?.status !== 'True' || wasDegraded.reason !== refusal.reason || wasDegraded.message !== refusal.message)) {
      await apply.event(raw, 'Warning', refusal.reason, refusal.message);
    }
    for (const ev of plan.events) {
      log.info({ reason: ev.reason }, ev.message);
      await apply.event(raw, 'Normal', ev.reason, ev.message);
    }
    const was = findCondition(raw.status?.conditions, 'DNSVerified');
    const nowDns = findCondition(out.status.conditions, 'DNSVerified');
    if (nowDns && was?.status !== nowDns.status) await apply.event(raw, nowDns.status === 'True' ? 'Normal' : 'Warning', nowDns.reason, nowDns.message);
    await this.verificationEvent(raw, verification);
    const wasPublished = findCondition(raw.status?.conditions, DNS_PUBLISHED);
    const nowPublished = findCondition(out.status.conditions, DNS_PUBLISHED);
    if (nowPublished && (wasPublished?.status !== nowPublished.status || wasPublished.reason !== nowPublished.reason)) {
      log.info({ reason: nowPublished.reason, published: nowPublished.status }, nowPublished.message);
      await apply.event(raw, nowPublished.status === 'True' ? 'Normal' : 'Warning', nowPublished.reason, nowPublished.message);
    }
    const wasAuth = findCondition(raw.status?.conditions, 'SmarthostAuthenticated');
    if (smarthostAuth?.status === 'False' && wasAuth?.message !== smarthostAuth.message) await apply.event(raw, 'Warning', smarthostAuth.reason, smarthostAuth.message);
    const wasBlocked = findCondition(raw.status?.conditions, 'DKIMRotationBlocked');
    const nowBlocked = findCondition(out.status.conditions, 'DKIMRotationBlocked');
    const selectorWas = [wasBlocked, findCondition(raw.status?.conditions, 'DKIMKeyReady')].some((c) => c?.reason === SELECTOR_TOO_LONG);
    if (plan.selectorRefused && !selectorWas) await apply.event(raw, 'Warning', SELECTOR_TOO_LONG, plan.selectorRefused);
    else if (nowBlocked?.status === 'True' && wasBlocked?.status !== 'True' && nowBlocked.reason !== SELECTOR_TOO_LONG) {
      log.warn({ reason: 'DKIMRotationBlocked', selectors: plan.blocked }, nowBlocked.message);
      await apply.event(raw, 'Warning', 'DKIMRotationBlocked', nowBlocked.message);
    }
    return requeue;
  }

  private publishGate(): PublishGate {
    return { allowed: this.o.dnsPublish ?? false, installed: this.o.apis?.().dnsEndpoint ?? false };
  }

  /** An Event when the proof of control appears, goes missing, or is lost past the grace period. */
  private async verificationEvent(raw: SenderDomain, v: Verification | undefined): Promise<void> {
    const was = raw.status?.verification?.state;
    if (!v || v.state === was) return;
    const log = this.o.log.child({ namespace: raw.metadata.namespace, name: raw.metadata.name, kind: this.kind });
    if (v.state === 'Verified') await this.o.apply.event(raw, 'Normal', 'DomainVerified', v.message);
    else if (v.state === 'GracePeriod') {
      const msg = `proof of control is gone; the domain is still served until ${new Date(v.graceEndsAt ?? 0).toISOString()}: ${v.message}`;
      log.warn({ reason: 'DomainVerificationMissing' }, msg);
      await this.o.apply.event(raw, 'Warning', 'DomainVerificationMissing', msg);
    } else if (v.state === 'Lost') {
      const msg = `proof of control missing past the grace period: the domain is no longer served; ${v.message}`;
      log.warn({ reason: 'DomainVerificationLost' }, msg);
      await this.o.apply.event(raw, 'Warning', 'DomainVerificationLost', msg);
    }
  }

  /** The identity provider's answer for this domain's own oauth2 smarthost (the Secret is read like the relay reads it). */
  private async smarthostAuth(sd: SenderDomain, secrets: SecretsRead): Promise<ConditionInput | undefined> {
    const o = sd.spec.smarthost?.oauth2;
    // a refused Secret is reported as such (SecretNotAllowed), not checked with the provider
    if (!o || secrets.refused.some((r) => r.ref.name === o.secretRef.name)) return undefined;
    const c = oauth2CheckFromSecret(o, secrets.data.get(o.secretRef.name), `smarthost ${sd.spec.smarthost!.name ?? sd.spec.smarthost!.host}`);
    const result = 'result' in c ? c : { what: c.what, result: await this.probes.check(c.config, c.secrets, c.user) };
    return smarthostAuthCondition([result]);
  }

  /** Where apps connect: the relay's Service, on submission (or implicit TLS when submission is off). */
  private endpoint(relayName: string, relay: EmailRelay | undefined, ns: string): { host: string; port: number } {
    // Without a relay (or a valid spec), the default listeners (a bare spec no longer parses: MX mode needs a hostname).
    const listeners = relay?.spec.listeners ?? emailRelaySpec.shape.listeners.parse(undefined);
    const port = listeners.submission.enabled ? listeners.submission.port : listeners.implicitTls.port;
    return { host: relayHost(relayName, ns), port };
  }

  /** With dkim.secretRef: the user's key into internal.pems, and its algorithm, or why it cannot be used. */
  private externalKey(sd: SenderDomain, internal: DomainInternal, secrets: SecretsRead): { algorithm?: KeyAlgorithm; error?: string; reason?: string } {
    const ref = sd.spec.dkim.secretRef;
    if (!ref) return {};
    const refused = secrets.refused.find((r) => r.ref.field === 'dkim.secretRef');
    if (refused) return { error: refused.message, reason: refused.reason };
    const pem = secrets.data.get(ref.name)?.[ref.key];
    if (!pem) return { error: `Secret ${ref.name} has no key ${ref.key}` };
    try {
      const algorithm = detectAlgorithm(pem);
      // the relay's own check (RFC 8301 key sizes, ...): a key it refuses would stop its whole config
      parseDkimKey(pem, { selector: sd.spec.dkim.selector, algorithm, privateKeyFile: `key ${ref.key}` });
      internal.pems[sd.spec.dkim.selector] = pem;
      return { algorithm };
    } catch (e) {
      return { error: `Secret ${ref.name}: ${(e as Error).message}` };
    }
  }

  /** The app password (kept from the app Secret, or new), refusing a Secret of that name we do not control. */
  private async password(sd: SenderDomain, internal: DomainInternal): Promise<string> {
    const ns = sd.metadata.namespace ?? '';
    const secretName = domainNames(sd.metadata.name, sd.spec.credentials.secretName).credentials;
    const app = await this.o.cache.getOrFetch('v1', 'Secret', ns, secretName);
    this.o.apply.assertControlled(app, sd,
      `Secret ${ns}/${secretName} exists and is not controlled by this SenderDomain; rename or delete it, or set credentials.secretName`);
    return appPassword(secretData(app).password, internal);
  }
}
