// The relay pod template: one hardened container (non-root, read-only root fs, no
// capabilities) mounting the config, Secrets, TLS files and data volume. It depends only on
// what needs a restart (image, resources, ports, volumes, TLS Secret name): domains, limits
// and credentials live in the ConfigMap and Secret, which the relay re-reads when the mounted
// files change, so adding a domain never rolls pods.
import { parseDuration } from '../../relay/util/duration.ts';
import { relayLabels, relayNames, type EmailRelay } from './objects.ts';
import { CONFIG_DIR, CONFIG_FILE, DATA_DIR, HANDOFF_PORT, HTTP_PORT, PODINFO_DIR, SECRETS_DIR, TLS_DIR } from './relay-paths.ts';

export const DEFAULT_IMAGE = 'ghcr.io/mailfleet/mailfleet:0.1.0';
const RUN_AS = 65532;

export interface PodInput {
  relay: EmailRelay;
  /** Image when spec.image is unset. */
  image: string;
  tlsSecret: string | undefined;
  ports: Record<string, number>;
  /** The config has the hand-off listener (operator/render/relay-config.ts handoffConfig). */
  handoff: boolean;
}

function volumes({ relay, tlsSecret }: PodInput): { volumes: Record<string, unknown>[]; mounts: Record<string, unknown>[] } {
  const n = relayNames(relay.metadata.name);
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
  // With persistence the StatefulSet's volumeClaimTemplates provide "data". Either way the pod
  // sees its own annotations (a drain request on scale-down, or on deletion) through the
  // downward API. Not under CONFIG_DIR: that is a read-only ConfigMap mount, no place for a
  // nested mount point.
  if (!relay.spec.queue.persistence.enabled) volumes.push({ name: 'data', emptyDir: {} });
  volumes.push({ name: 'podinfo', downwardAPI: { items: [{ path: 'annotations', fieldRef: { fieldPath: 'metadata.annotations' } }] } });
  mounts.push({ name: 'podinfo', mountPath: PODINFO_DIR, readOnly: true });
  return { volumes, mounts };
}

function container(input: PodInput, mounts: Record<string, unknown>[]): Record<string, unknown> {
  const spec = input.relay.spec;
  const c: Record<string, unknown> = {
    name: 'relay',
    image: spec.image ?? input.image,
    args: ['relay', '--config', CONFIG_FILE],
    ports: [
      ...Object.entries(input.ports).map(([p, port]) => ({ name: p, containerPort: port, protocol: 'TCP' })),
      { name: 'metrics', containerPort: HTTP_PORT, protocol: 'TCP' },
      ...(input.handoff ? [{ name: 'handoff', containerPort: HANDOFF_PORT, protocol: 'TCP' }] : []),
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
  if (spec.resources) c.resources = spec.resources;
  return c;
}

export function relayPodTemplate(input: PodInput): Record<string, unknown> {
  const { volumes: vols, mounts } = volumes(input);
  const drainSeconds = Math.ceil(parseDuration(input.relay.spec.drainTimeout) / 1000);
  return {
    metadata: { labels: relayLabels(input.relay.metadata.name) },
    spec: {
      // The relay drains SMTP sessions for drainTimeout, then aborts the deliveries still
      // running; without a persistent queue it hands its queue to the peers meanwhile and
      // up to 10 s past drainTimeout (relay.ts SHUTDOWN_HANDOFF_GRACE_MS): 30 s covers both.
      terminationGracePeriodSeconds: drainSeconds + 30,
      enableServiceLinks: false,
      automountServiceAccountToken: false,
      securityContext: {
        runAsNonRoot: true, runAsUser: RUN_AS, runAsGroup: RUN_AS, fsGroup: RUN_AS, seccompProfile: { type: 'RuntimeDefault' },
        // 465 (and 25) are below 1024: let the non-root relay bind them without a capability.
        sysctls: [{ name: 'net.ipv4.ip_unprivileged_port_start', value: '0' }],
      },
      containers: [container(input, mounts)],
      volumes: vols,
    },
  };
}
