// Which SenderDomains may attach to an EmailRelay: the relay names the namespaces it admits
// (spec.senderDomains.namespaces, the Gateway API allowedRoutes pattern), and a SenderDomain
// from anywhere else is refused as a whole (RelayNotAllowed, nothing rendered). Pure: the
// caller hands in the Namespace labels it watches, or says it cannot read them (a
// namespace-scoped install holds no cluster-wide read on Namespaces).
import type { EmailRelay } from '../render/objects.ts';
import type { ConditionInput } from '../render/conditions.ts';

export const RELAY_NOT_ALLOWED = 'RelayNotAllowed';

type Selector = NonNullable<EmailRelay['spec']['senderDomains']['namespaces']['selector']>;

/** A Namespace's labels; undefined when it is not known; 'unreadable' when Namespaces cannot be read at all. */
export type NamespaceLabels = (namespace: string) => Record<string, string> | undefined | 'unreadable';

export type Admission = { allowed: true } | { allowed: false; message: string };

/** metav1.LabelSelector semantics: every matchLabels pair and every expression holds. */
export function selectorMatches(sel: Selector, labels: Record<string, string>): boolean {
  for (const [k, v] of Object.entries(sel.matchLabels ?? {})) if (labels[k] !== v) return false;
  for (const e of sel.matchExpressions ?? []) {
    const has = Object.hasOwn(labels, e.key);
    const v = labels[e.key];
    const inValues = has && (e.values ?? []).includes(v as string);
    const ok = e.operator === 'In' ? inValues : e.operator === 'NotIn' ? !inValues : e.operator === 'Exists' ? has : !has;
    if (!ok) return false;
  }
  return true;
}

/**
 * May a SenderDomain in `namespace` attach to `relay` (parsed, defaults applied)? The
 * refusal says what the platform would have to change, never anything about other tenants.
 */
export function admits(relay: EmailRelay, namespace: string, labels: NamespaceLabels): Admission {
  const relayNs = relay.metadata.namespace ?? '';
  const { from, selector } = relay.spec.senderDomains.namespaces;
  const id = `EmailRelay ${relayNs}/${relay.metadata.name}`;
  if (namespace === relayNs || from === 'All') return { allowed: true };
  if (from === 'Same') {
    return { allowed: false, message: `${id} admits SenderDomains only from its own namespace (spec.senderDomains.namespaces.from: Same); ask its owners to admit namespace ${namespace}` };
  }
  const l = labels(namespace);
  if (l === 'unreadable') {
    return {
      allowed: false,
      message: `${id} admits namespaces by label selector, but this operator cannot read Namespace labels (namespace-scoped install); the relay's owners must use from: All or Same`,
    };
  }
  if (selector && l && selectorMatches(selector, l)) return { allowed: true };
  return { allowed: false, message: `${id} does not admit namespace ${namespace}: its labels do not match spec.senderDomains.namespaces.selector` };
}

/**
 * For a relay admitting by namespace selector: whether this operator can apply the selector
 * at all (condition NamespaceSelectorUsable), so the platform team sees on its own object,
 * not only on its tenants', that a namespace-scoped install cannot read Namespace labels.
 */
export function selectorCondition(relay: EmailRelay, namespacesReadable: boolean): ConditionInput | undefined {
  if (relay.spec.senderDomains.namespaces.from !== 'Selector') return undefined;
  return namespacesReadable
    ? { type: 'NamespaceSelectorUsable', status: 'True', reason: 'NamespacesWatched', message: 'Namespace labels are watched; matching namespaces may attach SenderDomains' }
    : {
      type: 'NamespaceSelectorUsable', status: 'False', reason: 'NamespacesUnreadable',
      message: 'this operator runs namespace-scoped and cannot read Namespace labels: only SenderDomains in this namespace attach; use spec.senderDomains.namespaces.from: All or Same',
    };
}
