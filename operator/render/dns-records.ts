// The DNS records a SenderDomain asks its owner to publish: the DKIM TXT record of every
// selector with a key (required), and SPF and DMARC suggestions (not required).
import { createPrivateKey, createPublicKey } from 'node:crypto';
import { dkimTxtRecord } from '../../relay/dkim/keys.ts';
import type { DnsRecord } from '../api/senderdomain.ts';
import type { DkimState, KeyAlgorithm } from './dkim.ts';

export function txtValue(pem: string, algorithm: KeyAlgorithm): string {
  return dkimTxtRecord({ algorithm, publicKey: createPublicKey(createPrivateKey(pem)) });
}

export function dnsRecords(domain: string, state: DkimState, pems: Record<string, string>): DnsRecord[] {
  const records: DnsRecord[] = [];
  for (const k of state.keys) {
    const pem = pems[k.selector];
    if (!pem) continue;
    records.push({ type: 'TXT', name: `${k.selector}._domainkey.${domain}`, value: txtValue(pem, k.algorithm), purpose: 'dkim', required: true });
  }
  records.push({ type: 'TXT', name: domain, value: 'v=spf1 a mx ~all', purpose: 'spf', required: false });
  records.push({ type: 'TXT', name: `_dmarc.${domain}`, value: `v=DMARC1; p=none; rua=mailto:dmarc-reports@${domain}`, purpose: 'dmarc', required: false });
  return records;
}
