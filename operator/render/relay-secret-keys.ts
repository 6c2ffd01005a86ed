// Names of the files in a relay's Secret. One Secret holds the relay's own credentials and
// every attached SenderDomain's DKIM keys, login hash and smarthost login, from several
// tenants: a name two of them could both reach would hand one tenant's file to the other's
// login or signature. So the names are injective by construction, not by luck:
//
// - a SenderDomain's files start with `sd_<namespace>_<name>_` (or, when that would not fit a
//   Secret key, `sdh_<hash of namespace/name>_<namespace>_<name prefix>_`). `_` occurs in no
//   namespace, object name or DKIM selector (operator/api/common.ts SELECTOR_RE), so the
//   first `_`-separated tokens give back exactly who owns the file;
// - the relay's own files (RELAY_FILES) never start with `sd`;
// - and SecretFiles (relay-secret-files.ts) refuses a name written twice with different contents.
import { createHash } from 'node:crypto';
import { FLEET_TOKEN_KEY } from './relay-paths.ts';

/** Secret data keys (and ConfigMap keys): at most 253 of these characters, not `.`/`..`. */
export const SECRET_KEY_MAX = 253;
const SECRET_KEY_RE = /^[-._a-zA-Z0-9]+$/;

/** Whether `key` may name a file of a Secret; the API server refuses the Secret otherwise. */
export function validSecretKey(key: string): boolean {
  return key.length <= SECRET_KEY_MAX && SECRET_KEY_RE.test(key) && !key.startsWith('..') && key !== '.';
}

/**
 * The longest part a SenderDomain's file adds after its owner prefix: `_dkim_` + a selector
 * (63) + `.pem` is 73; `_smarthost.` + the longest OAuth2 key (`service-account.json`) is 31.
 */
export const DOMAIN_SUFFIX_MAX = 80;
const OWNER_MAX = SECRET_KEY_MAX - DOMAIN_SUFFIX_MAX;
const HASH_CHARS = 32;

/** The relay's own files (never starting with `sd`, the SenderDomains' prefix). */
export const RELAY_FILES = {
  smarthost: (i: number) => `smarthost-${i}`,
  redisPassword: 'redis.password',
  webhookSecret: (i: number) => `webhook-${i}.secret`,
  fleetToken: FLEET_TOKEN_KEY,
} as const;

/** Whether a file name is in the SenderDomains' part of the relay's Secret. */
export const isDomainFile = (key: string) => /^sdh?_/.test(key);

/** The prefix of every file of SenderDomain namespace/name in the relay's Secret (without the trailing `_`). */
export function domainFileOwner(namespace: string, name: string): string {
  const plain = `sd_${namespace}_${name}`;
  if (plain.length <= OWNER_MAX) return plain;
  // Too long for a Secret key with its suffix (a name may have 253 characters): a readable
  // prefix, and the hash of the whole namespace/name that keeps it unique.
  const hash = createHash('sha256').update(`${namespace}/${name}`).digest('hex').slice(0, HASH_CHARS);
  const head = `sdh_${hash}_${namespace}_`;
  return `${head}${name.slice(0, OWNER_MAX - head.length)}`;
}

/** A SenderDomain's files in the relay's Secret. */
export function domainFiles(namespace: string, name: string) {
  const owner = domainFileOwner(namespace, name);
  return {
    owner,
    dkim: (selector: string) => `${owner}_dkim_${selector}.pem`,
    login: `${owner}_login.hash`,
    /** The smarthost's files are this plus `.password` or `.<oauth2 key>`. */
    smarthost: `${owner}_smarthost`,
  };
}
