// The dev certificate is made in-process (no openssl CLI: the image has none) and is one a
// TLS client accepts for the relay's names once it trusts it.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import tls from 'node:tls';
import { describe, expect, it } from 'vitest';
import { ensureSelfSignedCert } from '../../relay/tls/selfsigned.ts';
import { tempDir } from '../support/relay-harness.ts';

async function handshake(pair: { cert: Buffer; key: Buffer }, servername: string): Promise<tls.PeerCertificate> {
  const server = tls.createServer(pair, (s) => s.end());
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const { port } = server.address() as { port: number };
  try {
    return await new Promise((resolve, reject) => {
      const s = tls.connect({ host: '127.0.0.1', port, servername, ca: pair.cert, rejectUnauthorized: true }, () => {
        resolve(s.getPeerCertificate());
        s.end();
      });
      s.once('error', reject);
    });
  } finally {
    server.close();
  }
}

describe('self-signed certificate', () => {
  it('is made without any CLI, kept private, and verifies for the relay host name, localhost and 127.0.0.1', async () => {
    const dir = tempDir();
    const savedPath = process.env.PATH;
    process.env.PATH = tempDir(); // an empty PATH: nothing to exec
    let files;
    try {
      files = ensureSelfSignedCert(dir, 'relay.example.test');
    } finally {
      process.env.PATH = savedPath;
    }
    expect(fs.statSync(files.keyFile).mode & 0o777).toBe(0o600);
    expect(fs.statSync(path.dirname(files.keyFile)).mode & 0o777).toBe(0o700);
    const pair = { cert: fs.readFileSync(files.certFile), key: fs.readFileSync(files.keyFile) };
    const x = new crypto.X509Certificate(pair.cert);
    expect(x.checkPrivateKey(crypto.createPrivateKey(pair.key))).toBe(true);
    expect(x.subject).toBe('CN=relay.example.test');
    expect(x.checkHost('relay.example.test')).toBe('relay.example.test');
    expect(x.checkHost('localhost')).toBe('localhost');
    expect(x.checkIP('127.0.0.1')).toBe('127.0.0.1');
    expect(x.checkHost('other.example.test')).toBeUndefined();
    expect(x.ca).toBe(false);
    expect(x.verify(x.publicKey)).toBe(true);
    expect(new Date(x.validTo).getTime()).toBeGreaterThan(Date.now() + 800 * 86_400_000);
    // a client that trusts it completes a verified handshake for each name
    for (const name of ['relay.example.test', 'localhost']) {
      expect((await handshake(pair, name)).subject.CN).toBe('relay.example.test');
    }
    await expect(handshake(pair, 'other.example.test')).rejects.toThrow(/altnames/i);
  });

  it('is kept across starts and made again when a file of the pair is missing', () => {
    const dir = tempDir();
    const first = ensureSelfSignedCert(dir, 'localhost');
    const cert = fs.readFileSync(first.certFile, 'utf8');
    expect(fs.readFileSync(ensureSelfSignedCert(dir, 'localhost').certFile, 'utf8')).toBe(cert);
    fs.rmSync(first.certFile);
    const again = ensureSelfSignedCert(dir, 'localhost');
    const x = new crypto.X509Certificate(fs.readFileSync(again.certFile));
    expect(x.toString()).not.toBe(new crypto.X509Certificate(cert).toString());
    expect(x.checkPrivateKey(crypto.createPrivateKey(fs.readFileSync(again.keyFile)))).toBe(true);
  });
});
