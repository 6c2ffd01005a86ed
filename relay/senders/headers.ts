// The addresses in a message's From field, read from the header list the data gate parsed
// (relay/smtp/data-gate.ts): the same parse the DKIM signer uses, so the From that is
// checked is the From that is signed.
import addressparser from 'nodemailer/lib/addressparser';
import type { ParsedHeader } from '../dkim/mailauth-internals.ts';

// The common From values — a bare addr-spec or one in angle brackets, of dot-atoms only
// (RFC 5322 §3.2.3): no quotes, comments, display name, group or list — read without
// addressparser, which cost ~35 µs per message for them. Whatever else goes to it; a
// test holds both ways to the same answers.
const ATOM = "[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+";
const DOT_ATOM = `${ATOM}(?:\\.${ATOM})*`;
const SIMPLE_FROM = new RegExp(`^[ \\t]*(?:<(${DOT_ATOM}@${DOT_ATOM})>|(${DOT_ATOM}@${DOT_ATOM}))[ \\t]*$`);

/** The addresses of one From field's value (unfolded), as nodemailer's addressparser reads them. */
export function fromValueAddresses(value: string): string[] {
  const simple = SIMPLE_FROM.exec(value);
  if (simple) return [(simple[1] ?? simple[2])!];
  const out: string[] = [];
  for (const a of addressparser(value, { flatten: true })) if (a.address) out.push(a.address);
  return out;
}

/** Every address in the From field(s) (the gate lets exactly one field through). */
export function headerFromAddresses(fields: readonly ParsedHeader[]): string[] {
  const out: string[] = [];
  for (const f of fields) {
    if (f.key !== 'from') continue;
    const line = f.line.toString('utf8');
    // The value starts after the first colon (the name may carry obsolete WSP before it);
    // a fold is CRLF + WSP, and unfolding removes the CRLF (RFC 5322 §2.2.3).
    const value = line.slice(line.indexOf(':') + 1).replace(/\r\n(?=[ \t])/g, '');
    out.push(...fromValueAddresses(value));
  }
  return out;
}
