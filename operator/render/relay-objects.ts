// The objects an EmailRelay owns, one small function each. Pure: each takes the relay (and
// what was rendered before it) and returns the object to apply.
import YAML from 'yaml';
import type { RelayConfigInput } from '../../relay/config/schema.ts';
import { API_VERSION } from '../api/common.ts';
import { SERVICE_ROLE_LABEL, encodeSecretData, ownerRef, relayLabels, relayNames, relaySelector, type EmailRelay, type KubeObject } from './objects.ts';
import { HANDOFF_PORT, HTTP_PORT } from './relay-paths.ts';

/** The part of an owned object's metadata every relay object shares. */
function meta(relay: EmailRelay, name: string) {
  return { name, namespace: relay.metadata.namespace ?? 'default', labels: relayLabels(relay.metadata.name), ownerReferences: [ownerRef(relay)] };
}

const names = (relay: EmailRelay) => relayNames(relay.metadata.name);

export function configMap(relay: EmailRelay, config: RelayConfigInput): KubeObject {
  const { name, namespace = 'default' } = relay.metadata;
  return {
    apiVersion: 'v1', kind: 'ConfigMap', metadata: meta(relay, names(relay).config),
    data: { 'relay.yaml': `# Rendered by mailfleet-operator from EmailRelay ${namespace}/${name}; edits are overwritten.\n${YAML.stringify(config, { lineWidth: 0 })}` },
  };
}

export function secret(relay: EmailRelay, data: Record<string, string>): KubeObject {
  return { apiVersion: 'v1', kind: 'Secret', metadata: meta(relay, names(relay).secrets), type: 'Opaque', data: encodeSecretData(data) };
}

export function certificate(relay: EmailRelay, issuerRef: NonNullable<NonNullable<EmailRelay['spec']['tls']>['issuerRef']>, hostname: string): KubeObject {
  const n = names(relay);
  return {
    apiVersion: 'cert-manager.io/v1', kind: 'Certificate', metadata: meta(relay, n.certificate),
    spec: { secretName: n.certificateSecret, dnsNames: relay.spec.tls?.dnsNames ?? [hostname], issuerRef },
  };
}

const servicePorts = (ports: Record<string, number>) => Object.entries(ports).map(([p, port]) => ({ name: p, port, targetPort: p, protocol: 'TCP' }));
const METRICS_PORT = { name: 'metrics', port: HTTP_PORT, targetPort: 'metrics', protocol: 'TCP' };

// Both Services select the same pods, so they carry a role label: the ServiceMonitor
// selects the main one only (else Prometheus scrapes every pod twice).
export function mainService(relay: EmailRelay, ports: Record<string, number>): KubeObject {
  const m = meta(relay, names(relay).service);
  return {
    apiVersion: 'v1', kind: 'Service', metadata: { ...m, labels: { ...m.labels, [SERVICE_ROLE_LABEL]: 'main' } },
    spec: { type: 'ClusterIP', selector: relaySelector(relay.metadata.name), ports: [...servicePorts(ports), METRICS_PORT] },
  };
}

/**
 * The StatefulSet's governing Service (per-pod DNS names), and for a Deployment the name its
 * pods hand their queue to on SIGTERM: its records are the ready pods only (a stopping relay
 * is not ready), so a leaving pod is never handed mail.
 */
export function headlessService(relay: EmailRelay, ports: Record<string, number>): KubeObject {
  const m = meta(relay, names(relay).headless);
  const sp = servicePorts(ports);
  return {
    apiVersion: 'v1', kind: 'Service', metadata: { ...m, labels: { ...m.labels, [SERVICE_ROLE_LABEL]: 'headless' } },
    // publishNotReadyAddresses stays unset (false): the API server drops a false, and a field the
    // live object lacks would be applied again on every reconcile (operator/runtime/diff.ts).
    spec: { clusterIP: 'None', selector: relaySelector(relay.metadata.name), ports: sp.length ? sp : [METRICS_PORT] },
  };
}

/**
 * With a persistent queue: one PVC per pod. The StatefulSet itself never deletes one: the
 * operator does, once the pod's queue was handed over (scale-down) or delivered (deletion).
 * `replicas` is more than spec.replicas while leaving pods drain (operator/render/drain.ts).
 */
export function statefulSet(relay: EmailRelay, template: Record<string, unknown>, replicas = relay.spec.replicas): KubeObject {
  const spec = relay.spec;
  const n = names(relay);
  const pvcSpec: Record<string, unknown> = { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: spec.queue.persistence.size } } };
  if (spec.queue.persistence.storageClassName) pvcSpec.storageClassName = spec.queue.persistence.storageClassName;
  return {
    apiVersion: 'apps/v1', kind: 'StatefulSet', metadata: meta(relay, n.workload),
    spec: {
      replicas, serviceName: n.headless, podManagementPolicy: 'Parallel',
      selector: { matchLabels: relaySelector(relay.metadata.name) }, template,
      updateStrategy: { type: 'RollingUpdate' },
      // Queued mail lives on these volumes: keep them when scaling down or deleting.
      persistentVolumeClaimRetentionPolicy: { whenDeleted: 'Retain', whenScaled: 'Retain' },
      volumeClaimTemplates: [{ metadata: { name: 'data', labels: relayLabels(relay.metadata.name) }, spec: pvcSpec }],
    },
  };
}

/**
 * Without persistence: an emptyDir queue, so surge first and never take a pod away early: the
 * new pod is ready (in the headless Service's records) before an old one hands its queue over.
 */
export function deployment(relay: EmailRelay, template: Record<string, unknown>): KubeObject {
  return {
    apiVersion: 'apps/v1', kind: 'Deployment', metadata: meta(relay, names(relay).workload),
    spec: {
      replicas: relay.spec.replicas, selector: { matchLabels: relaySelector(relay.metadata.name) }, template,
      strategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 0, maxSurge: 1 } },
    },
  };
}

export function podDisruptionBudget(relay: EmailRelay): KubeObject {
  return {
    apiVersion: 'policy/v1', kind: 'PodDisruptionBudget', metadata: meta(relay, names(relay).pdb),
    spec: { maxUnavailable: relay.spec.podDisruptionBudget.maxUnavailable, selector: { matchLabels: relaySelector(relay.metadata.name) } },
  };
}

export function horizontalPodAutoscaler(relay: EmailRelay, autoscaling: NonNullable<EmailRelay['spec']['autoscaling']>): KubeObject {
  return {
    apiVersion: 'autoscaling/v2', kind: 'HorizontalPodAutoscaler', metadata: meta(relay, names(relay).hpa),
    spec: {
      // Scales the EmailRelay (scale subresource), so spec.replicas stays the one truth.
      scaleTargetRef: { apiVersion: API_VERSION, kind: 'EmailRelay', name: relay.metadata.name },
      minReplicas: autoscaling.minReplicas, maxReplicas: autoscaling.maxReplicas,
      metrics: [{ type: 'Resource', resource: { name: 'cpu', target: { type: 'Utilization', averageUtilization: autoscaling.targetCPUUtilizationPercentage } } }],
    },
  };
}

/** SMTP ports from allowFrom (or anyone), metrics from anyone, the hand-off listener from the fleet's own pods only. */
export function networkPolicy(relay: EmailRelay, ports: Record<string, number>, withHandoff: boolean): KubeObject {
  const from = relay.spec.networkPolicy.allowFrom?.map((cidr) => ({ ipBlock: { cidr } }));
  const handoff = withHandoff
    ? [{ from: [{ podSelector: { matchLabels: relaySelector(relay.metadata.name) } }], ports: [{ protocol: 'TCP', port: HANDOFF_PORT }] }]
    : [];
  return {
    apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: meta(relay, names(relay).networkPolicy),
    spec: {
      podSelector: { matchLabels: relaySelector(relay.metadata.name) }, policyTypes: ['Ingress'],
      ingress: [
        { ...(from ? { from } : {}), ports: Object.values(ports).map((port) => ({ protocol: 'TCP', port })) },
        { ports: [{ protocol: 'TCP', port: HTTP_PORT }] },
        ...handoff,
      ],
    },
  };
}

export function serviceMonitor(relay: EmailRelay): KubeObject {
  const interval = relay.spec.metrics.serviceMonitor.interval;
  return {
    apiVersion: 'monitoring.coreos.com/v1', kind: 'ServiceMonitor', metadata: meta(relay, names(relay).serviceMonitor),
    spec: {
      selector: { matchLabels: { ...relaySelector(relay.metadata.name), [SERVICE_ROLE_LABEL]: 'main' } },
      endpoints: [{ port: 'metrics', path: '/metrics', ...(interval ? { interval } : {}) }],
    },
  };
}
