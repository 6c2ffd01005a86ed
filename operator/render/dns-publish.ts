// Publishing a SenderDomain's records through external-dns: the DNSEndpoint object
// (externaldns.k8s.io/v1alpha1) that holds them, and whether the domain may have one. Pure.
//
// Publishing is a way to make DNS say something about a domain, and DNS is how a tenant
// proves it controls one (tenancy/verification.ts). So records are written only for a
// domain this SenderDomain holds and that is served (or about to be: its first key waits
// for its record), only after its proof of control where the relay requires one, never the
// `_mailfleet` challenge itself (it is not in status.dnsRecords), and only when the platform
// turned publishing on (--dns-publish). docs/tenancy.md "Records the operator publishes".
import { createHash } from 'node:crypto';
import type { DnsRecord } from '../api/senderdomain.ts';
import { condition, type ConditionInput } from './conditions.ts';
import { quotedStrings } from './dns-records.ts';
import { DOMAIN_LABEL, FIELD_MANAGER, MANAGED_BY, ownerRef, type KubeObject, type SenderDomain } from './objects.ts';

export const DNS_ENDPOINT_API_VERSION = 'externaldns.k8s.io/v1alpha1';
export const DNS_ENDPOINT_KIND = 'DNSEndpoint';
export const DNS_PUBLISHED = 'DNSPublished';

/** One record set as external-dns's DNSEndpoint spells it. */
export interface Endpoint {
  dnsName: string;
  recordType: 'TXT';
  recordTTL: number;
  targets: string[];
}

/** Where the operator stands on publishing, decided by the platform and the cluster. */
export interface PublishGate {
  /** --dns-publish: the platform lets SenderDomains publish records. */
  allowed: boolean;
  /** The cluster serves externaldns.k8s.io/v1alpha1 DNSEndpoint. */
  installed: boolean;
}

/** Kubernetes object names are DNS subdomains: at most 253 characters. */
const NAME_MAX = 253;

/** `<senderdomain>-mailfleet`, cut and made unique by a hash when the SenderDomain's name is too long for the suffix. */
export function dnsEndpointName(sdName: string): string {
  const name = `${sdName}-mailfleet`;
  if (name.length <= NAME_MAX) return name;
  const hash = createHash('sha256').update(sdName).digest('hex').slice(0, 10);
  return `${sdName.slice(0, NAME_MAX - '-mailfleet'.length - hash.length - 1).replace(/[.-]+$/, '')}-${hash}-mailfleet`;
}

/**
 * A TXT value as one external-dns target: its ≤255-byte character-strings, each quoted, in
 * RFC 1035 master-file form (external-dns docs/sources/txt-record.md). Every target is one
 * TXT record to external-dns, so a 2048-bit DKIM key must stay one target made of several
 * strings: as several targets it would become several records, and a verifier would find
 * none that is the key.
 */
export function txtTarget(values: string[]): string {
  return quotedStrings(values);
}

/**
 * The records to publish, from status.dnsRecords: every DKIM selector listed there (new,
 * signing and retiring keys alike), SPF once the route is known (an incomplete SPF record
 * is not written), and the DMARC record the status offers.
 */
export function dnsEndpoints(records: DnsRecord[], ttl: number): Endpoint[] {
  const out = new Map<string, Endpoint>();
  for (const r of records) {
    if (r.type !== 'TXT' || r.incomplete !== undefined || r.values.length === 0 || r.value === '') continue;
    if (r.purpose !== 'dkim' && r.purpose !== 'spf' && r.purpose !== 'dmarc') continue;
    const dnsName = r.name.replace(/\.$/, '');
    const target = txtTarget(r.values);
    const e = out.get(dnsName);
    if (e) { if (!e.targets.includes(target)) e.targets.push(target); } else out.set(dnsName, { dnsName, recordType: 'TXT', recordTTL: ttl, targets: [target] });
  }
  return [...out.values()];
}

export function dnsEndpointObject(sd: SenderDomain, endpoints: Endpoint[]): KubeObject {
  return {
    apiVersion: DNS_ENDPOINT_API_VERSION, kind: DNS_ENDPOINT_KIND,
    metadata: {
      name: dnsEndpointName(sd.metadata.name), namespace: sd.metadata.namespace ?? 'default',
      labels: { [MANAGED_BY]: FIELD_MANAGER, [DOMAIN_LABEL]: sd.metadata.name },
      ownerReferences: [ownerRef(sd)],
    },
    spec: { endpoints },
  };
}

export interface PublishPlan {
  /** The object to keep applied; undefined: there must be none. */
  object?: KubeObject;
  /** DNSPublished, when the SenderDomain asks for publishing. */
  condition?: ConditionInput;
}

/**
 * What to publish for `sd`. `notServed`: why the domain is neither served nor about to be
 * (not attached, refused, its spec unusable, control not proven); undefined when it is.
 * `relayForbids`: its relay says spec.senderDomains.dnsPublish: Forbidden.
 */
export function publishPlan(sd: SenderDomain, gate: PublishGate, records: DnsRecord[], notServed: string | undefined, relayForbids = false): PublishPlan {
  if (sd.spec.dns.publish !== 'externalDNS') return {};
  const no = (reason: string, message: string): PublishPlan => ({ condition: condition(DNS_PUBLISHED, false, reason, message) });
  if (!gate.allowed) return no('PublishingNotAllowed', 'this cluster\'s MailFleet operator does not publish DNS records (it runs without --dns-publish=true); publish status.dnsRecords yourself');
  if (relayForbids) return no('RelayForbidsPublishing', `EmailRelay ${sd.spec.relayRef.name} does not let its SenderDomains publish DNS records (spec.senderDomains.dnsPublish: Forbidden); publish status.dnsRecords yourself`);
  if (!gate.installed) return no('ExternalDNSNotInstalled', 'the cluster does not serve externaldns.k8s.io/v1alpha1 DNSEndpoint (install external-dns with its CRD and --source=crd); publish status.dnsRecords yourself meanwhile');
  if (notServed !== undefined) return no('DomainNotServed', `nothing is published for a domain that is not served: ${notServed}`);
  const endpoints = dnsEndpoints(records, sd.spec.dns.ttl);
  const object = dnsEndpointObject(sd, endpoints);
  return {
    object,
    condition: condition(DNS_PUBLISHED, true, 'EndpointWritten',
      `${endpoints.length} record(s) in DNSEndpoint ${object.metadata.name} for external-dns: ${endpoints.map((e) => e.dnsName).join(', ')}`),
  };
}
