// Secrets by consent. The operator can read Secrets a tenant cannot (it copies smarthost
// passwords, webhook secrets, DKIM keys into relay pods), so a spec that names a Secret
// is not enough: that would let anyone who may create a SenderDomain or EmailRelay read
// any Secret of the namespace through the relay (issue 11: a smarthost pointed at the
// tenant's own host received the namespace's database password). The Secret itself must
// say it may be used — a label, or a Secret type of our own — and only someone who may
// write Secrets in that namespace can set either. References never cross namespaces.
//
// Pure: the caller fetches the Secret (it watches the ones referenced, so adding the
// label takes effect in seconds) and reports a refusal as the SecretNotAllowed condition.

export const SECRET_CONSENT_LABEL = 'mailfleet.io/use';
export const SECRET_CONSENT_VALUE = 'true';
/** Secrets of this type are meant for MailFleet by construction. */
export const SECRET_CONSENT_TYPE = 'mailfleet.io/credentials';
export const SECRET_NOT_ALLOWED = 'SecretNotAllowed';

export interface SecretMeta {
  metadata?: { name?: string; namespace?: string; labels?: Record<string, string> } | undefined;
  type?: string | undefined;
}

export type SecretUse =
  | { allowed: true }
  | { allowed: false; reason: typeof SECRET_NOT_ALLOWED | 'SecretNotFound'; message: string };

/** The command that gives consent, for messages. */
export function consentCommand(namespace: string, name: string): string {
  return `kubectl label secret ${name} -n ${namespace} ${SECRET_CONSENT_LABEL}=${SECRET_CONSENT_VALUE}`;
}

/**
 * May the object in `referrerNamespace` use this Secret? `field` names the spec field for
 * the message (e.g. "delivery.smarthosts[0].credentialsSecretRef"); `refNamespace` is the
 * namespace the reference asked for, if it named one.
 */
export function secretUse(
  ref: { name: string; namespace?: string | undefined },
  referrerNamespace: string,
  secret: SecretMeta | undefined,
  field: string,
): SecretUse {
  if (ref.namespace !== undefined && ref.namespace !== referrerNamespace) {
    return {
      allowed: false, reason: SECRET_NOT_ALLOWED,
      message: `${field}: Secret ${ref.name} must be in namespace ${referrerNamespace}, the namespace of the object that references it`,
    };
  }
  if (!secret) return { allowed: false, reason: 'SecretNotFound', message: `${field}: Secret ${ref.name} not found in namespace ${referrerNamespace}` };
  if (secret.metadata?.namespace !== undefined && secret.metadata.namespace !== referrerNamespace) {
    return { allowed: false, reason: SECRET_NOT_ALLOWED, message: `${field}: Secret ${ref.name} is not in namespace ${referrerNamespace}` };
  }
  if (secret.type === SECRET_CONSENT_TYPE || secret.metadata?.labels?.[SECRET_CONSENT_LABEL] === SECRET_CONSENT_VALUE) return { allowed: true };
  return {
    allowed: false, reason: SECRET_NOT_ALLOWED,
    message: `${field}: Secret ${ref.name} is not marked for use by MailFleet; add the label ${SECRET_CONSENT_LABEL}: "${SECRET_CONSENT_VALUE}" (${consentCommand(referrerNamespace, ref.name)}) or create it with type ${SECRET_CONSENT_TYPE}`,
  };
}
