// Every user Secret a spec can name, with the field that names it: the one list the
// controllers check consent for (tenancy/secret-consent.ts), read through, and map Secret
// events back to (a label added to a Secret re-renders every object that names it). A new
// Secret reference in the CRDs belongs here, or it would be read without consent.
//
// Pure, and tolerant of specs the API server holds but the operator's schema refuses (a
// Secret event is mapped back before anything is parsed).

/** One reference: the spec field (for messages) and the Secret's name, in the referrer's namespace. */
export interface SecretRef {
  field: string;
  name: string;
  /** The Secret is mounted into relay pods by the kubelet rather than read by the operator. */
  mounted?: boolean;
}

type Loose = Record<string, any> | undefined;

const named = (field: string, ref: Loose): SecretRef[] => typeof ref?.name === 'string' && ref.name ? [{ field, name: ref.name }] : [];

function smarthostRefs(prefix: string, h: Loose): SecretRef[] {
  return [...named(`${prefix}.credentialsSecretRef`, h?.credentialsSecretRef), ...named(`${prefix}.oauth2.secretRef`, h?.oauth2?.secretRef)];
}

/** An EmailRelay's own references (tls, smarthosts, Redis, webhooks). */
export function relaySecretRefs(spec: Loose): SecretRef[] {
  const tls = spec?.tls?.secretName;
  const smarthosts: Loose[] = Array.isArray(spec?.delivery?.smarthosts) ? spec.delivery.smarthosts : [];
  const webhooks: Loose[] = Array.isArray(spec?.webhooks) ? spec.webhooks : [];
  return [
    ...(typeof tls === 'string' && tls ? [{ field: 'tls.secretName', name: tls, mounted: true }] : []),
    ...smarthosts.flatMap((h, i) => smarthostRefs(`delivery.smarthosts[${i}]`, h)),
    ...named('redis.passwordSecretRef', spec?.redis?.passwordSecretRef),
    ...webhooks.flatMap((w, i) => named(`webhooks[${i}].secretRef`, w?.secretRef)),
  ];
}

/** A SenderDomain's references whose data the relay renders (its own smarthost's login). */
export function domainRelaySecretRefs(spec: Loose): SecretRef[] {
  return smarthostRefs('smarthost', spec?.smarthost);
}

/**
 * All of a SenderDomain's references: its DKIM key and its smarthost's login. Not
 * credentials.secretName: that is the Secret the operator writes, refused when it is not
 * the operator's (controllers/senderdomain.ts).
 */
export function domainSecretRefs(spec: Loose): SecretRef[] {
  return [...named('dkim.secretRef', spec?.dkim?.secretRef), ...domainRelaySecretRefs(spec)];
}

/** Does this spec name the Secret? (for mapping a Secret's event to the objects to reconcile) */
export const namesSecret = (refs: SecretRef[], name: string) => refs.some((r) => r.name === name);
