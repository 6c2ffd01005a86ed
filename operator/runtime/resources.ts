// The API resources the operator touches: kind → REST path. One table, so RBAC
// (deploy/rbac.yaml) can be checked against it by a test.
export interface Resource {
  group: string; // '' for core
  version: string;
  kind: string;
  plural: string;
  namespaced: boolean;
}

const R = (group: string, version: string, kind: string, plural: string, namespaced = true): Resource => ({ group, version, kind, plural, namespaced });

export const RESOURCES: Resource[] = [
  R('mailfleet.io', 'v1alpha1', 'EmailRelay', 'emailrelays'),
  R('mailfleet.io', 'v1alpha1', 'SenderDomain', 'senderdomains'),
  R('', 'v1', 'ConfigMap', 'configmaps'),
  R('', 'v1', 'Secret', 'secrets'),
  R('', 'v1', 'Service', 'services'),
  R('', 'v1', 'Event', 'events'),
  // The pods and volumes of a StatefulSet that scales down: drain annotation, /status, emptied volumes.
  R('', 'v1', 'Pod', 'pods'),
  R('', 'v1', 'PersistentVolumeClaim', 'persistentvolumeclaims'),
  R('apps', 'v1', 'StatefulSet', 'statefulsets'),
  R('apps', 'v1', 'Deployment', 'deployments'),
  R('policy', 'v1', 'PodDisruptionBudget', 'poddisruptionbudgets'),
  R('autoscaling', 'v2', 'HorizontalPodAutoscaler', 'horizontalpodautoscalers'),
  R('networking.k8s.io', 'v1', 'NetworkPolicy', 'networkpolicies'),
  R('monitoring.coreos.com', 'v1', 'ServiceMonitor', 'servicemonitors'),
  R('cert-manager.io', 'v1', 'Certificate', 'certificates'),
  R('externaldns.k8s.io', 'v1alpha1', 'DNSEndpoint', 'dnsendpoints'),
  R('coordination.k8s.io', 'v1', 'Lease', 'leases'),
  R('', 'v1', 'Namespace', 'namespaces', false),
  R('apiextensions.k8s.io', 'v1', 'CustomResourceDefinition', 'customresourcedefinitions', false),
];

export function resourceFor(apiVersion: string, kind: string): Resource {
  const [group, version] = apiVersion.includes('/') ? apiVersion.split('/') as [string, string] : ['', apiVersion];
  const r = RESOURCES.find((x) => x.kind === kind && x.group === group);
  if (!r) throw new Error(`unknown resource ${apiVersion} ${kind}`);
  return { ...r, version };
}

export function collectionPath(r: Resource, namespace?: string): string {
  const base = r.group ? `/apis/${r.group}/${r.version}` : `/api/${r.version}`;
  return r.namespaced && namespace ? `${base}/namespaces/${namespace}/${r.plural}` : `${base}/${r.plural}`;
}

export function objectPath(r: Resource, name: string, namespace?: string): string {
  return `${collectionPath(r, namespace)}/${encodeURIComponent(name)}`;
}
