// Reads the user Secrets a spec names, each only with its owner's consent
// (tenancy/secret-consent.ts) and only in the referrer's namespace. A consenting Secret comes
// from the cache's watch of consenting Secrets; one that is not there is looked at through
// its metadata alone, so a refused Secret's data never reaches the operator.
import type { KubeObject } from '../render/objects.ts';
import { decodeSecretData } from '../render/objects.ts';
import type { Cache } from '../runtime/cache.ts';
import type { Kube } from '../runtime/kube.ts';
import { secretUse, type SecretMeta } from '../tenancy/secret-consent.ts';
import type { SecretRef } from '../tenancy/secret-refs.ts';

export type SecretRead =
  | { ref: SecretRef; allowed: true; data: Record<string, string> }
  | { ref: SecretRef; allowed: false; reason: string; message: string };

export interface SecretsRead {
  /** Decoded data of the Secrets that may be used, by name. */
  data: Map<string, Record<string, string>>;
  /** One per refused or missing reference, in spec order. */
  refused: { ref: SecretRef; reason: string; message: string }[];
}

export class UserSecrets {
  private readonly cache: Cache;
  private readonly kube: Kube;

  constructor(o: { cache: Cache; kube: Kube }) {
    this.cache = o.cache;
    this.kube = o.kube;
  }

  async read(namespace: string, ref: SecretRef): Promise<SecretRead> {
    let secret: (SecretMeta & { data?: Record<string, string> }) | undefined = this.cache.consentedSecret(namespace, ref.name);
    if (!secret) {
      const meta = await this.kube.metadataOrUndefined('v1', 'Secret', ref.name, namespace);
      // The label on the metadata but not yet in the cache: the watch lags a fresh label.
      // (A type-consented Secret in that gap reads as refused until its event, a moment later, re-renders.)
      const consents = secretUse(ref, namespace, meta as SecretMeta | undefined, ref.field).allowed;
      secret = consents ? await this.kube.getOrUndefined<KubeObject>('v1', 'Secret', ref.name, namespace) : meta;
    }
    const use = secretUse(ref, namespace, secret, ref.field);
    if (!use.allowed) return { ref, allowed: false, reason: use.reason, message: use.message };
    return { ref, allowed: true, data: decodeSecretData(secret as { data?: Record<string, string> }) };
  }

  /** Every reference, read once per Secret name. */
  async readAll(namespace: string, refs: SecretRef[]): Promise<SecretsRead> {
    const out: SecretsRead = { data: new Map(), refused: [] };
    const seen = new Map<string, SecretRead>();
    for (const ref of refs) {
      const r = seen.get(ref.name) ?? await this.read(namespace, ref);
      seen.set(ref.name, r);
      if (r.allowed) out.data.set(ref.name, r.data);
      else out.refused.push({ ref, reason: r.reason, message: r.ref === ref ? r.message : r.message.replace(r.ref.field, ref.field) });
    }
    return out;
  }
}

/** The refusals as one condition: SecretNotAllowed when any is a refusal, else SecretNotFound. */
export function refusalCondition(refused: SecretsRead['refused']): { reason: string; message: string } | undefined {
  if (!refused.length) return undefined;
  const reason = refused.some((r) => r.reason !== 'SecretNotFound') ? 'SecretNotAllowed' : 'SecretNotFound';
  return { reason, message: refused.map((r) => r.message).join('; ') };
}
