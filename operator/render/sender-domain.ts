// SenderDomain → its owned Secrets and its status. Pure: key generation and password hashing
// happen in the controller (controllers/domain-secrets.ts) and come in as data.
import type { SenderDomainStatus } from '../api/senderdomain.ts';
import { internalData } from './domain-internal.ts';
import {
  DOMAIN_LABEL, FIELD_MANAGER, MANAGED_BY, RELAY_LABEL, domainNames, encodeSecretData, ownerRef, type KubeObject, type SenderDomain,
} from './objects.ts';
import { senderDomainStatus, type DomainInput } from './sender-domain-status.ts';
import { DNS_ENDPOINT_API_VERSION, DNS_ENDPOINT_KIND, dnsEndpointName } from './dns-publish.ts';

export type { DomainInput };

export interface DomainOutput {
  objects: KubeObject[];
  /** Owned objects that must not exist (the DNSEndpoint of a domain that publishes nothing now). */
  absent: { apiVersion: string; kind: string; name: string }[];
  status: SenderDomainStatus;
  ready: boolean;
}

function secretMeta(sd: SenderDomain, name: string) {
  return {
    name,
    namespace: sd.metadata.namespace ?? 'default',
    labels: { [MANAGED_BY]: FIELD_MANAGER, [DOMAIN_LABEL]: sd.metadata.name, [RELAY_LABEL]: sd.spec.relayRef.name },
    ownerReferences: [ownerRef(sd)],
  };
}

/** <name>-mailfleet: DKIM keys, key state and the password hash (read by the relay controller). */
function internalSecret(input: DomainInput): KubeObject {
  const { sd } = input;
  return {
    apiVersion: 'v1', kind: 'Secret', metadata: secretMeta(sd, domainNames(sd.metadata.name).internal),
    type: 'Opaque', data: encodeSecretData(internalData(input.internal)),
  };
}

/** <name>-smtp (or credentials.secretName): what an app mounts to send through the relay. */
function appSecret(input: DomainInput, password: string): KubeObject {
  const { sd } = input;
  const spec = sd.spec;
  return {
    apiVersion: 'v1', kind: 'Secret', metadata: secretMeta(sd, domainNames(sd.metadata.name, spec.credentials.secretName).credentials),
    type: 'Opaque',
    data: encodeSecretData({ host: input.host, port: String(input.port), username: spec.credentials.username ?? spec.domain, password }),
  };
}

export function renderSenderDomain(input: DomainInput): DomainOutput {
  const { status, ready, publish } = senderDomainStatus(input);
  // Without the DNSEndpoint kind there is nothing to create or delete.
  const absent = input.publish?.installed && !publish.object
    ? [{ apiVersion: DNS_ENDPOINT_API_VERSION, kind: DNS_ENDPOINT_KIND, name: dnsEndpointName(input.sd.metadata.name) }] : [];
  if (input.refused) return { objects: [], absent, status, ready };
  const objects = [internalSecret(input)];
  if (input.sd.spec.credentials.enabled && input.password) objects.push(appSecret(input, input.password));
  if (publish.object) objects.push(publish.object);
  return { objects, absent, status, ready };
}
