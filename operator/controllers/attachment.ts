// A SenderDomain's place in the cluster, as both controllers see it: the relay it names
// (possibly in another namespace), whether that relay admits it, and who owns each domain
// cluster-wide. Read from the cache only.
import { ClaimIndex } from '../render/claim-index.ts';
import { claimKey } from '../render/claims.ts';
import type { EmailRelay, SenderDomain } from '../render/objects.ts';
import type { Cache } from '../runtime/cache.ts';
import { admits, type Admission, type NamespaceLabels } from '../tenancy/admission.ts';
import { parseDomain, parseRelay, validDomains } from './specs.ts';

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

const indexes = new WeakMap<Cache, ClaimIndex<SenderDomain>>();

/**
 * Cluster-wide claims: every SenderDomain whose spec parses and whose relay exists and
 * admits it claims its domain. One index per cache, filled from it once and then kept by
 * its watch events (a relay's or a namespace's change may change admissions: verdicts are
 * worked out again).
 */
export function claimIndex(cache: Cache): ClaimIndex<SenderDomain> {
  const known = indexes.get(cache);
  if (known) return known;
  const index = new ClaimIndex<SenderDomain>((sd) => attachment(cache, sd).admission.allowed);
  for (const sd of validDomains(cache.domains.list())) index.set(sd);
  cache.observe((kind, type, obj) => {
    if (kind === 'SenderDomain') {
      const parsed = type === 'DELETED' ? undefined : parseDomain(obj as SenderDomain);
      if (parsed && 'sd' in parsed) index.set(parsed.sd);
      else index.remove(claimKey(obj as SenderDomain));
    } else if (kind === 'EmailRelay' || kind === 'Namespace') {
      index.changed();
    }
  });
  indexes.set(cache, index);
  return index;
}
