// One sender domain's DKIM settings in the relay config. The operator imports this to
// render the ConfigMap, so it depends on zod only.
import { z } from 'zod';

// RFC 6376 §3.1: selector = sub-domain *( "." sub-domain ), sub-domain as in RFC 5321.
const LABEL = '[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?';
export const SELECTOR_RE = new RegExp(`^${LABEL}(?:\\.${LABEL})*$`);
// RFC 5322 §3.6.8 field-name is printable US-ASCII except the colon; the semicolon is
// refused as well because it would end the h= tag of the signature.
const FIELD_NAME_RE = /^[\x21-\x39\x3c-\x7e]+$/;

/**
 * Header fields signed when present (lower case). mailauth's default list plus
 * List-Unsubscribe-Post, which RFC 8058 §4 requires to be signed for one-click unsubscribe.
 */
export const DEFAULT_SIGNED_HEADERS: readonly string[] = [
  'from', 'sender', 'reply-to', 'subject', 'date', 'message-id', 'to', 'cc',
  'mime-version', 'content-type', 'content-transfer-encoding', 'content-id', 'content-description',
  'resent-date', 'resent-from', 'resent-sender', 'resent-to', 'resent-cc', 'resent-message-id',
  'in-reply-to', 'references',
  'list-id', 'list-help', 'list-unsubscribe', 'list-unsubscribe-post', 'list-subscribe', 'list-post',
  'list-owner', 'list-archive', 'bimi-selector',
];

export const dkimKeySchema = z.strictObject({
  selector: z.string().max(253).regex(SELECTOR_RE, 'not a valid DKIM selector (RFC 6376 §3.1: dot-separated DNS labels)')
    .describe('Selector published in DNS as <selector>._domainkey.<domain>'),
  algorithm: z.enum(['rsa-sha256', 'ed25519-sha256']).describe('Signing algorithm; must match the key'),
  privateKeyFile: z.string().min(1).describe('PEM private key (PKCS#8 or PKCS#1), a mounted Secret'),
});

export const dkimSchema = z.strictObject({
  // Several keys sign in parallel (e.g. RSA for every verifier, Ed25519 per RFC 8463 for
  // those that support it), each with its own DKIM-Signature.
  keys: z.array(dkimKeySchema).min(1).refine(
    (keys) => new Set(keys.map((k) => k.selector.toLowerCase())).size === keys.length,
    'each DKIM key needs its own selector',
  ).describe('Keys that sign in parallel, one DKIM-Signature each (e.g. RSA and Ed25519)'),
  headers: z
    .array(z.string().regex(FIELD_NAME_RE, 'not a header field name'))
    .min(1)
    .transform((names) => [...new Set(names.map((n) => n.toLowerCase()))])
    .refine((names) => names.includes('from'), 'the From header must be signed (RFC 6376 §5.4)')
    .default([...DEFAULT_SIGNED_HEADERS])
    .describe('Header fields signed when present (must include From)'),
  // Lists key headers once more than they occur in h=, so that a copy added in transit
  // (a second From, a new Subject) breaks the signature instead of riding on it.
  overSign: z.boolean().default(true)
    .describe('Sign one more instance of each header than present, so a copy added in transit breaks the signature'),
});

export type DkimConfig = z.output<typeof dkimSchema>;
export type DkimConfigInput = z.input<typeof dkimSchema>;
export type DkimKeyConfig = z.output<typeof dkimKeySchema>;
