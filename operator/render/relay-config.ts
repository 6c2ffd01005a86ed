// EmailRelay → relay.yaml (rendered THROUGH relay/config/schema.ts, the contract, and
// validated before anything is applied) and the Secret data its *File fields point at. Pure:
// the controller gathers the SenderDomains' internal data and the user Secrets referenced.
import { credentialSchema, relayConfigSchema, senderDomainSchema, type RelayConfigInput } from '../../relay/config/schema.ts';
import type { SmarthostConfigInput } from '../../relay/delivery/schema.ts';
import type { RedisLimiterConfigInput } from '../../relay/limits/schema.ts';
import YAML from 'yaml';
import { formatIssues } from '../../relay/util/zod-issues.ts';
import { parseDkimKey } from '../../relay/dkim/keys.ts';
import type { EmailRelaySpec } from '../api/emailrelay.ts';
import { signingKeys } from './dkim.ts';
import type { DomainInternal } from './domain-internal.ts';
import { relayHost, relayNames, type EmailRelay, type SenderDomain } from './objects.ts';
import { ANNOTATIONS_FILE, DATA_DIR, HANDOFF_PORT, HTTP_PORT, TLS_DIR, secretFile } from './relay-paths.ts';
import { RELAY_FILES, domainFiles, isDomainFile, validSecretKey } from './relay-secret-keys.ts';
import { renderSmarthostOAuth2, type OAuth2Check, type SecretReader } from './smarthost-oauth2.ts';

export interface AttachedDomain {
  sd: SenderDomain;
  internal: DomainInternal;
  /**
   * Decoded data of the user Secrets this SenderDomain names (its smarthost's login), read
   * in its own namespace with their consent. Never the relay's: a SenderDomain must not
   * reach the platform's Secrets by naming them.
   */
  secrets?: Map<string, Record<string, string>>;
}

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

/**
 * The files of the relay's Secret, and what could not be read from user Secrets. The relay's
 * own files go in first; each SenderDomain's are staged apart (stage) and go in only when that
 * domain renders whole, so what fails for one tenant leaves out that tenant alone. A name
 * written twice with different contents is refused, never overwritten: a collision (two
 * tenants' names, or a tenant's and the relay's) would hand one's file to the other.
 */
class SecretFiles implements SecretReader {
  readonly data: Record<string, string> = {};
  readonly errors: string[] = [];
  /** OAuth2 credentials read on the way, for the controller's check with the identity provider. */
  readonly oauth2Checks: OAuth2Check[] = [];
  private readonly user: Map<string, Record<string, string>>;
  /** Which file names this stage may write (the relay's own, or one SenderDomain's). */
  private readonly mine: (file: string) => boolean;
  /** Files already in the Secret, when this is a SenderDomain's stage. */
  private readonly committed: Record<string, string> | undefined;

  constructor(user: Map<string, Record<string, string>>, mine: (file: string) => boolean, committed?: Record<string, string>) {
    this.user = user;
    this.mine = mine;
    this.committed = committed;
  }

  /** The relay's own files: any name outside the SenderDomains' part. */
  static forRelay(user: Map<string, Record<string, string>>): SecretFiles {
    return new SecretFiles(user, (f) => !isDomainFile(f));
  }

  /** A stage for one SenderDomain's files (all starting with owner_), reading its own user Secrets. */
  stage(owner: string, user: Map<string, Record<string, string>> | undefined): SecretFiles {
    return new SecretFiles(user ?? new Map(), (f) => f.startsWith(`${owner}_`), this.data);
  }

  /**
   * Takes in a stage that rendered whole, unless one of its names already holds other
   * contents here (then nothing of it, and why).
   */
  commit(stage: SecretFiles): string[] {
    const taken = Object.entries(stage.data).filter(([file, value]) => this.data[file] !== undefined && this.data[file] !== value)
      .map(([file]) => `file ${file} of the relay's Secret is already written with other contents; refused rather than overwritten`);
    if (taken.length) return taken;
    Object.assign(this.data, stage.data);
    this.oauth2Checks.push(...stage.oauth2Checks);
    return [];
  }

  /** A value from a user Secret, or undefined (and an error naming it). */
  read(name: string, key: string, what: string): string | undefined {
    const s = this.user.get(name);
    if (!s) { this.errors.push(`${what}: Secret ${name} not found`); return undefined; }
    const v = s[key];
    if (v === undefined) { this.errors.push(`${what}: Secret ${name} has no key ${key}`); return undefined; }
    return v;
  }

  /** A value that may be absent (e.g. the client secret of a public OAuth client). */
  optional(name: string, key: string): string | undefined {
    return this.user.get(name)?.[key];
  }

  /** Stores value as a file of the relay's Secret; returns the path the relay reads it from. */
  put(file: string, value: string): string {
    const had = this.data[file] ?? this.committed?.[file];
    if (!validSecretKey(file) || !this.mine(file)) this.errors.push(`file ${file}: not a name this part of the relay's Secret may use (operator/render/relay-secret-keys.ts)`);
    else if (had !== undefined && had !== value) this.errors.push(`file ${file} of the relay's Secret is already written with other contents; refused rather than overwritten`);
    else this.data[file] = value;
    return secretFile(file);
  }
}

type Config = RelayConfigInput;
type SmarthostSpec = NonNullable<EmailRelaySpec['delivery']['smarthosts']>[number];

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

/** `filePrefix` names this smarthost's files in the relay's Secret (smarthost-0.password, ...). */
function smarthostConfig(files: SecretFiles, h: SmarthostSpec, filePrefix: string, what: string, name = h.name): SmarthostConfigInput {
  const out: SmarthostConfigInput = { host: h.host, port: h.port, tls: h.tls, requireTls: h.requireTls };
  if (name) out.name = name;
  const ref = h.credentialsSecretRef;
  if (ref) {
    const user = files.read(ref.name, ref.usernameKey, `${what} credentials`);
    const pass = files.read(ref.name, ref.passwordKey, `${what} credentials`);
    if (user !== undefined && pass !== undefined) out.auth = { user, passwordFile: files.put(`${filePrefix}.password`, pass) };
  }
  if (h.oauth2) {
    const o = renderSmarthostOAuth2(h.oauth2, files, filePrefix, `${what}${h.name ? ` (${h.name})` : ''}`);
    if (o) {
      out.auth = o.auth;
      files.oauth2Checks.push(o.check);
    }
  }
  return out;
}

type DomainEntry = NonNullable<Config['domains']>[number];
type Credential = NonNullable<Config['credentials']>[number];

/** A SenderDomain the relay serves as an owner but left out of its config, and why. */
export interface LeftOutDomain {
  /** namespace/name of the SenderDomain. */
  senderDomain: string;
  domain: string;
  errors: string[];
}

/**
 * One SenderDomain's config entry and login, its files staged in `files`. Everything it reads
 * is its own (its keys, its Secrets), and its entry is checked against the relay's schema on
 * its own: what fails here is that tenant's, and leaves out that domain only.
 */
function domainEntry(a: AttachedDomain, files: SecretFiles, now: number): { entry: DomainEntry; credential?: Credential } {
  const { sd, internal } = a;
  const d = sd.spec;
  const names = domainFiles(sd.metadata.namespace ?? '', sd.metadata.name);
  const entry: DomainEntry = { domain: d.domain, allowedSenders: d.allowedSenders, fromAlignment: d.fromAlignment };
  const keys = signingKeys(internal.dkim, now).filter((k) => internal.pems[k.selector]);
  if (keys.length) {
    entry.dkim = {
      keys: keys.map((k) => {
        const key = { selector: k.selector, algorithm: k.algorithm, privateKeyFile: files.put(names.dkim(k.selector), internal.pems[k.selector] as string) };
        // a key the relay would refuse (RSA under 1024 bits, say) would make it refuse the whole config
        try { parseDkimKey(internal.pems[k.selector] as string, key); } catch (e) { files.errors.push((e as Error).message); }
        return key;
      }),
    };
  }
  if (d.rateLimit) entry.rateLimit = d.rateLimit;
  // Its name labels metrics (mailfleet_oauth2_credential_healthy{smarthost}), /status and the
  // relay's destinations entries: qualified by the SenderDomain, so that no tenant's smarthost
  // shares one with the platform's or another tenant's (unnamed, two would share host:port).
  if (d.smarthost) {
    const name = `${sd.metadata.namespace ?? ''}/${sd.metadata.name}/${d.smarthost.name ?? d.smarthost.host}`;
    entry.smarthost = smarthostConfig(files, d.smarthost, names.smarthost, `SenderDomain ${sd.metadata.name} smarthost`, name);
  }
  const checked = senderDomainSchema.safeParse(entry);
  if (!checked.success) files.errors.push(...formatIssues(checked.error, 'relay config entry '));
  if (!d.credentials.enabled || !internal.passwordHash) return { entry };
  const credential: Credential = { username: d.credentials.username ?? d.domain, passwordHashFile: files.put(names.login, internal.passwordHash), domains: [d.domain] };
  const login = credentialSchema.safeParse(credential);
  if (!login.success) files.errors.push(...formatIssues(login.error, 'relay config login '));
  return { entry, credential };
}

/**
 * What one SenderDomain's files may take in the relay's Secret (keys and values, bytes). Its
 * DKIM keys (a few during a rotation), login hash and smarthost login take a few KiB; the
 * bound keeps one tenant's oversized Secret from filling what every tenant shares.
 */
export const DOMAIN_FILES_MAX = 32 * 1024;
/**
 * What the relay's Secret and its config may hold (bytes): the API server refuses a Secret or
 * ConfigMap whose data pass 1 MiB, and the relay would then get nothing new at all.
 */
export const OBJECT_DATA_MAX = 1024 * 1024 - 16 * 1024;
const byteSize = (s: string) => Buffer.byteLength(s, 'utf8');
const filesSize = (data: Record<string, string>) => Object.entries(data).reduce((n, [k, v]) => n + byteSize(k) + byteSize(v), 0);
const yamlSize = (v: unknown) => byteSize(YAML.stringify(v, { lineWidth: 0 }));

/** Renders one SenderDomain into its stage; an exception is that domain's error, never the relay's. */
function stageDomain(a: AttachedDomain, stage: SecretFiles, now: number): ReturnType<typeof domainEntry> | undefined {
  try {
    const out = domainEntry(a, stage, now);
    const size = filesSize(stage.data);
    if (size > DOMAIN_FILES_MAX) {
      stage.errors.push(`its files in the relay's Secret would take ${size} bytes, more than ${DOMAIN_FILES_MAX}: a Secret it names holds more than a key or a password needs`);
    }
    return out;
  } catch (e) {
    stage.errors.push((e as Error).message);
    return undefined;
  }
}

/**
 * Why a SenderDomain would be left out of its relay's config on its own account (its
 * smarthost Secret lacks a key, its OAuth2 credential does not load, its entry breaks the
 * relay's schema); empty when it renders. The same code as the relay's render, so the
 * SenderDomain controller reports exactly what the relay leaves it out for.
 */
export function domainEntryRefusal(a: AttachedDomain, now: Date): { reason: typeof SECRET_UNUSABLE | typeof ENTRY_INVALID; message: string } | undefined {
  const stage = SecretFiles.forRelay(new Map()).stage(domainFiles(a.sd.metadata.namespace ?? '', a.sd.metadata.name).owner, a.secrets);
  stageDomain(a, stage, now.getTime());
  if (!stage.errors.length) return undefined;
  // every error that comes from a user Secret says so (`<field>: Secret <name> ...`)
  const reason = stage.errors.some((e) => /\bSecret\b/.test(e)) ? SECRET_UNUSABLE : ENTRY_INVALID;
  return { reason, message: `not served: ${stage.errors.join('; ')}`.slice(0, 4000) };
}

/** A Secret the SenderDomain may use lacks a key, or holds what cannot be used (an OAuth2 credential that does not load). */
export const SECRET_UNUSABLE = 'SecretUnusable';
/** The SenderDomain's entry is one the relay's config schema refuses. */
export const ENTRY_INVALID = 'ConfigInvalid';

/** Oldest claim first (creationTimestamp, then namespace/name), as domain ownership goes. */
const claimOrder = (sd: SenderDomain) => `${sd.metadata.creationTimestamp ?? ''}\n${sd.metadata.namespace ?? ''}/${sd.metadata.name}`;

/**
 * The served domains (with their signing keys) and the SMTP logins, sorted by domain, after
 * the relay's own files are in. A domain that does not render whole is left out and listed;
 * so is one that would take the Secret or the config (`configBytes` so far) past what the API
 * server stores: the oldest SenderDomains are served first, so a newcomer never pushes out
 * those already served.
 */
function domainsConfig(input: RelayInput, files: SecretFiles, configBytes: number): { domains: DomainEntry[]; credentials: Credential[]; leftOut: LeftOutDomain[] } {
  const now = input.now.getTime();
  const leftOut: LeftOutDomain[] = [];
  const key = (a: AttachedDomain) => `${a.sd.metadata.namespace ?? ''}/${a.sd.metadata.name}`;
  const staged: { a: AttachedDomain; out: NonNullable<ReturnType<typeof stageDomain>>; stage: SecretFiles }[] = [];
  for (const a of input.domains) {
    const stage = files.stage(domainFiles(a.sd.metadata.namespace ?? '', a.sd.metadata.name).owner, a.secrets);
    const out = stageDomain(a, stage, now);
    if (!out || stage.errors.length) leftOut.push({ senderDomain: key(a), domain: a.sd.spec.domain, errors: stage.errors });
    else staged.push({ a, out, stage });
  }
  let secretBytes = filesSize(files.data);
  const fitting = staged.sort((x, y) => (claimOrder(x.a.sd) < claimOrder(y.a.sd) ? -1 : 1)).filter(({ a, out, stage }) => {
    const s = filesSize(stage.data);
    const c = yamlSize({ domains: [out.entry], credentials: out.credential ? [out.credential] : [] });
    const full = secretBytes + s > OBJECT_DATA_MAX ? 'Secret' : configBytes + c > OBJECT_DATA_MAX ? 'config' : undefined;
    if (full) {
      leftOut.push({ senderDomain: key(a), domain: a.sd.spec.domain, errors: [`the relay's ${full} would pass the ${OBJECT_DATA_MAX} bytes the API server stores; SenderDomains are served oldest first`] });
      return false;
    }
    secretBytes += s;
    configBytes += c;
    return true;
  });
  const domains: DomainEntry[] = [];
  const credentials: Credential[] = [];
  for (const { a, out, stage } of fitting.sort((x, y) => x.a.sd.spec.domain.localeCompare(y.a.sd.spec.domain))) {
    const taken = files.commit(stage);
    if (taken.length) {
      leftOut.push({ senderDomain: key(a), domain: a.sd.spec.domain, errors: taken });
      continue;
    }
    domains.push(out.entry);
    if (out.credential) credentials.push(out.credential);
  }
  return { domains, credentials, leftOut: leftOut.sort((x, y) => x.senderDomain.localeCompare(y.senderDomain)) };
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
 * The scale-down hand-off (docs/operator.md): with a persistent queue every pod runs the
 * internal hand-off listener, watches its annotations for a drain request, and knows the
 * pods that stay (ordinals below spec.replicas) through the headless Service's pod names.
 */
function handoffConfig(relay: EmailRelay, token: string, files: SecretFiles): NonNullable<Config['handoff']> {
  const n = relayNames(relay.metadata.name);
  const ns = relay.metadata.namespace ?? 'default';
  return {
    annotationsFile: ANNOTATIONS_FILE, host: '0.0.0.0', port: HANDOFF_PORT, tokenFile: files.put(RELAY_FILES.fleetToken, token),
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
  const handoff = spec.queue.persistence.enabled && input.fleetToken ? handoffConfig(input.relay, input.fleetToken, files) : undefined;
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
  const { domains, credentials, leftOut } = domainsConfig(input, files, yamlSize(config) + 200);
  const trusted = servedTrustedNetworks(spec, domains);
  Object.assign(config, { credentials, trustedNetworks: trusted.networks, domains });
  const errors = [...files.errors];
  const clash = config.handoff && Object.entries(ports).find(([, p]) => p === HANDOFF_PORT);
  if (clash) errors.push(`listeners.${clash[0]}: port ${HANDOFF_PORT} is the fleet's hand-off listener (with a persistent queue); choose another port`);
  if (spec.tls?.issuerRef && !input.apis.certManager) errors.push('tls.issuerRef is set but cert-manager (certificates.cert-manager.io) is not installed');
  const parsed = relayConfigSchema.safeParse(config);
  if (!parsed.success) errors.push(...formatIssues(parsed.error, 'relay config '));
  return { config, secretData: files.data, ports, errors, oauth2Checks: files.oauth2Checks, unservedTrustedDomains: trusted.unserved, leftOut };
}
