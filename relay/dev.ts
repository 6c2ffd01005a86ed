// The embedded default behind `npm start`: a relay on loopback that a newcomer can send
// through with swaks at once. By default it captures instead of sending (each message an
// .eml file under the data dir), so the newcomer sees exactly what would have left, DKIM
// signature included, with no port 25 or DNS involved; `--deliver` sends by MX for real.
// The dev password comes from MAILFLEET_DEV_PASSWORD or is generated once, kept in the data
// dir and printed the first time only; the DKIM key is generated once and kept there too.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { hashPassword } from './auth/password.ts';
import { parseConfig } from './config/load.ts';
import type { RelayConfig, RelayConfigInput } from './config/schema.ts';
import { dkimTxtRecord } from './dkim/keys.ts';

export const DEV_DOMAIN = 'example.test';
export const DEV_SELECTOR = 'dev';

export interface DevOptions {
  dataDir?: string;
  /** Deliver by MX lookup instead of capturing. */
  deliver?: boolean;
}

/** Made once: a crash between key and record leaves no record, and both are made again. */
function ensureDkimKey(dataDir: string): { keyFile: string; recordFile: string } {
  const dir = path.join(dataDir, 'dkim');
  const keyFile = path.join(dir, `${DEV_DOMAIN}.${DEV_SELECTOR}.pem`);
  const recordFile = path.join(dir, `${DEV_SELECTOR}._domainkey.${DEV_DOMAIN}.txt`);
  if (fs.existsSync(keyFile) && fs.existsSync(recordFile)) return { keyFile, recordFile };
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  // RSA: every verifier supports it (Ed25519 signatures are still ignored by some)
  const { privateKey, publicKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  fs.writeFileSync(keyFile, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  fs.writeFileSync(recordFile, `${dkimTxtRecord({ algorithm: 'rsa-sha256', publicKey })}\n`);
  return { keyFile, recordFile };
}

export async function devConfig(opts: DevOptions = {}): Promise<{ config: RelayConfig; notice: string }> {
  const dataDir = opts.dataDir ?? path.resolve('.mailfleet');
  fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const pwFile = path.join(dataDir, 'dev-password');
  let password = process.env.MAILFLEET_DEV_PASSWORD;
  const notice: string[] = [];
  if (password) {
    notice.push('dev login: user "dev", password from MAILFLEET_DEV_PASSWORD');
  } else if (fs.existsSync(pwFile)) {
    password = fs.readFileSync(pwFile, 'utf8').trim();
    notice.push(`dev login: user "dev", password in ${pwFile}`);
  } else {
    password = crypto.randomBytes(12).toString('base64url');
    fs.writeFileSync(pwFile, `${password}\n`, { mode: 0o600 });
    // Printed once, to the terminal of the person who started it, never to the log.
    notice.push(`dev login: user "dev", password "${password}" (shown once; kept in ${pwFile})`);
  }
  const dkim = ensureDkimKey(dataDir);
  notice.push(`mail from @${DEV_DOMAIN} is DKIM-signed with selector "${DEV_SELECTOR}" (public key record: ${dkim.recordFile})`);
  notice.push(opts.deliver
    ? 'delivery: by MX lookup, for real (the system resolver; outbound port 25 must be open)'
    : `delivery: captured, not sent: each message becomes an .eml file in ${path.join(dataDir, 'captured')} (npm start -- --deliver sends by MX)`);
  const input: RelayConfigInput = {
    hostname: 'localhost',
    dataDir,
    listeners: [
      { name: 'submission', host: '127.0.0.1', port: 2587, mode: 'starttls' },
      { name: 'smtps', host: '127.0.0.1', port: 2465, mode: 'implicit' },
    ],
    tls: { selfSigned: true },
    credentials: [{ username: 'dev', passwordHash: await hashPassword(password), domains: [DEV_DOMAIN] }],
    domains: [{ domain: DEV_DOMAIN, dkim: { keys: [{ selector: DEV_SELECTOR, algorithm: 'rsa-sha256', privateKeyFile: dkim.keyFile }] } }],
    // a captured message goes nowhere, so its recipients' domains are not looked up either
    recipientChecks: { dns: opts.deliver ?? false },
    delivery: { mode: opts.deliver ? 'mx' : 'capture' },
    http: { host: '127.0.0.1', port: 9464 },
  };
  return { config: parseConfig(input, 'built-in dev config'), notice: notice.join('\n  ') };
}
