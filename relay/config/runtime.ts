// A loaded config plus what the hot path needs precomputed: logins by name with their
// hashes (read from mounted files), trusted networks as CIDR sets, domain sets.
import fs from 'node:fs';
import { CidrSet } from '../util/cidr.ts';
import { isPasswordHash } from '../auth/password.ts';
import { ConfigError } from './load.ts';
import type { RelayConfig } from './schema.ts';
import { buildDomainPolicies, type DomainPolicy } from '../senders/domains.ts';

export interface Login {
  username: string;
  passwordHash: string;
  domains: Set<string>;
}

export interface RelayRuntime {
  config: RelayConfig;
  logins: Map<string, Login>;
  trusted: Array<{ cidrs: CidrSet; domains: Set<string> }>;
  /** Sender domains by name, with DKIM keys parsed. */
  domains: Map<string, DomainPolicy>;
  /** Trusted networks of every entry, for the plain listener's connection check. */
  isTrusted(ip: string): boolean;
  domainsForClient(ip: string): Set<string>;
}

export function buildRuntime(config: RelayConfig, readFile: (p: string) => string = (p) => fs.readFileSync(p, 'utf8')): RelayRuntime {
  const issues: string[] = [];
  const logins = new Map<string, Login>();
  config.credentials.forEach((c, i) => {
    let hash = c.passwordHash;
    if (c.passwordHashFile) {
      try {
        hash = readFile(c.passwordHashFile).trim();
      } catch (err) {
        issues.push(`credentials.${i}.passwordHashFile: cannot read ${c.passwordHashFile}: ${(err as Error).message}`);
        return;
      }
    }
    if (!hash || !isPasswordHash(hash)) {
      issues.push(`credentials.${i}: the password hash of ${c.username} is not a scrypt hash (use \`mailfleet hash-password\`)`);
      return;
    }
    if (logins.has(c.username)) issues.push(`credentials.${i}.username: ${c.username} is listed twice`);
    logins.set(c.username, { username: c.username, passwordHash: hash, domains: new Set(c.domains) });
  });
  let domains = new Map<string, DomainPolicy>();
  try {
    domains = buildDomainPolicies(config);
  } catch (err) {
    issues.push(`domains: ${(err as Error).message}`);
  }
  if (issues.length) throw new ConfigError('config', issues);
  const trusted = config.trustedNetworks.map((t) => ({ cidrs: new CidrSet(t.cidrs), domains: new Set(t.domains) }));
  return {
    config,
    logins,
    trusted,
    domains,
    isTrusted: (ip) => trusted.some((t) => t.cidrs.has(ip)),
    domainsForClient(ip) {
      const out = new Set<string>();
      for (const t of trusted) if (t.cidrs.has(ip)) t.domains.forEach((d) => out.add(d));
      return out;
    },
  };
}
