// Asks DNS whether the records a SenderDomain publishes are there, exactly: its DKIM TXT
// records, for the DNSVerified condition and for the rotation gate (a new selector signs
// only after its record has been seen). With several resolvers configured (--dns-servers)
// a record counts as seen only when every one of them answers with it, so one resolver
// that already has it cannot switch signing while others (and the receivers behind them)
// still lack it.
import { Resolver } from 'node:dns/promises';
import { dnsRecords } from '../render/dns-records.ts';
import type { DkimState } from '../render/dkim.ts';
import type { DomainInternal } from '../render/domain-internal.ts';

export interface DnsCheck {
  ok: boolean;
  message: string;
}

interface Wanted {
  name: string;
  value: string;
}

const squash = (v: string) => v.replace(/\s+/g, '');

export function resolvers(dnsServers: string[] | undefined): Resolver[] {
  if (!dnsServers?.length) return [new Resolver({ timeout: 3000, tries: 2 })];
  return dnsServers.map((server) => {
    const r = new Resolver({ timeout: 3000, tries: 2 });
    r.setServers([server]);
    return r;
  });
}

/** For each wanted record: undefined when every resolver answered with it, else why not. */
async function lookup(want: Wanted[], dnsServers: string[] | undefined): Promise<Map<string, string | undefined>> {
  const all = resolvers(dnsServers);
  const out = new Map<string, string | undefined>();
  await Promise.all(want.map(async (r) => {
    const problems = await Promise.all(all.map(async (resolver, i) => {
      const who = dnsServers?.length ? ` at ${dnsServers[i]}` : '';
      try {
        const txt = (await resolver.resolveTxt(r.name)).map((chunks) => chunks.join(''));
        return txt.some((t) => squash(t) === squash(r.value)) ? undefined : `different value${who}`;
      } catch (e) {
        return `${(e as NodeJS.ErrnoException).code ?? (e as Error).message}${who}`;
      }
    }));
    const bad = problems.filter((p) => p !== undefined);
    out.set(r.name, bad.length ? bad.join(', ') : undefined);
  }));
  return out;
}

/** Whether each DKIM record of the domain is published (the DNSVerified condition). */
export async function verifyDkimRecords(domain: string, internal: DomainInternal, dnsServers: string[] | undefined): Promise<DnsCheck> {
  const want = dnsRecords(domain, internal.dkim, internal.pems).filter((r) => r.required);
  const found = await lookup(want, dnsServers);
  const missing = want.filter((r) => found.get(r.name) !== undefined).map((r) => `${r.name} (${found.get(r.name)})`);
  return missing.length ? { ok: false, message: `not published: ${missing.join(', ')}` } : { ok: true, message: `${want.length} DKIM record(s) found` };
}

/** Selector → its exact record is in DNS now, for the keys of `waiting` (the rotation gate's input). */
export async function seenSelectors(domain: string, waiting: DkimState['keys'], internal: DomainInternal, dnsServers: string[] | undefined): Promise<Record<string, boolean>> {
  const selectors = new Set(waiting.map((k) => k.selector));
  const want = dnsRecords(domain, internal.dkim, internal.pems).filter((r) => r.selector !== undefined && selectors.has(r.selector));
  if (want.length === 0) return {};
  const found = await lookup(want, dnsServers);
  return Object.fromEntries(want.map((r) => [r.selector as string, found.get(r.name) === undefined]));
}

/** Whether the TXT record `name` holding exactly `value` is published (every resolver agrees); why not, else. */
export async function txtPublished(name: string, value: string, dnsServers: string[] | undefined): Promise<DnsCheck> {
  const found = await lookup([{ name, value }], dnsServers);
  const problem = found.get(name);
  return problem === undefined ? { ok: true, message: `${name} found` } : { ok: false, message: `${name} not published (${problem})` };
}
