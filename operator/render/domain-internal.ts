// The internal Secret of a SenderDomain (<name>-mailfleet) as data: the DKIM key state and
// PEMs, and the app password's scrypt hash. Generated state lives only here, so its format
// is read and written in one place.
import type { DkimState } from './dkim.ts';

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

export function internalData(i: DomainInternal): Record<string, string> {
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
