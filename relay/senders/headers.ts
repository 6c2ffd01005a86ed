// The addresses in a message's From field, read from the header list the data gate parsed
// (relay/smtp/data-gate.ts): the same parse the DKIM signer uses, so the From that is
// checked is the From that is signed.
import addressparser from 'nodemailer/lib/addressparser';
import type { ParsedHeader } from '../dkim/mailauth-internals.ts';
import { smtpError } from '../smtp/replies.ts';

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

/** '@' signs outside quoted strings, comments and domain literals: one per address in a well-formed list. */
export function bareAtSigns(value: string): number {
  let n = 0;
  let comment = 0;
  let quoted = false;
  let literal = false;
  for (let i = 0; i < value.length; i++) {
    const c = value[i];
    if (c === '\\' && (quoted || comment > 0 || literal)) { i++; continue; }
    if (quoted) { if (c === '"') quoted = false; continue; }
    if (comment > 0) { if (c === '(') comment++; else if (c === ')') comment--; continue; }
    if (literal) { if (c === ']') literal = false; continue; }
    if (c === '"') quoted = true;
    else if (c === '(') comment = 1;
    else if (c === '[') literal = true;
    else if (c === '@') n++;
  }
  return n;
}

/**
 * Every address in the From field(s) (the gate lets exactly one field through). A value
 * the parser had to guess at is refused (550 5.7.1): addressparser reads
 * `<x@b.test> <ceo@bank.test>` or `ceo@bank.test <x@b.test>` as one address, x@b.test,
 * with the other as its name — where a mail client may well show ceo@bank.test. So every
 * '@' outside quotes, comments and domain literals must belong to an address it found.
 */
export function headerFromAddresses(fields: readonly ParsedHeader[]): string[] {
  const out: string[] = [];
  for (const f of fields) {
    if (f.key !== 'from') continue;
    const line = f.line.toString('utf8');
    // The value starts after the first colon (the name may carry obsolete WSP before it);
    // a fold is CRLF + WSP, and unfolding removes the CRLF (RFC 5322 §2.2.3).
    const value = line.slice(line.indexOf(':') + 1).replace(/\r\n(?=[ \t])/g, '');
    const addresses = fromValueAddresses(value);
    if (addresses.length > 0 && bareAtSigns(value) !== addresses.length) {
      throw smtpError(550, '5.7.1', 'The From header is not a well-formed address list: an address outside quotes is not one the header names');
    }
    out.push(...addresses);
  }
  return out;
}
