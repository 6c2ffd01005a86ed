// Self-signed TLS material for test peers (sinks, intake listeners, smarthosts).
// node:crypto cannot issue X.509 certificates, so the openssl CLI makes one per distinct
// name list, once per machine: the files are cached under the OS temp dir and reused by
// every test process (generating an RSA key costs a noticeable part of a second).
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isIP } from 'node:net';

export interface TestCert {
  key: string;       // PEM private key
  cert: string;      // PEM certificate (self-signed, so it is also its own CA)
  keyPath: string;
  certPath: string;  // usable as a CA file by a client that should verify the peer
}

/** Names every test cert covers unless told otherwise: loopback names and the first few loopback IPs. */
export const defaultCertNames = [
  'localhost',
  '*.example.test',
  'example.test',
  ...Array.from({ length: 9 }, (_, i) => `127.0.0.${i + 1}`),
  '::1',
];

const cache = new Map<string, TestCert>();

/**
 * Returns a self-signed certificate whose subjectAltName lists `names` (DNS names or IPs).
 * Throws with openssl's stderr when the CLI is missing or fails.
 */
export function testCert(names: string[] = defaultCertNames): TestCert {
  const id = createHash('sha256').update(names.join(',')).digest('hex').slice(0, 16);
  const hit = cache.get(id);
  if (hit) return hit;
  const root = join(tmpdir(), 'mailfleet-test-certs');
  mkdirSync(root, { recursive: true });
  const dir = join(root, id);
  const keyPath = join(dir, 'key.pem');
  const certPath = join(dir, 'cert.pem');
  if (!existsSync(certPath)) {
    // Made in a private directory and renamed into place whole: parallel test processes
    // may race here, and a key from one run must never pair with a cert from another.
    const work = `${dir}.tmp-${process.pid}-${Date.now()}`;
    mkdirSync(work, { recursive: true });
    const san = names.map((n) => (isIP(n) ? `IP:${n}` : `DNS:${n}`)).join(',');
    try {
      execFileSync('openssl', [
        'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-sha256', '-days', '3650',
        '-subj', `/CN=${names[0] ?? 'localhost'}`,
        '-addext', `subjectAltName=${san}`,
        '-addext', 'basicConstraints=critical,CA:TRUE',
        '-keyout', join(work, 'key.pem'), '-out', join(work, 'cert.pem'),
      ], { stdio: ['ignore', 'ignore', 'pipe'] });
    } catch (err) {
      const stderr = (err as { stderr?: Buffer }).stderr?.toString() ?? '';
      throw new Error(`openssl could not make a test certificate for ${names.join(',')}: ${(err as Error).message} ${stderr}`);
    }
    try {
      renameSync(work, dir);
    } catch {
      // another process won the race: use its files, drop ours
      rmSync(work, { recursive: true, force: true });
    }
  }
  const result = { key: readFileSync(keyPath, 'utf8'), cert: readFileSync(certPath, 'utf8'), keyPath, certPath };
  cache.set(id, result);
  return result;
}

/** Writes a PEM to a file (e.g. for a config field that takes a path). */
export function writePem(path: string, pem: string): string {
  writeFileSync(path, pem);
  return path;
}
