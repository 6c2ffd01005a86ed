// The DNS records a SenderDomain asks its owner to publish: the DKIM TXT record of every
// selector with a key (required), and SPF (from the route, render/spf.ts) and DMARC
// suggestions (not required). Each record
// comes in every form a person or a tool needs: a fully qualified name, the value whole, the
// value as the ≤255-byte character-strings a TXT record is made of (RFC 1035 §3.3.14: a
// 2048-bit key's record does not fit in one), and a zone-file line to paste.
import { createPrivateKey, createPublicKey } from 'node:crypto';
import { dkimTxtRecord } from '../../relay/dkim/keys.ts';
import type { DnsRecord } from '../api/senderdomain.ts';
import type { DkimState, KeyAlgorithm } from './dkim.ts';
import type { SpfResult } from './spf.ts';

/** A TXT character-string holds at most 255 bytes. */
export const TXT_STRING_MAX = 255;
/** Suggested TTL: short enough that a fix propagates within the hour. */
export const SUGGESTED_TTL = 3600;

export function txtValue(pem: string, algorithm: KeyAlgorithm): string {
  return dkimTxtRecord({ algorithm, publicKey: createPublicKey(createPrivateKey(pem)) });
}

/** The value as TXT character-strings of at most 255 bytes each (split on bytes, never inside a UTF-8 sequence). */
export function txtStrings(value: string): string[] {
  const bytes = Buffer.from(value, 'utf8');
  const out: string[] = [];
  let start = 0;
  while (start < bytes.length) {
    let end = Math.min(start + TXT_STRING_MAX, bytes.length);
    while (end < bytes.length && ((bytes[end] as number) & 0xc0) === 0x80) end--;
    out.push(bytes.subarray(start, end).toString('utf8'));
    start = end;
  }
  return out.length ? out : [''];
}

const quote = (s: string) => `"${s.replace(/["\\]/g, (c) => `\\${c}`)}"`;

/** Character-strings in RFC 1035 master-file form: each quoted, separated by a space. */
export const quotedStrings = (values: string[]) => values.map(quote).join(' ');

export function fqdn(name: string): string {
  return name.endsWith('.') ? name : `${name}.`;
}

function txt(name: string, value: string, purpose: DnsRecord['purpose'], required: boolean, selector?: string): DnsRecord {
  const values = txtStrings(value);
  const owner = fqdn(name);
  return {
    type: 'TXT', name: owner, ttl: SUGGESTED_TTL, value, values, purpose, required,
    zone: `${owner} ${SUGGESTED_TTL} IN TXT ${quotedStrings(values)}`,
    ...(selector !== undefined ? { selector } : {}),
  };
}

/** An SPF record that cannot be written yet: no value to publish, the zone line a comment saying why. */
function incompleteSpf(domain: string, why: string): DnsRecord {
  const owner = fqdn(domain);
  return {
    type: 'TXT', name: owner, ttl: SUGGESTED_TTL, value: '', values: [], purpose: 'spf', required: false, incomplete: why,
    zone: `; ${owner} TXT (SPF) not known yet: ${why.replace(/[\r\n]+/g, ' ')}`,
  };
}

/**
 * The DKIM record of every selector with a key, the SPF record of the route (`spf`; left out
 * when not given, for callers that only look at DKIM) and a DMARC suggestion.
 */
export function dnsRecords(domain: string, state: DkimState, pems: Record<string, string>, spf?: SpfResult): DnsRecord[] {
  const records: DnsRecord[] = [];
  for (const k of state.keys) {
    const pem = pems[k.selector];
    if (!pem) continue;
    records.push(txt(`${k.selector}._domainkey.${domain}`, txtValue(pem, k.algorithm), 'dkim', true, k.selector));
  }
  if (spf) records.push('value' in spf ? txt(domain, spf.value, 'spf', false) : incompleteSpf(domain, spf.incomplete));
  records.push(txt(`_dmarc.${domain}`, `v=DMARC1; p=none; rua=mailto:dmarc-reports@${domain}`, 'dmarc', false));
  return records;
}

/** The records as a zone-file snippet (what `mailfleet dns` prints). */
export function zoneSnippet(domain: string, records: Pick<DnsRecord, 'zone' | 'purpose' | 'required' | 'incomplete'>[]): string {
  const lines = [`; DNS records for ${domain} (MailFleet)`];
  for (const r of records) lines.push(`; ${r.purpose}${r.incomplete !== undefined ? ' (incomplete)' : r.required ? ' (required)' : ' (suggested)'}`, r.zone);
  return `${lines.join('\n')}\n`;
}
