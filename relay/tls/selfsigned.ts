// Development certificate, made in-process once and kept in the data directory for the next
// start. node:crypto makes the key but cannot issue X.509, and the image has no openssl
// CLI, so node-forge builds and signs the certificate (RSA: forge signs RSA only).
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import forge from 'node-forge';

const VALID_DAYS = 825; // the longest validity clients accept for a server certificate

export interface SelfSignedFiles { certFile: string; keyFile: string }

/** The PEM pair for `hostname`, valid for it, localhost, 127.0.0.1 and ::1. */
export function selfSignedPem(hostname: string, now = new Date()): { cert: string; key: string } {
  const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const keyPem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const key = forge.pki.privateKeyFromPem(keyPem) as forge.pki.rsa.PrivateKey;
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.setRsaPublicKey(key.n, key.e);
  // 16 random bytes with the top bit clear: a positive serial, unique per certificate
  const serial = crypto.randomBytes(16);
  serial[0]! &= 0x7f;
  cert.serialNumber = serial.toString('hex');
  cert.validity.notBefore = new Date(now.getTime() - 60_000); // a little clock skew
  cert.validity.notAfter = new Date(now.getTime() + VALID_DAYS * 86_400_000);
  const subject = [{ shortName: 'CN', value: hostname }];
  cert.setSubject(subject);
  cert.setIssuer(subject);
  const names = [...new Set([hostname, 'localhost', '127.0.0.1', '::1'])];
  cert.setExtensions([
    { name: 'basicConstraints', cA: false, critical: true },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', serverAuth: true },
    { name: 'subjectAltName', altNames: names.map((n) => (net.isIP(n) ? { type: 7, ip: n } : { type: 2, value: n })) },
  ]);
  cert.sign(key, forge.md.sha256.create());
  return { cert: forge.pki.certificateToPem(cert), key: keyPem };
}

/** The kept pair under `dir/tls/`, made on first use. */
export function ensureSelfSignedCert(dir: string, hostname: string): SelfSignedFiles {
  const certFile = path.join(dir, 'tls', 'selfsigned.crt');
  const keyFile = path.join(dir, 'tls', 'selfsigned.key');
  if (fs.existsSync(certFile) && fs.existsSync(keyFile)) return { certFile, keyFile };
  fs.mkdirSync(path.dirname(certFile), { recursive: true, mode: 0o700 });
  const { cert, key } = selfSignedPem(hostname);
  // key first: a crash in between leaves no certificate, so the next start makes both again
  fs.writeFileSync(keyFile, key, { mode: 0o600 });
  fs.writeFileSync(certFile, cert, { mode: 0o644 });
  return { certFile, keyFile };
}
