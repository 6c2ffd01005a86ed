// Shared shapes and naming for the objects the operator owns. Names are derived, never
// stored, so a reconcile can always find what an earlier one created.
import { API_VERSION } from '../api/common.ts';
import type { EmailRelaySpec, EmailRelayStatus } from '../api/emailrelay.ts';
import type { SenderDomainSpec, SenderDomainStatus } from '../api/senderdomain.ts';

export const FIELD_MANAGER = 'mailfleet-operator';
export const MANAGED_BY = 'app.kubernetes.io/managed-by';
export const RELAY_LABEL = 'mailfleet.io/relay';
export const DOMAIN_LABEL = 'mailfleet.io/senderdomain';
/** On the relay's two Services: main (ClusterIP, with metrics) or headless (StatefulSet DNS). */
export const SERVICE_ROLE_LABEL = 'mailfleet.io/service';
export const ROTATE_ANNOTATION = 'mailfleet.io/rotate-dkim';
/** Hash of the intent last applied: a removed field (which SSA then drops) changes it. */
export const INTENT_ANNOTATION = 'mailfleet.io/intent';

export interface ObjectMeta {
  name: string;
  namespace?: string;
  uid?: string;
  generation?: number;
  resourceVersion?: string;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  ownerReferences?: OwnerReference[];
  finalizers?: string[];
  [k: string]: unknown;
}

export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller?: boolean;
  blockOwnerDeletion?: boolean;
}

export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: ObjectMeta;
  [k: string]: unknown;
}

export interface CustomObject<Spec = unknown, Status = unknown> extends KubeObject {
  spec: Spec;
  status?: Status;
}

export type EmailRelay = CustomObject<EmailRelaySpec, EmailRelayStatus>;
export type SenderDomain = CustomObject<SenderDomainSpec, SenderDomainStatus>;

export function ownerRef(owner: KubeObject): OwnerReference {
  if (!owner.metadata.uid) throw new Error(`${owner.kind} ${owner.metadata.name} has no uid`);
  return { apiVersion: owner.apiVersion ?? API_VERSION, kind: owner.kind, name: owner.metadata.name, uid: owner.metadata.uid, controller: true, blockOwnerDeletion: true };
}

export const relayNames = (relay: string) => ({
  workload: relay,
  service: relay,
  headless: `${relay}-headless`,
  config: `${relay}-config`,
  secrets: `${relay}-secrets`,
  pdb: relay,
  hpa: relay,
  networkPolicy: relay,
  serviceMonitor: relay,
  certificate: `${relay}-tls`,
  certificateSecret: `${relay}-tls`,
});

export const domainNames = (sd: string, credentialsSecret?: string) => ({
  internal: `${sd}-mailfleet`,
  credentials: credentialsSecret ?? `${sd}-smtp`,
});

export function relaySelector(relay: string): Record<string, string> {
  return { 'app.kubernetes.io/name': 'mailfleet-relay', 'app.kubernetes.io/instance': relay };
}

export function selectorString(sel: Record<string, string>): string {
  return Object.keys(sel).sort().map((k) => `${k}=${sel[k]}`).join(',');
}

export function relayLabels(relay: string): Record<string, string> {
  return { ...relaySelector(relay), 'app.kubernetes.io/component': 'relay', [MANAGED_BY]: FIELD_MANAGER, [RELAY_LABEL]: relay };
}

/** Service DNS name apps connect to. */
export const relayHost = (relay: string, namespace: string) => `${relay}.${namespace}.svc.cluster.local`;

export const b64 = (s: string | Buffer) => Buffer.from(s).toString('base64');
export const unb64 = (s: string) => Buffer.from(s, 'base64').toString('utf8');
export function decodeSecretData(secret: { data?: Record<string, string> } | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(secret?.data ?? {})) out[k] = unb64(v);
  return out;
}
export function encodeSecretData(data: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of Object.keys(data).sort()) out[k] = b64(data[k] ?? '');
  return out;
}
