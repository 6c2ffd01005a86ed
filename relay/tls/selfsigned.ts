// Development certificate: node:crypto cannot issue X.509, so the openssl CLI makes one
// once and it is kept in the data directory for the next start.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

export function ensureSelfSignedCert(dir: string, hostname: string): { certFile: string; keyFile: string } {
  const certFile = path.join(dir, 'tls', 'selfsigned.crt');
  const keyFile = path.join(dir, 'tls', 'selfsigned.key');
  if (fs.existsSync(certFile) && fs.existsSync(keyFile)) return { certFile, keyFile };
  fs.mkdirSync(path.dirname(certFile), { recursive: true, mode: 0o700 });
  try {
    execFileSync('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
      '-keyout', keyFile, '-out', certFile, '-days', '825', '-subj', `/CN=${hostname}`,
      '-addext', `subjectAltName=DNS:${hostname},DNS:localhost,IP:127.0.0.1`,
    ], { stdio: 'pipe' });
  } catch (err) {
    throw new Error(`cannot generate a self-signed certificate with openssl (is it installed?): ${(err as Error).message}`);
  }
  fs.chmodSync(keyFile, 0o600);
  return { certFile, keyFile };
}
