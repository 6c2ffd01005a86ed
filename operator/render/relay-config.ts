// EmailRelay → relay.yaml (rendered THROUGH relay/config/schema.ts, the contract, and
// validated before anything is applied) and the Secret data its *File fields point at. Pure:
// the controller gathers the SenderDomains' internal data and the user Secrets referenced.
import { relayConfigSchema, type RelayConfigInput } from '../../relay/config/schema.ts';
import type { RedisLimiterConfigInput } from '../../relay/limits/schema.ts';
import { formatIssues } from '../../relay/util/zod-issues.ts';
import type { EmailRelaySpec } from '../api/emailrelay.ts';
import { relayHost, relayNames, type EmailRelay } from './objects.ts';
import { ANNOTATIONS_FILE, DATA_DIR, HANDOFF_PORT, HTTP_PORT, TLS_DIR, secretFile } from './relay-paths.ts';
import { domainsConfig, yamlSize, type AttachedDomain, type LeftOutDomain } from './relay-domains.ts';
import { SecretFiles } from './relay-secret-files.ts';
import { RELAY_FILES } from './relay-secret-keys.ts';
import { smarthostConfig } from './relay-smarthost.ts';
import type { OAuth2Check } from './smarthost-oauth2.ts';

export type { AttachedDomain, LeftOutDomain } from './relay-domains.ts';

export interface RelayInput {
  relay: EmailRelay;
  /** SenderDomains that own their domain on this relay (conflicts already removed). */
  domains: AttachedDomain[];
  /** Decoded data of user Secrets the relay's spec references, by name (missing: absent). */
  userSecrets: Map<string, Record<string, string>>;
  image: string;
  /** Optional APIs installed in the cluster. */
  apis: { serviceMonitor: boolean; certManager: boolean };
  now: Date;
  /**
   * The fleet token of the scale-down hand-off (kept in the relay's Secret; the controller
   * reads it from there or makes a new one). Without it no hand-off is rendered.
   */
  fleetToken?: string;
  /** The StatefulSet's replicas while a scale-down drains (else spec.replicas): operator/render/drain.ts. */
  workloadReplicas?: number;
}

export interface RenderedConfig {
  config: RelayConfigInput;
  /** Contents of the relay's Secret: files the config references under SECRETS_DIR. */
  secretData: Record<string, string>;
  /** Listener name → port, for the Services, the pod and status.endpoint. */
  ports: Record<string, number>;
  /** Problems of the relay's own spec and Secrets; any of them means nothing is applied. */
  errors: string[];
  /** OAuth2 smarthost credentials the controller may check with the identity provider. */
  oauth2Checks: OAuth2Check[];
  /** trustedNetworks domains left out because this relay serves no SenderDomain for them. */
  unservedTrustedDomains: string[];
  /** SenderDomains given to the render but left out of the config: what failed is theirs alone. */
  leftOut: LeftOutDomain[];
}

/** The TLS Secret the pod mounts, if any: the user's, or the one cert-manager fills. */
export function tlsSecretName(relay: EmailRelay): string | undefined {
  const tls = relay.spec.tls;
  return tls?.secretName ?? (tls?.issuerRef ? relayNames(relay.metadata.name).certificateSecret : undefined);
}

export const relayHostname = (relay: EmailRelay) => relay.spec.hostname ?? relayHost(relay.metadata.name, relay.metadata.namespace ?? 'default');

type Config = RelayConfigInput;

function listenersConfig(spec: EmailRelaySpec): { listeners: Config['listeners']; ports: Record<string, number> } {
  const listeners: Config['listeners'] = [];
  const ports: Record<string, number> = {};
  if (spec.listeners.submission.enabled) {
    listeners.push({ name: 'submission', host: '0.0.0.0', port: spec.listeners.submission.port, mode: 'starttls' });
    ports.submission = spec.listeners.submission.port;
  }
  if (spec.listeners.implicitTls.enabled) {
    listeners.push({ name: 'smtps', host: '0.0.0.0', port: spec.listeners.implicitTls.port, mode: 'implicit' });
    ports.smtps = spec.listeners.implicitTls.port;
  }
  if (spec.listeners.plain) {
    listeners.push({ name: 'plain', host: '0.0.0.0', port: spec.listeners.plain.port, mode: 'plain' });
    ports.plain = spec.listeners.plain.port;
  }
  return { listeners, ports };
}

/** Delivery (mode, smarthosts, per-destination connections and TLS) and per-destination pacing. */
function deliveryConfig(relay: EmailRelay, files: SecretFiles): { delivery: Config['delivery']; paces: Record<string, { perMinute: number }> } {
  const spec = relay.spec;
  const destinations: Record<string, { maxConnections?: number; tls?: 'require' | 'opportunistic' }> = {};
  const paces: Record<string, { perMinute: number }> = {};
  for (const [dest, lim] of Object.entries(spec.delivery.destinations ?? {})) {
    if (lim.maxConnections !== undefined || lim.tls !== undefined) {
      destinations[dest] = { ...(lim.maxConnections !== undefined ? { maxConnections: lim.maxConnections } : {}), ...(lim.tls ? { tls: lim.tls } : {}) };
    }
    if (lim.messagesPerMinute !== undefined) paces[dest] = { perMinute: lim.messagesPerMinute };
  }
  const delivery: Config['delivery'] = {
    mode: spec.delivery.mode,
    smarthosts: (spec.delivery.smarthosts ?? []).map((h, i) => smarthostConfig(files, h, RELAY_FILES.smarthost(i), `delivery.smarthosts[${i}]`)),
    destinations,
    heloName: relayHostname(relay),
    ...(spec.delivery.dnsServers ? { mx: { dnsServers: spec.delivery.dnsServers } } : {}),
  };
  return { delivery, paces };
}

/**
 * Every key a relay keeps in Redis (rate counters, AUTH throttling, the fleet's suppression
 * list and its pub/sub channel) starts with this: relays sharing one Redis never read or
 * count each other's (a login is unique per relay only). `:` and `/` occur in no namespace or
 * object name, so no relay's prefix starts with another's.
 */
export const redisKeyPrefix = (relay: EmailRelay) => `mailfleet:${relay.metadata.namespace ?? 'default'}/${relay.metadata.name}:`;

function redisConfig(redis: NonNullable<EmailRelaySpec['redis']>, relay: EmailRelay, files: SecretFiles): RedisLimiterConfigInput {
  const r: RedisLimiterConfigInput = { url: redis.url, keyPrefix: redisKeyPrefix(relay) };
  const ref = redis.passwordSecretRef;
  if (ref) {
    const v = files.read(ref.name, ref.key, 'redis password');
    if (v !== undefined) r.passwordFile = files.put(RELAY_FILES.redisPassword, v);
  }
  return r;
}

function webhooksConfig(webhooks: NonNullable<EmailRelaySpec['webhooks']>, files: SecretFiles): Config['webhooks'] {
  return webhooks.map((w, i) => {
    const v = files.read(w.secretRef.name, w.secretRef.key, `webhooks[${i}] secret`);
    const file = RELAY_FILES.webhookSecret(i);
    if (v !== undefined) files.put(file, v);
    return { url: w.url, secretFile: secretFile(file), ...(w.events ? { events: w.events } : {}) };
  });
}

/**
 * Trusted networks may send only for domains this relay serves (the relay refuses anything
 * else): a domain whose SenderDomain is missing, refused or not servable is left out (a
 * network left with none is dropped), so one tenant's broken domain never stops the relay's
 * config from rendering for the others, and an EmailRelay cannot hand a network a domain
 * nobody proved.
 */
function servedTrustedNetworks(spec: EmailRelaySpec, domains: NonNullable<Config['domains']>): { networks: NonNullable<Config['trustedNetworks']>; unserved: string[] } {
  const served = new Set(domains.map((d) => d.domain.toLowerCase()));
  const unserved = new Set<string>();
  const networks = (spec.trustedNetworks ?? []).flatMap((t) => {
    const keep = t.domains.filter((d) => served.has(d.toLowerCase()));
    for (const d of t.domains) if (!served.has(d.toLowerCase())) unserved.add(d);
    return keep.length ? [{ ...t, domains: keep }] : [];
  });
  return { networks, unserved: [...unserved].sort() };
}

/**
 * The hand-off (docs/operator.md, "Scale-down, deletion and queued mail"): every pod runs
 * the internal hand-off listener with the fleet token. With a persistent queue a pod hands
 * its queue over when the operator asks (a drain request in its annotations) to the pods
 * that stay (ordinals below spec.replicas, by their pod DNS names). Without one (a
 * Deployment, an emptyDir queue) nobody asks before the Deployment deletes a pod: it hands
 * its queue over on SIGTERM, to whichever pods the headless Service's name resolves to —
 * only ready pods are in its records, and a stopping relay is not ready. The operator asks
 * a Deployment's pods only when the EmailRelay is deleted (all go at once, no peer stays):
 * each stops intake and delivers what it holds. Peers come from here only; no spec field
 * reaches them.
 */
function handoffConfig(relay: EmailRelay, token: string, files: SecretFiles): NonNullable<Config['handoff']> {
  const n = relayNames(relay.metadata.name);
  const ns = relay.metadata.namespace ?? 'default';
  const common = { host: '0.0.0.0', port: HANDOFF_PORT, tokenFile: files.put(RELAY_FILES.fleetToken, token), annotationsFile: ANNOTATIONS_FILE };
  if (!relay.spec.queue.persistence.enabled) return { ...common, peers: [`${n.headless}.${ns}.svc:${HANDOFF_PORT}`], onShutdown: true };
  return {
    ...common,
    peers: Array.from({ length: relay.spec.replicas }, (_, i) => `${n.workload}-${i}.${n.headless}.${ns}.svc:${HANDOFF_PORT}`),
  };
}

export function renderRelayConfig(input: RelayInput): RenderedConfig {
  const spec = input.relay.spec;
  const files = SecretFiles.forRelay(input.userSecrets);
  const { listeners, ports } = listenersConfig(spec);
  // the relay's own files first: a SenderDomain can never take one of their names
  const { delivery, paces } = deliveryConfig(input.relay, files);
  const redis = spec.redis ? redisConfig(spec.redis, input.relay, files) : undefined;
  const webhooks = spec.webhooks?.length ? webhooksConfig(spec.webhooks, files) : undefined;
  const handoff = input.fleetToken ? handoffConfig(input.relay, input.fleetToken, files) : undefined;
  const config: Config = {
    hostname: relayHostname(input.relay),
    dataDir: DATA_DIR,
    listeners,
    tls: tlsSecretName(input.relay) ? { certFile: `${TLS_DIR}/tls.crt`, keyFile: `${TLS_DIR}/tls.key` } : { selfSigned: true },
    limits: { drainTimeout: spec.drainTimeout },
    credentials: [],
    trustedNetworks: spec.trustedNetworks ?? [],
    domains: [],
    rateLimits: {
      ...(spec.rateLimits?.perDomain ? { perDomain: spec.rateLimits.perDomain } : {}),
      ...(spec.rateLimits?.perLogin ? { perLogin: spec.rateLimits.perLogin } : {}),
      destinations: paces,
    },
    queue: { maxLifetime: spec.queue.maxLifetime, ...(spec.queue.retrySchedule ? { retrySchedule: spec.queue.retrySchedule } : {}) },
    delivery,
    http: { host: '0.0.0.0', port: HTTP_PORT },
  };
  if (redis) config.redis = redis;
  if (webhooks) config.webhooks = webhooks;
  if (handoff) config.handoff = handoff;
  // the SenderDomains last, into what the ConfigMap (its header line too) has left
  const { domains, credentials, leftOut } = domainsConfig(input.domains, input.now, files, yamlSize(config) + 200);
  const trusted = servedTrustedNetworks(spec, domains);
  Object.assign(config, { credentials, trustedNetworks: trusted.networks, domains });
  const errors = [...files.errors];
  const clash = config.handoff && Object.entries(ports).find(([, p]) => p === HANDOFF_PORT);
  if (clash) errors.push(`listeners.${clash[0]}: port ${HANDOFF_PORT} is the fleet's hand-off listener (every relay pod runs it); choose another port`);
  if (spec.tls?.issuerRef && !input.apis.certManager) errors.push('tls.issuerRef is set but cert-manager (certificates.cert-manager.io) is not installed');
  const parsed = relayConfigSchema.safeParse(config);
  if (!parsed.success) errors.push(...formatIssues(parsed.error, 'relay config '));
  return { config, secretData: files.data, ports, errors, oauth2Checks: files.oauth2Checks, unservedTrustedDomains: trusted.unserved, leftOut };
}
