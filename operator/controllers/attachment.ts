// A SenderDomain's place in the cluster, as both controllers see it: the relay it names
// (possibly in another namespace), whether that relay admits it, and who owns each domain
// cluster-wide. Read from the cache only.
import { resolveClaims, type Claims } from '../render/claims.ts';
import type { EmailRelay, SenderDomain } from '../render/objects.ts';
import type { Cache } from '../runtime/cache.ts';
import { admits, type Admission, type NamespaceLabels } from '../tenancy/admission.ts';
import { parseRelay, validDomains } from './specs.ts';

export interface Attachment {
  /** The relay's namespace (relayRef.namespace, else the SenderDomain's). */
  relayNamespace: string;
  /** The relay, parsed; undefined when it does not exist (or its spec does not parse). */
  relay: EmailRelay | undefined;
  /** Whether the relay admits the SenderDomain's namespace; a missing relay admits nothing. */
  admission: Admission;
}

/** Namespace labels from the cache, or 'unreadable' when Namespaces are not watched. */
export function namespaceLabels(cache: Cache): NamespaceLabels {
  return (ns) => {
    if (!cache.namespaceObjects) return 'unreadable';
    return cache.namespaceObjects.get(undefined, ns)?.metadata.labels ?? undefined;
  };
}

export function attachment(cache: Cache, sd: SenderDomain): Attachment {
  const ns = sd.metadata.namespace ?? '';
  const relayNamespace = sd.spec.relayRef.namespace ?? ns;
  const raw = cache.relays.get(relayNamespace, sd.spec.relayRef.name);
  const parsed = raw ? parseRelay(raw) : undefined;
  const relay = parsed && 'relay' in parsed ? parsed.relay : undefined;
  const admission: Admission = relay ? admits(relay, ns, namespaceLabels(cache))
    : { allowed: false, message: `EmailRelay ${relayNamespace}/${sd.spec.relayRef.name} not found` };
  return { relayNamespace, relay, admission };
}

/** Cluster-wide claims: every SenderDomain whose relay exists and admits it claims its domain. */
export function clusterClaims(cache: Cache): Claims<SenderDomain> {
  return resolveClaims(validDomains(cache.domains.list()), (sd) => attachment(cache, sd).admission.allowed);
}
