// Small builders for EmailRelay / SenderDomain objects as the API server would return them
// (defaults applied by parsing through the same zod schemas the CRDs come from).
import { generateKeyPairSync } from 'node:crypto';
import { API_VERSION } from '../../operator/api/common.ts';
import { emailRelaySpec, type EmailRelaySpecInput } from '../../operator/api/emailrelay.ts';
import { senderDomainSpec, type SenderDomainSpecInput } from '../../operator/api/senderdomain.ts';
import type { EmailRelay, SenderDomain } from '../../operator/render/objects.ts';
import type { DomainInternal } from '../../operator/render/domain-internal.ts';

/** The public hostname an MX-mode relay must have (the CRD refuses one without); smarthost relays keep theirs unset unless given. */
export const MX_HOSTNAME = 'mail.example.net';

export function relayObject(name: string, spec: EmailRelaySpecInput = {}, ns = 'mail'): EmailRelay {
  const mx = spec.delivery?.mode !== 'smarthost';
  return {
    apiVersion: API_VERSION, kind: 'EmailRelay',
    metadata: { name, namespace: ns, uid: `uid-${name}`, generation: 1, creationTimestamp: '2025-01-01T00:00:00Z' },
    spec: emailRelaySpec.parse(mx && spec.hostname === undefined ? { ...spec, hostname: MX_HOSTNAME } : spec),
  };
}

export function domainObject(name: string, spec: SenderDomainSpecInput, ns = 'mail', created = '2025-01-01T00:00:00Z'): SenderDomain {
  return {
    apiVersion: API_VERSION, kind: 'SenderDomain',
    metadata: { name, namespace: ns, uid: `uid-${name}`, generation: 1, creationTimestamp: created },
    spec: senderDomainSpec.parse(spec),
  };
}

export function ed25519Pem(): string {
  return generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
}

/** The clock of the render tests. */
export const RENDER_NOW = new Date('2025-03-01T12:00:00Z');

/** A SenderDomain's operator-held state: one Ed25519 key signing since `at`, and a login hash. */
export function domainInternal(selector: string, hash = 'scrypt$16384$8$1$c2FsdA==$aGFzaA==', at = RENDER_NOW): DomainInternal {
  return {
    dkim: { keys: [{ selector, algorithm: 'ed25519-sha256', generation: 1, publishedAt: at.toISOString(), activeAt: at.toISOString() }] },
    pems: { [selector]: ed25519Pem() },
    passwordHash: hash,
  };
}
