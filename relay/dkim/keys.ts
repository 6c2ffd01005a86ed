// DKIM private keys: read and parsed once at config load into KeyObjects (parsing a PEM
// costs more than an Ed25519 signature, so it must not happen per message), checked
// against the algorithm they are configured for.
import { createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Logger } from '../log.ts';
import type { DkimConfig, DkimKeyConfig } from './schema.ts';

// RFC 8301 §3.2: signers MUST use at least 1024 bits and SHOULD use at least 2048.
const MIN_RSA_BITS = 1024;
const RECOMMENDED_RSA_BITS = 2048;

export type DkimAlgorithm = DkimKeyConfig['algorithm'];

export interface LoadedKey {
  selector: string;
  algorithm: DkimAlgorithm;
  /** Where the key came from, for error messages and logs (never the key itself). */
  file: string;
  privateKey: KeyObject;
  publicKey: KeyObject;
  /** RSA modulus length; undefined for Ed25519. */
  bits: number | undefined;
}

export class DkimKeyError extends Error {
  readonly file: string;
  readonly selector: string;
  constructor(key: { privateKeyFile: string; selector: string }, problem: string, cause?: unknown) {
    super(`DKIM key ${key.privateKeyFile} (selector ${key.selector}): ${problem}`, cause === undefined ? undefined : { cause });
    this.name = 'DkimKeyError';
    this.file = key.privateKeyFile;
    this.selector = key.selector;
  }
}

export function loadDkimKeys(cfg: Pick<DkimConfig, 'keys'>, log?: Logger): LoadedKey[] {
  return cfg.keys.map((k) => loadDkimKey(k, log));
}

export function loadDkimKey(k: DkimKeyConfig, log?: Logger): LoadedKey {
  let pem: Buffer;
  try {
    pem = readFileSync(k.privateKeyFile);
  } catch (err) {
    throw new DkimKeyError(k, `cannot read the file (${(err as NodeJS.ErrnoException).code ?? String(err)})`, err);
  }
  return parseDkimKey(pem, k, log);
}

/**
 * A PEM checked as loadDkimKey checks a file (the operator asks this before it hands a key
 * to the relay: a key the relay refuses would make it refuse its whole config).
 */
export function parseDkimKey(pem: Buffer | string, k: DkimKeyConfig, log?: Logger): LoadedKey {
  if (typeof pem === 'string') pem = Buffer.from(pem);
  // Recognised from the PEM armour: OpenSSL's own error for a missing passphrase says
  // only "interrupted or cancelled".
  if (/-----BEGIN ENCRYPTED PRIVATE KEY-----|Proc-Type:\s*4,\s*ENCRYPTED/.test(pem.toString('latin1'))) {
    throw new DkimKeyError(k, 'the key is encrypted; passphrase-protected keys are not supported (store it unencrypted in a Secret)');
  }
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey({ key: pem, format: 'pem' });
  } catch (err) {
    // OpenSSL's messages name the failure, never the key material.
    const e = err as NodeJS.ErrnoException;
    throw new DkimKeyError(k, `not a usable PEM private key: ${e.code ?? e.message}`, err);
  }
  const type = privateKey.asymmetricKeyType;
  let bits: number | undefined;
  if (k.algorithm === 'rsa-sha256') {
    if (type !== 'rsa') throw new DkimKeyError(k, `algorithm rsa-sha256 needs an RSA key, the file holds a ${type ?? 'unknown'} key`);
    bits = privateKey.asymmetricKeyDetails?.modulusLength;
    if (bits === undefined || bits < MIN_RSA_BITS) {
      throw new DkimKeyError(k, `RSA key of ${bits ?? 'unknown'} bits is too short; RFC 8301 requires at least ${MIN_RSA_BITS}`);
    }
    if (bits < RECOMMENDED_RSA_BITS) {
      log?.warn({ file: k.privateKeyFile, selector: k.selector, bits }, 'DKIM RSA key shorter than 2048 bits; some verifiers treat it as weak');
    }
  } else if (type !== 'ed25519') {
    throw new DkimKeyError(k, `algorithm ed25519-sha256 needs an Ed25519 key, the file holds a ${type ?? 'unknown'} key`);
  }
  return {
    selector: k.selector,
    algorithm: k.algorithm,
    file: k.privateKeyFile,
    privateKey,
    publicKey: createPublicKey(privateKey),
    bits,
  };
}

/** The DKIM key record to publish at <selector>._domainkey.<domain> (RFC 6376 §3.6.1, RFC 8463 §4). */
export function dkimTxtRecord(key: Pick<LoadedKey, 'algorithm' | 'publicKey'>): string {
  if (key.algorithm === 'ed25519-sha256') {
    // RFC 8463 §4.2: p= is the raw 32-byte public key, not a SubjectPublicKeyInfo.
    const jwk = key.publicKey.export({ format: 'jwk' });
    if (!jwk.x) throw new Error('Ed25519 public key has no x coordinate');
    return `v=DKIM1; k=ed25519; p=${Buffer.from(jwk.x, 'base64url').toString('base64')}`;
  }
  const spki = key.publicKey.export({ type: 'spki', format: 'der' });
  return `v=DKIM1; k=rsa; p=${spki.toString('base64')}`;
}

/**
 * The same record split into DNS character-strings of at most 255 bytes (RFC 1035
 * §3.3.14), as a zone file or DNS API that does not split for you needs it. Verifiers
 * concatenate them (RFC 6376 §3.6.2.2).
 */
export function dkimTxtStrings(key: Pick<LoadedKey, 'algorithm' | 'publicKey'>): string[] {
  const record = dkimTxtRecord(key); // ASCII only, so characters are bytes
  const out: string[] = [];
  for (let i = 0; i < record.length; i += 255) out.push(record.slice(i, i + 255));
  return out;
}
