// The addresses in a message's From field, read from the header list the data gate parsed
// (relay/smtp/data-gate.ts): the same parse the DKIM signer uses, so the From that is
// checked is the From that is signed.
import addressparser from 'nodemailer/lib/addressparser';
import type { ParsedHeader } from '../dkim/mailauth-internals.ts';

/** Every address in the From field(s) (the gate lets exactly one field through). */
export function headerFromAddresses(fields: readonly ParsedHeader[]): string[] {
  const out: string[] = [];
  for (const f of fields) {
    if (f.key !== 'from') continue;
    const line = f.line.toString('utf8');
    // The value starts after the first colon (the name may carry obsolete WSP before it);
    // a fold is CRLF + WSP, and unfolding removes the CRLF (RFC 5322 §2.2.3).
    const value = line.slice(line.indexOf(':') + 1).replace(/\r\n(?=[ \t])/g, '');
    for (const a of addressparser(value, { flatten: true })) if (a.address) out.push(a.address);
  }
  return out;
}
