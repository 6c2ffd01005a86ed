// Fresh DKIM key files in a temporary directory, as the relay would find them mounted.
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface KeyDir {
  dir: string;
  rsa(name: string, bits?: number): string;
  ed25519(name: string): string;
  write(name: string, content: string): string;
  cleanup(): void;
}

export function makeKeyDir(): KeyDir {
  const dir = mkdtempSync(join(tmpdir(), 'dkim-keys-'));
  const write = (name: string, content: string) => {
    const file = join(dir, name);
    writeFileSync(file, content, { mode: 0o600 });
    return file;
  };
  return {
    dir,
    write,
    rsa: (name, bits = 2048) =>
      write(name, generateKeyPairSync('rsa', { modulusLength: bits }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string),
    ed25519: (name) => write(name, generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }) as string),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}
