// Turns the zod schemas into CustomResourceDefinitions. z.toJSONSchema gives JSON Schema;
// Kubernetes wants a *structural* OpenAPI v3 subset, so the output is post-processed:
//  - `additionalProperties: false` is dropped (v1 forbids it beside `properties`; unknown
//    fields are pruned by the API server anyway),
//  - our int-or-string marker becomes x-kubernetes-int-or-string,
//  - JSON-Schema-only keywords ($schema, id, title) and zod's implicit safe-integer bounds go.
import { z } from 'zod';
import { GROUP, VERSION } from './common.ts';
import { emailRelaySpec, emailRelayStatus } from './emailrelay.ts';
import { senderDomainSpec, senderDomainStatus } from './senderdomain.ts';

type Json = Record<string, unknown>;

function structural(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(structural);
  if (!node || typeof node !== 'object') return node;
  const src = node as Json;
  if (src['x-mf-int-or-string']) {
    const out: Json = { 'x-kubernetes-int-or-string': true };
    if (src.description) out.description = src.description;
    if (src.default !== undefined) out.default = src.default;
    return out;
  }
  const out: Json = {};
  for (const [k, v] of Object.entries(src)) {
    if (k === '$schema' || k === 'id' || k === 'title' || k === 'x-mf-int-or-string') continue;
    if (k === 'additionalProperties' && v === false) continue;
    if ((k === 'minimum' || k === 'maximum') && Math.abs(v as number) >= Number.MAX_SAFE_INTEGER) continue;
    if ((k === 'exclusiveMinimum' || k === 'exclusiveMaximum') && typeof v === 'number' && Math.abs(v) >= Number.MAX_SAFE_INTEGER) continue;
    out[k] = structural(v);
  }
  return out;
}

export function openApiSchema(schema: z.ZodType): Json {
  return structural(z.toJSONSchema(schema, { io: 'input', target: 'openapi-3.0', unrepresentable: 'throw' })) as Json;
}

interface CrdInput {
  kind: string;
  plural: string;
  singular: string;
  shortNames: string[];
  description: string;
  spec: z.ZodType;
  status: z.ZodType;
  columns: Json[];
  scale?: boolean;
}

function crd(i: CrdInput): Json {
  const version: Json = {
    name: VERSION,
    served: true,
    storage: true,
    schema: {
      openAPIV3Schema: {
        type: 'object',
        description: i.description,
        required: ['spec'],
        properties: {
          apiVersion: { type: 'string', description: 'APIVersion of this object' },
          kind: { type: 'string', description: 'Kind of this object' },
          metadata: { type: 'object' },
          spec: { ...openApiSchema(i.spec), description: `Desired state of the ${i.kind}` },
          status: { ...openApiSchema(i.status), description: `Observed state of the ${i.kind}, written by the operator` },
        },
      },
    },
    subresources: {
      status: {},
      ...(i.scale ? { scale: { specReplicasPath: '.spec.replicas', statusReplicasPath: '.status.replicas', labelSelectorPath: '.status.selector' } } : {}),
    },
    additionalPrinterColumns: [
      ...i.columns,
      { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
    ],
  };
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${i.plural}.${GROUP}`, labels: { 'app.kubernetes.io/part-of': 'mailfleet' } },
    spec: {
      group: GROUP,
      scope: 'Namespaced',
      names: { kind: i.kind, listKind: `${i.kind}List`, plural: i.plural, singular: i.singular, shortNames: i.shortNames, categories: ['mailfleet'] },
      versions: [version],
    },
  };
}

const ready = { name: 'Ready', type: 'string', jsonPath: ".status.conditions[?(@.type=='Ready')].status" };

export function emailRelayCrd(): Json {
  return crd({
    kind: 'EmailRelay',
    plural: 'emailrelays',
    singular: 'emailrelay',
    shortNames: ['er', 'relay'],
    description: 'A fleet of outbound SMTP relay pods: listeners, TLS, delivery route, queue, limits. SenderDomains attach to it.',
    spec: emailRelaySpec,
    status: emailRelayStatus,
    scale: true,
    columns: [
      ready,
      { name: 'Replicas', type: 'integer', jsonPath: '.status.readyReplicas', description: 'Ready pods' },
      { name: 'Domains', type: 'integer', jsonPath: '.status.domains', description: 'Attached SenderDomains' },
      { name: 'Endpoint', type: 'string', jsonPath: '.status.endpoint.host', priority: 1 },
    ],
  });
}

export function senderDomainCrd(): Json {
  return crd({
    kind: 'SenderDomain',
    plural: 'senderdomains',
    singular: 'senderdomain',
    shortNames: ['sd'],
    description: 'A sender domain served by an EmailRelay: DKIM keys (generated and rotated), an SMTP login for apps, and the DNS records to publish.',
    spec: senderDomainSpec,
    status: senderDomainStatus,
    columns: [
      { name: 'Domain', type: 'string', jsonPath: '.spec.domain' },
      { name: 'Relay', type: 'string', jsonPath: '.spec.relayRef.name' },
      ready,
      { name: 'DKIM', type: 'string', jsonPath: '.status.dkim.activeSelectors', priority: 1 },
    ],
  });
}

export const CRDS = [
  { file: 'emailrelays.mailfleet.io.yaml', build: emailRelayCrd },
  { file: 'senderdomains.mailfleet.io.yaml', build: senderDomainCrd },
] as const;
