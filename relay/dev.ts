// The embedded default behind `npm start`: a relay on loopback that a newcomer can send
// through with swaks at once. The dev password comes from MAILFLEET_DEV_PASSWORD or is
// generated once, kept in the data dir and printed the first time only.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { hashPassword } from './auth/password.ts';
import { parseConfig } from './config/load.ts';
import type { RelayConfig, RelayConfigInput } from './config/schema.ts';

export async function devConfig(dataDir = path.resolve('.mailfleet')): Promise<{ config: RelayConfig; notice: string }> {
  fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const pwFile = path.join(dataDir, 'dev-password');
  let password = process.env.MAILFLEET_DEV_PASSWORD;
  let notice: string;
  if (password) {
    notice = 'dev login: user "dev", password from MAILFLEET_DEV_PASSWORD';
  } else if (fs.existsSync(pwFile)) {
    password = fs.readFileSync(pwFile, 'utf8').trim();
    notice = `dev login: user "dev", password in ${pwFile}`;
  } else {
    password = crypto.randomBytes(12).toString('base64url');
    fs.writeFileSync(pwFile, `${password}\n`, { mode: 0o600 });
    // Printed once, to the terminal of the person who started it, never to the log.
    notice = `dev login: user "dev", password "${password}" (shown once; kept in ${pwFile})`;
  }
  const input: RelayConfigInput = {
    hostname: 'localhost',
    dataDir,
    listeners: [
      { name: 'submission', host: '127.0.0.1', port: 2587, mode: 'starttls' },
      { name: 'smtps', host: '127.0.0.1', port: 2465, mode: 'implicit' },
    ],
    tls: { selfSigned: true },
    credentials: [{ username: 'dev', passwordHash: await hashPassword(password), domains: ['example.test'] }],
    domains: [{ domain: 'example.test' }],
    delivery: { mode: 'mx' },
    http: { host: '127.0.0.1', port: 9464 },
  };
  return { config: parseConfig(input, 'built-in dev config'), notice };
}
