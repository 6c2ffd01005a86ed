// EmailRelay → the relay config (rendered THROUGH relay/config/schema.ts and validated
// before anything is applied) and every owned object. Pure: the edge gathers the relay,
// its SenderDomains' internal data and the user Secrets it references.
//
// The pod template depends only on what needs a restart (image, resources, ports, volumes,
// TLS Secret name): domains, limits and credentials live in the ConfigMap and Secret, which
// the relay re-reads when the mounted files change, so adding a domain never rolls pods.
import YAML from 'yaml';
import { relayConfigSchema, type RelayConfigInput } from '../../relay/config/schema.ts';
import type { SmarthostConfigInput } from '../../relay/delivery/schema.ts';
import type { RedisLimiterConfigInput } from '../../relay/limits/schema.ts';
import { parseDuration } from '../../relay/util/duration.ts';
import { formatIssues } from '../../relay/util/zod-issues.ts';
import type { EmailRelaySpec, EmailRelayStatus } from '../api/emailrelay.ts';
import { API_VERSION } from '../api/common.ts';
import { signingKeys } from './dkim.ts';
import type { DomainInternal, SenderDomain } from './domain.ts';
import {
  SERVICE_ROLE_LABEL, encodeSecretData, ownerRef, relayHost, relayLabels, relayNames, relaySelector, type CustomObject, type KubeObject,
} from './objects.ts';

export type EmailRelay = CustomObject<EmailRelaySpec, EmailRelayStatus>;

export const DEFAULT_IMAGE = 'ghcr.io/mailfleet/mailfleet:0.1.0';
export const CONFIG_DIR = '/etc/mailfleet';
export const CONFIG_FILE = `${CONFIG_DIR}/relay.yaml`;
export const SECRETS_DIR = '/var/run/mailfleet/secrets';
export const TLS_DIR = '/var/run/mailfleet/tls';
export const DATA_DIR = '/var/lib/mailfleet';
export const HTTP_PORT = 9464;
const RUN_AS = 65532;

export interface AttachedDomain {
  sd: SenderDomain;
  internal: DomainInternal;
}

export interface RelayInput {
  relay: EmailRelay;
  /** SenderDomains that own their domain on this relay (conflicts already removed). */
  domains: AttachedDomain[];
  /** Decoded data of user Secrets referenced by the spec, by name (missing: absent). */
  userSecrets: Map<string, Record<string, string>>;
  image: string;
  /** Optional APIs installed in the cluster. */
  apis: { serviceMonitor: boolean; certManager: boolean };
  now: Date;
}

export interface RelayOutput {
  /** Objects to apply, in order (config and secrets before the workload). */
  objects: KubeObject[];
  /** Owned kinds that must not exist (e.g. the HPA after autoscaling was removed). */
  absent: { apiVersion: string; kind: string; name: string }[];
  /** The rendered config input (already validated), for tests and logs. */
  config?: RelayConfigInput;
  /** Render or reference problems; any of them means nothing is applied. */
  errors: string[];
  /** Names of the listeners and their ports, for status.endpoint. */
  ports: Record<string, number>;
}

const secretFile = (key: string) => `${SECRETS_DIR}/${key}`;

function secretValue(input: RelayInput, errors: string[], name: string, key: string, what: string): string | undefined {
  const s = input.userSecrets.get(name);
  if (!s) { errors.push(`${what}: Secret ${name} not found`); return undefined; }
  const v = s[key];
  if (v === undefined) { errors.push(`${what}: Secret ${name} has no key ${key}`); return undefined; }
  return v;
}

/** Secrets the spec references, so the edge knows what to read. */
export function referencedSecrets(relay: EmailRelay, domains: SenderDomain[]): string[] {
  const s = relay.spec;
  const names = new Set<string>();
  for (const h of s.delivery.smarthosts ?? []) if (h.credentialsSecretRef) names.add(h.credentialsSecretRef.name);
  if (s.redis?.passwordSecretRef) names.add(s.redis.passwordSecretRef.name);
  for (const w of s.webhooks ?? []) names.add(w.secretRef.name);
  for (const d of domains) if (d.spec.smarthost?.credentialsSecretRef) names.add(d.spec.smarthost.credentialsSecretRef.name);
  return [...names].sort();
}

type SmarthostSpec = NonNullable<EmailRelaySpec['delivery']['smarthosts']>[number];

function smarthostConfig(input: RelayInput, errors: string[], secretData: Record<string, string>, h: SmarthostSpec, fileKey: string, what: string): SmarthostConfigInput {
  const out: SmarthostConfigInput = { host: h.host, port: h.port, tls: h.tls, requireTls: h.requireTls };
  if (h.name) out.name = h.name;
  const ref = h.credentialsSecretRef;
  if (ref) {
    const user = secretValue(input, errors, ref.name, ref.usernameKey, `${what} credentials`);
    const pass = secretValue(input, errors, ref.name, ref.passwordKey, `${what} credentials`);
    if (user !== undefined && pass !== undefined) {
      secretData[fileKey] = pass;
      out.auth = { user, passwordFile: secretFile(fileKey) };
    }
  }
  return out;
}

export function reconcileRelay(input: RelayInput): RelayOutput {
  const { relay } = input;
  const spec = relay.spec;
  const name = relay.metadata.name;
  const ns = relay.metadata.namespace ?? 'default';
  const n = relayNames(name);
  const labels = relayLabels(name);
  const selector = relaySelector(name);
  const owner = [ownerRef(relay)];
  const meta = (objName: string) => ({ name: objName, namespace: ns, labels, ownerReferences: owner });
  const errors: string[] = [];
  const secretData: Record<string, string> = {};

  // --- listeners ---
  const listeners: RelayConfigInput['listeners'] = [];
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
  const tlsSecret = spec.tls?.secretName ?? (spec.tls?.issuerRef ? n.certificateSecret : undefined);
  const hostname = spec.hostname ?? relayHost(name, ns);

  // --- domains, logins ---
  const now = input.now.getTime();
  const sorted = [...input.domains].sort((a, b) => a.sd.spec.domain.localeCompare(b.sd.spec.domain));
  const domains: NonNullable<RelayConfigInput['domains']> = [];
  const credentials: NonNullable<RelayConfigInput['credentials']> = [];
  for (const { sd, internal } of sorted) {
    const d = sd.spec;
    const entry: NonNullable<RelayConfigInput['domains']>[number] = {
      domain: d.domain, allowedSenders: d.allowedSenders, fromAlignment: d.fromAlignment,
    };
    const keys = signingKeys(internal.dkim, now).filter((k) => internal.pems[k.selector]);
    if (keys.length) {
      entry.dkim = {
        keys: keys.map((k) => {
          const file = `dkim-${sd.metadata.name}-${k.selector}.pem`;
          secretData[file] = internal.pems[k.selector] as string;
          return { selector: k.selector, algorithm: k.algorithm, privateKeyFile: secretFile(file) };
        }),
      };
    }
    if (d.rateLimit) entry.rateLimit = d.rateLimit;
    if (d.smarthost) entry.smarthost = smarthostConfig(input, errors, secretData, d.smarthost, `smarthost-${sd.metadata.name}.password`, `SenderDomain ${sd.metadata.name} smarthost`);
    domains.push(entry);
    if (d.credentials.enabled && internal.passwordHash) {
      const file = `login-${sd.metadata.name}.hash`;
      secretData[file] = internal.passwordHash;
      credentials.push({ username: d.credentials.username ?? d.domain, passwordHashFile: secretFile(file), domains: [d.domain] });
    }
  }

  // --- delivery ---
  const destinations: Record<string, { maxConnections?: number }> = {};
  const paces: Record<string, { perMinute: number }> = {};
  for (const [dest, lim] of Object.entries(spec.delivery.destinations ?? {})) {
    if (lim.maxConnections !== undefined) destinations[dest] = { maxConnections: lim.maxConnections };
    if (lim.messagesPerMinute !== undefined) paces[dest] = { perMinute: lim.messagesPerMinute };
  }
  const delivery: RelayConfigInput['delivery'] = {
    mode: spec.delivery.mode,
    smarthosts: (spec.delivery.smarthosts ?? []).map((h, i) => smarthostConfig(input, errors, secretData, h, `smarthost-${i}.password`, `delivery.smarthosts[${i}]`)),
    destinations,
    heloName: hostname,
    ...(spec.delivery.dnsServers ? { mx: { dnsServers: spec.delivery.dnsServers } } : {}),
  };

  const config: RelayConfigInput = {
    hostname,
    dataDir: DATA_DIR,
    listeners,
    tls: tlsSecret ? { certFile: `${TLS_DIR}/tls.crt`, keyFile: `${TLS_DIR}/tls.key` } : { selfSigned: true },
    limits: { drainTimeout: spec.drainTimeout },
    credentials,
    trustedNetworks: spec.trustedNetworks ?? [],
    domains,
    rateLimits: {
      ...(spec.rateLimits?.perDomain ? { perDomain: spec.rateLimits.perDomain } : {}),
      ...(spec.rateLimits?.perLogin ? { perLogin: spec.rateLimits.perLogin } : {}),
      destinations: paces,
    },
    queue: { maxLifetime: spec.queue.maxLifetime, ...(spec.queue.retrySchedule ? { retrySchedule: spec.queue.retrySchedule } : {}) },
    delivery,
    http: { host: '0.0.0.0', port: HTTP_PORT },
  };
  if (spec.redis) {
    const r: RedisLimiterConfigInput = { url: spec.redis.url };
    const ref = spec.redis.passwordSecretRef;
    if (ref) {
      const v = secretValue(input, errors, ref.name, ref.key, 'redis password');
      if (v !== undefined) { secretData['redis.password'] = v; r.passwordFile = secretFile('redis.password'); }
    }
    config.redis = r;
  }
  if (spec.webhooks?.length) {
    config.webhooks = spec.webhooks.map((w, i) => {
      const v = secretValue(input, errors, w.secretRef.name, w.secretRef.key, `webhooks[${i}] secret`);
      if (v !== undefined) secretData[`webhook-${i}.secret`] = v;
      return { url: w.url, secretFile: secretFile(`webhook-${i}.secret`), ...(w.events ? { events: w.events } : {}) };
    });
  }
  if (spec.tls?.issuerRef && !input.apis.certManager) errors.push('tls.issuerRef is set but cert-manager (certificates.cert-manager.io) is not installed');

  const parsed = relayConfigSchema.safeParse(config);
  if (!parsed.success) {
    errors.push(...formatIssues(parsed.error, 'relay config '));
  }
  if (errors.length) return { objects: [], absent: [], errors, ports };

  // --- objects ---
  const objects: KubeObject[] = [];
  const absent: RelayOutput['absent'] = [];
  objects.push({
    apiVersion: 'v1', kind: 'ConfigMap', metadata: meta(n.config),
    data: { 'relay.yaml': `# Rendered by mailfleet-operator from EmailRelay ${ns}/${name}; edits are overwritten.\n${YAML.stringify(config, { lineWidth: 0 })}` },
  });
  objects.push({ apiVersion: 'v1', kind: 'Secret', metadata: meta(n.secrets), type: 'Opaque', data: encodeSecretData(secretData) });
  if (spec.tls?.issuerRef) {
    objects.push({
      apiVersion: 'cert-manager.io/v1', kind: 'Certificate', metadata: meta(n.certificate),
      spec: { secretName: n.certificateSecret, dnsNames: spec.tls.dnsNames ?? [hostname], issuerRef: spec.tls.issuerRef },
    });
  }

  // Both Services select the same pods, so they carry a role label: the ServiceMonitor
  // selects the normal one only (else Prometheus scrapes every pod twice).
  const servicePorts = Object.entries(ports).map(([p, port]) => ({ name: p, port, targetPort: p, protocol: 'TCP' }));
  objects.push({
    apiVersion: 'v1', kind: 'Service', metadata: { ...meta(n.service), labels: { ...labels, [SERVICE_ROLE_LABEL]: 'main' } },
    spec: { type: 'ClusterIP', selector, ports: [...servicePorts, { name: 'metrics', port: HTTP_PORT, targetPort: 'metrics', protocol: 'TCP' }] },
  });
  objects.push({
    apiVersion: 'v1', kind: 'Service', metadata: { ...meta(n.headless), labels: { ...labels, [SERVICE_ROLE_LABEL]: 'headless' } },
    spec: { clusterIP: 'None', selector, ports: servicePorts.length ? servicePorts : [{ name: 'metrics', port: HTTP_PORT, targetPort: 'metrics', protocol: 'TCP' }] },
  });

  const persistent = spec.queue.persistence.enabled;
  const drainSeconds = Math.ceil(parseDuration(spec.drainTimeout) / 1000);
  const volumes: Record<string, unknown>[] = [
    { name: 'config', configMap: { name: n.config } },
    { name: 'secrets', secret: { secretName: n.secrets, defaultMode: 0o440 } },
    { name: 'tmp', emptyDir: {} },
  ];
  const mounts: Record<string, unknown>[] = [
    { name: 'config', mountPath: CONFIG_DIR, readOnly: true },
    { name: 'secrets', mountPath: SECRETS_DIR, readOnly: true },
    { name: 'data', mountPath: DATA_DIR },
    { name: 'tmp', mountPath: '/tmp' },
  ];
  if (tlsSecret) {
    volumes.push({ name: 'tls', secret: { secretName: tlsSecret, defaultMode: 0o440 } });
    mounts.push({ name: 'tls', mountPath: TLS_DIR, readOnly: true });
  }
  if (!persistent) volumes.push({ name: 'data', emptyDir: {} });
  const container: Record<string, unknown> = {
    name: 'relay',
    image: spec.image ?? input.image,
    args: ['relay', '--config', CONFIG_FILE],
    ports: [
      ...Object.entries(ports).map(([p, port]) => ({ name: p, containerPort: port, protocol: 'TCP' })),
      { name: 'metrics', containerPort: HTTP_PORT, protocol: 'TCP' },
    ],
    env: [
      { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
      { name: 'POD_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
    ],
    volumeMounts: mounts,
    readinessProbe: { httpGet: { path: '/readyz', port: 'metrics' }, periodSeconds: 5, failureThreshold: 3 },
    livenessProbe: { httpGet: { path: '/healthz', port: 'metrics' }, periodSeconds: 10, failureThreshold: 6 },
    startupProbe: { httpGet: { path: '/healthz', port: 'metrics' }, periodSeconds: 2, failureThreshold: 60 },
    securityContext: {
      allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, runAsNonRoot: true, privileged: false,
      capabilities: { drop: ['ALL'] }, seccompProfile: { type: 'RuntimeDefault' },
    },
  };
  if (spec.resources) container.resources = spec.resources;
  const podSpec = {
    // The relay drains SMTP sessions for drainTimeout, then finishes in-flight deliveries.
    terminationGracePeriodSeconds: drainSeconds + 30,
    enableServiceLinks: false,
    automountServiceAccountToken: false,
    securityContext: {
      runAsNonRoot: true, runAsUser: RUN_AS, runAsGroup: RUN_AS, fsGroup: RUN_AS, seccompProfile: { type: 'RuntimeDefault' },
      // 465 (and 25) are below 1024: let the non-root relay bind them without a capability.
      sysctls: [{ name: 'net.ipv4.ip_unprivileged_port_start', value: '0' }],
    },
    containers: [container],
    volumes,
  };
  const template = { metadata: { labels }, spec: podSpec };
  if (persistent) {
    const pvcSpec: Record<string, unknown> = { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: spec.queue.persistence.size } } };
    if (spec.queue.persistence.storageClassName) pvcSpec.storageClassName = spec.queue.persistence.storageClassName;
    objects.push({
      apiVersion: 'apps/v1', kind: 'StatefulSet', metadata: meta(n.workload),
      spec: {
        replicas: spec.replicas, serviceName: n.headless, podManagementPolicy: 'Parallel',
        selector: { matchLabels: selector }, template,
        updateStrategy: { type: 'RollingUpdate' },
        // Queued mail lives on these volumes: keep them when scaling down or deleting.
        persistentVolumeClaimRetentionPolicy: { whenDeleted: 'Retain', whenScaled: 'Retain' },
        volumeClaimTemplates: [{ metadata: { name: 'data', labels }, spec: pvcSpec }],
      },
    });
    absent.push({ apiVersion: 'apps/v1', kind: 'Deployment', name: n.workload });
  } else {
    objects.push({
      apiVersion: 'apps/v1', kind: 'Deployment', metadata: meta(n.workload),
      spec: {
        replicas: spec.replicas, selector: { matchLabels: selector }, template,
        strategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 0, maxSurge: 1 } },
      },
    });
    absent.push({ apiVersion: 'apps/v1', kind: 'StatefulSet', name: n.workload });
  }

  if (spec.podDisruptionBudget.enabled) {
    objects.push({ apiVersion: 'policy/v1', kind: 'PodDisruptionBudget', metadata: meta(n.pdb), spec: { maxUnavailable: spec.podDisruptionBudget.maxUnavailable, selector: { matchLabels: selector } } });
  } else absent.push({ apiVersion: 'policy/v1', kind: 'PodDisruptionBudget', name: n.pdb });

  if (spec.autoscaling) {
    objects.push({
      apiVersion: 'autoscaling/v2', kind: 'HorizontalPodAutoscaler', metadata: meta(n.hpa),
      spec: {
        // Scales the EmailRelay (scale subresource), so spec.replicas stays the one truth.
        scaleTargetRef: { apiVersion: API_VERSION, kind: 'EmailRelay', name },
        minReplicas: spec.autoscaling.minReplicas, maxReplicas: spec.autoscaling.maxReplicas,
        metrics: [{ type: 'Resource', resource: { name: 'cpu', target: { type: 'Utilization', averageUtilization: spec.autoscaling.targetCPUUtilizationPercentage } } }],
      },
    });
  } else absent.push({ apiVersion: 'autoscaling/v2', kind: 'HorizontalPodAutoscaler', name: n.hpa });

  if (spec.networkPolicy.enabled) {
    const from = spec.networkPolicy.allowFrom?.map((cidr) => ({ ipBlock: { cidr } }));
    objects.push({
      apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: meta(n.networkPolicy),
      spec: {
        podSelector: { matchLabels: selector }, policyTypes: ['Ingress'],
        ingress: [
          { ...(from ? { from } : {}), ports: Object.values(ports).map((port) => ({ protocol: 'TCP', port })) },
          { ports: [{ protocol: 'TCP', port: HTTP_PORT }] },
        ],
      },
    });
  } else absent.push({ apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', name: n.networkPolicy });

  if (spec.metrics.serviceMonitor.enabled && input.apis.serviceMonitor) {
    objects.push({
      apiVersion: 'monitoring.coreos.com/v1', kind: 'ServiceMonitor', metadata: meta(n.serviceMonitor),
      spec: { selector: { matchLabels: { ...selector, [SERVICE_ROLE_LABEL]: 'main' } }, endpoints: [{ port: 'metrics', path: '/metrics', ...(spec.metrics.serviceMonitor.interval ? { interval: spec.metrics.serviceMonitor.interval } : {}) }] },
    });
  } else if (input.apis.serviceMonitor) absent.push({ apiVersion: 'monitoring.coreos.com/v1', kind: 'ServiceMonitor', name: n.serviceMonitor });

  return { objects, absent, config, errors, ports };
}
