// SenderDomain → its owned Secrets and status. Pure: key generation and password hashing
// happen at the edge (runtime/domain-controller.ts) and come in as data.
import { createPrivateKey, createPublicKey } from 'node:crypto';
import { dkimTxtRecord } from '../../relay/dkim/keys.ts';
import type { Condition } from '../api/common.ts';
import type { DnsRecord, SenderDomainSpec, SenderDomainStatus } from '../api/senderdomain.ts';
import type { Refusal } from './claims.ts';
import { condition, mergeConditions, summaryConditions, type ConditionInput, type Phase } from './conditions.ts';
import { keyPhase, signingKeys, type DkimState, type KeyAlgorithm } from './dkim.ts';
import {
  DOMAIN_LABEL, FIELD_MANAGER, MANAGED_BY, RELAY_LABEL, domainNames, encodeSecretData, ownerRef, type CustomObject, type KubeObject,
} from './objects.ts';

export type SenderDomain = CustomObject<SenderDomainSpec, SenderDomainStatus>;

/** What the operator keeps per SenderDomain in its internal Secret (<name>-mailfleet). */
export interface DomainInternal {
  dkim: DkimState;
  /** PEM private keys by selector. */
  pems: Record<string, string>;
  /** scrypt hash of the app password, computed once per password. */
  passwordHash?: string;
  /** sha256 of the password the hash belongs to (the plain password sits in the app Secret anyway). */
  passwordFingerprint?: string;
}

export function parseInternal(data: Record<string, string>): DomainInternal {
  const state = data['state.json'] ? JSON.parse(data['state.json']) as Partial<DomainInternal> & { dkim?: DkimState } : {};
  const pems: Record<string, string> = {};
  for (const [k, v] of Object.entries(data)) if (k.startsWith('dkim.') && k.endsWith('.pem')) pems[k.slice(5, -4)] = v;
  return {
    dkim: state.dkim ?? { keys: [] },
    pems,
    ...(data['password.hash'] ? { passwordHash: data['password.hash'] } : {}),
    ...(state.passwordFingerprint ? { passwordFingerprint: state.passwordFingerprint } : {}),
  };
}

function internalData(i: DomainInternal): Record<string, string> {
  const data: Record<string, string> = {
    'state.json': JSON.stringify({ dkim: i.dkim, ...(i.passwordFingerprint ? { passwordFingerprint: i.passwordFingerprint } : {}) }),
  };
  for (const k of i.dkim.keys) {
    const pem = i.pems[k.selector];
    if (pem) data[`dkim.${k.selector}.pem`] = pem;
  }
  if (i.passwordHash) data['password.hash'] = i.passwordHash;
  return data;
}

export function detectAlgorithm(pem: string): KeyAlgorithm {
  const key = createPrivateKey(pem);
  if (key.asymmetricKeyType === 'ed25519') return 'ed25519-sha256';
  if (key.asymmetricKeyType === 'rsa') return 'rsa-sha256';
  throw new Error(`unsupported DKIM key type ${key.asymmetricKeyType}`);
}

export function txtValue(pem: string, algorithm: KeyAlgorithm): string {
  return dkimTxtRecord({ algorithm, publicKey: createPublicKey(createPrivateKey(pem)) });
}

export function dnsRecords(domain: string, state: DkimState, pems: Record<string, string>): DnsRecord[] {
  const records: DnsRecord[] = [];
  for (const k of state.keys) {
    const pem = pems[k.selector];
    if (!pem) continue;
    records.push({ type: 'TXT', name: `${k.selector}._domainkey.${domain}`, value: txtValue(pem, k.algorithm), purpose: 'dkim', required: true });
  }
  records.push({ type: 'TXT', name: domain, value: 'v=spf1 a mx ~all', purpose: 'spf', required: false });
  records.push({ type: 'TXT', name: `_dmarc.${domain}`, value: `v=DMARC1; p=none; rua=mailto:dmarc-reports@${domain}`, purpose: 'dmarc', required: false });
  return records;
}

export interface DomainInput {
  sd: SenderDomain;
  /** The relay exists. */
  relay: KubeObject | undefined;
  /** Why the relay refuses this SenderDomain (another one holds its domain or login). */
  refused?: Refusal;
  internal: DomainInternal;
  /** App password (kept from the existing Secret, or freshly generated at the edge). */
  password?: string;
  /** Relay endpoint for the app Secret. */
  host: string;
  port: number;
  /** Problem reading a user-provided DKIM key, if any. */
  externalKeyError?: string;
  /** DNS check result when verification is on: undefined means not checked. */
  dns?: { ok: boolean; message: string };
  now: Date;
}

export interface DomainOutput {
  objects: KubeObject[];
  status: SenderDomainStatus;
  ready: boolean;
}

export function reconcileDomain(input: DomainInput): DomainOutput {
  const { sd, internal, now } = input;
  const spec = sd.spec;
  const ns = sd.metadata.namespace ?? 'default';
  const names = domainNames(sd.metadata.name, spec.credentials.secretName);
  const labels = { [MANAGED_BY]: FIELD_MANAGER, [DOMAIN_LABEL]: sd.metadata.name, [RELAY_LABEL]: spec.relayRef.name };
  const owner = [ownerRef(sd)];
  const objects: KubeObject[] = [];
  const conds: ConditionInput[] = [];

  if (input.refused) {
    // Permanent until someone edits or deletes a SenderDomain: Degraded (and kstatus Stalled).
    conds.push(...summaryConditions('Degraded', input.refused.reason, input.refused.message));
    return {
      objects,
      status: { observedGeneration: sd.metadata.generation ?? 0, conditions: mergeConditions(sd.status?.conditions, conds, sd.metadata.generation ?? 0, now) },
      ready: false,
    };
  }

  objects.push({
    apiVersion: 'v1', kind: 'Secret',
    metadata: { name: names.internal, namespace: ns, labels, ownerReferences: owner },
    type: 'Opaque',
    data: encodeSecretData(internalData(internal)),
  });
  if (spec.credentials.enabled && input.password) {
    objects.push({
      apiVersion: 'v1', kind: 'Secret',
      metadata: { name: names.credentials, namespace: ns, labels, ownerReferences: owner },
      type: 'Opaque',
      data: encodeSecretData({ host: input.host, port: String(input.port), username: spec.credentials.username ?? spec.domain, password: input.password }),
    });
  }

  const nowMs = now.getTime();
  const haveKeys = internal.dkim.keys.length > 0 && internal.dkim.keys.every((k) => internal.pems[k.selector]);
  const keyReady = haveKeys && signingKeys(internal.dkim, nowMs).length > 0;
  conds.push(condition('DKIMKeyReady', keyReady, keyReady ? 'KeyReady' : input.externalKeyError ? 'KeyUnreadable' : 'KeyPending',
    keyReady ? `signing with ${signingKeys(internal.dkim, nowMs).map((k) => k.selector).join(', ')}` : input.externalKeyError ?? 'DKIM key not generated yet'));
  conds.push(condition('RelayFound', !!input.relay, input.relay ? 'RelayFound' : 'RelayNotFound',
    input.relay ? `attached to EmailRelay ${spec.relayRef.name}` : `EmailRelay ${spec.relayRef.name} not found in namespace ${ns}`));
  const credsOk = !spec.credentials.enabled || !!input.password;
  if (spec.dnsVerification.enabled) {
    const d = input.dns;
    conds.push(condition('DNSVerified', !!d?.ok, d ? (d.ok ? 'RecordsFound' : 'RecordsMissing') : 'NotChecked', d?.message ?? 'not checked yet'));
  }
  const dnsOk = !spec.dnsVerification.enabled || !!input.dns?.ok;
  const ready = keyReady && !!input.relay && credsOk && dnsOk;
  // An unreadable user key needs the user to act: Degraded. Everything else is waiting on
  // something that will come by itself (the relay, a key, DNS): Progressing.
  const [phase, reason, why]: [Phase, string, string] = ready ? ['Ready', 'Ready', 'domain is served']
    : input.externalKeyError ? ['Degraded', 'KeyUnreadable', input.externalKeyError]
    : !input.relay ? ['Progressing', 'RelayNotFound', `EmailRelay ${spec.relayRef.name} not found`]
    : !keyReady ? ['Progressing', 'KeyPending', 'DKIM key not ready']
    : !dnsOk ? ['Progressing', 'DNSNotVerified', 'DNS records not verified']
    : ['Progressing', 'CredentialsPending', 'credentials pending'];
  conds.unshift(...summaryConditions(phase, reason, why));

  const status: SenderDomainStatus = {
    observedGeneration: sd.metadata.generation ?? 0,
    conditions: mergeConditions(sd.status?.conditions as Condition[] | undefined, conds, sd.metadata.generation ?? 0, now),
    dkim: {
      activeSelectors: signingKeys(internal.dkim, nowMs).map((k) => k.selector),
      selectors: internal.dkim.keys.map((k) => {
        const phase = keyPhase(k, nowMs);
        return { selector: k.selector, algorithm: k.algorithm, state: phase, since: phase === 'published' ? k.publishedAt : phase === 'active' ? k.activeAt : (k.retireAt ?? k.activeAt) };
      }),
    },
    dnsRecords: dnsRecords(spec.domain, internal.dkim, internal.pems),
    ...(spec.credentials.enabled ? { credentialsSecret: names.credentials } : {}),
  };
  return { objects, status, ready };
}
