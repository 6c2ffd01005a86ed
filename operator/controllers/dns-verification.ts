// Checks that the DKIM TXT records a SenderDomain asks for are published, by asking the
// configured resolvers (--dns-servers) or the system's.
import { Resolver } from 'node:dns/promises';
import { dnsRecords } from '../render/dns-records.ts';
import type { DomainInternal } from '../render/domain-internal.ts';

export interface DnsCheck {
  ok: boolean;
  message: string;
}

export async function verifyDkimRecords(domain: string, internal: DomainInternal, dnsServers: string[] | undefined): Promise<DnsCheck> {
  const resolver = new Resolver({ timeout: 3000, tries: 2 });
  if (dnsServers?.length) resolver.setServers(dnsServers);
  const want = dnsRecords(domain, internal.dkim, internal.pems).filter((r) => r.required);
  const missing: string[] = [];
  for (const r of want) {
    try {
      const txt = (await resolver.resolveTxt(r.name)).map((chunks) => chunks.join(''));
      if (!txt.some((t) => t.replace(/\s+/g, '') === r.value.replace(/\s+/g, ''))) missing.push(`${r.name} (different value)`);
    } catch (e) {
      missing.push(`${r.name} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
  }
  return missing.length ? { ok: false, message: `not published: ${missing.join(', ')}` } : { ok: true, message: `${want.length} DKIM record(s) found` };
}
