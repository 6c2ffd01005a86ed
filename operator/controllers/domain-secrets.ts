// What the operator generates for a SenderDomain, the only randomness and slow crypto in the
// controllers: DKIM private keys (node:crypto) and the app password with its scrypt hash.
import { createHash, generateKeyPair, randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { hashPassword } from '../../relay/auth/password.ts';
import type { KeyAlgorithm } from '../render/dkim.ts';
import type { DomainInternal } from '../render/domain-internal.ts';

const genKeyPair = promisify(generateKeyPair);

/** A PKCS#8 PEM private key: Ed25519, or RSA-2048. */
export async function generateDkimKey(algorithm: KeyAlgorithm): Promise<string> {
  const kp = algorithm === 'ed25519-sha256' ? await genKeyPair('ed25519') : await genKeyPair('rsa', { modulusLength: 2048 });
  return kp.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
}

/**
 * The app password: the one in the app Secret if there is one (a person may have edited it),
 * else a fresh one. Its hash is recomputed only when the password changed (sha256
 * fingerprint), since scrypt is deliberately slow. Updates internal in place.
 */
export async function appPassword(existing: string | undefined, internal: DomainInternal): Promise<string> {
  const password = existing || randomBytes(24).toString('base64url');
  const fp = createHash('sha256').update(password).digest('hex');
  if (internal.passwordFingerprint !== fp || !internal.passwordHash) {
    internal.passwordHash = await hashPassword(password);
    internal.passwordFingerprint = fp;
  }
  return password;
}
