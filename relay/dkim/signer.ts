// Turns a message's header block and relaxed body hash into DKIM-Signature fields, one per
// key, ready to prepend to the spooled message at delivery. The header side (parsing,
// selection, relaxed canonicalization, formatting) is mailauth's; keys are parsed once
// (keys.ts) and the private-key operation goes through crypto.sign's callback form, which
// runs it on libuv's thread pool instead of the event loop.
import { createHash, sign, type KeyObject } from 'node:crypto';
import { domainToASCII } from 'node:url';
import type { LoadedKey } from './keys.ts';
import { DEFAULT_SIGNED_HEADERS } from './schema.ts';
import {
  DKIM_DOMAIN_NAME,
  formatSignatureHeaderLine,
  parseHeaders,
  relaxedHeaders,
  type ParsedHeader,
  type SigningHeaderLines,
} from './mailauth-internals.ts';

// Over-signed even when absent: adding any of these in transit (a second From, a Reply-To
// pointing elsewhere, a new recipient or Subject) must break the signature.
const ALWAYS_OVERSIGN = new Set(['from', 'reply-to', 'subject', 'to', 'cc']);
// Over-signed when the message has them: a second copy must not be addable, but listing
// them when absent would only lengthen h= without protecting anything readers look at.
const OVERSIGN_IF_PRESENT = new Set([
  'sender', 'date', 'message-id', 'mime-version', 'content-type', 'content-transfer-encoding',
  'in-reply-to', 'references', 'list-unsubscribe', 'list-unsubscribe-post',
]);

export class DkimSignError extends Error {
  readonly code: 'ENOFROM' | 'EINVALIDDOMAIN' | 'ENOKEYS' | 'ESIGN';
  constructor(message: string, code: DkimSignError['code'], cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = 'DkimSignError';
    this.code = code;
  }
}

export interface SignMessageOptions {
  /** d= : the signing domain (an IDN is converted to its A-label). */
  domain: string;
  keys: readonly LoadedKey[];
  /** The header block from DkimBodyHasher.end() or the intake's data gate. */
  headerBlock: Buffer;
  /** The same block already parsed (the data gate's list): not parsed a second time. */
  fields?: readonly ParsedHeader[];
  /** bh= : DkimBodyHasher.end().bodyHash (relaxed, SHA-256). */
  bodyHash: string;
  /** Header fields to sign (lower case); DkimConfig.headers. */
  signedHeaders?: readonly string[];
  /** DkimConfig.overSign; default true. */
  overSign?: boolean;
  /** t= ; default now. */
  time?: Date;
}

/** Returns the DKIM-Signature field(s), folded, each CRLF-terminated, in key order. */
export async function signMessage(opts: SignMessageOptions): Promise<string> {
  if (opts.keys.length === 0) throw new DkimSignError('no DKIM keys to sign with', 'ENOKEYS');
  const domain = domainToASCII(opts.domain.trim().replace(/\.$/, '')).toLowerCase();
  if (!domain || !DKIM_DOMAIN_NAME.test(domain)) {
    throw new DkimSignError(`cannot sign for ${JSON.stringify(opts.domain)}: not a valid domain name`, 'EINVALIDDOMAIN');
  }
  const parsed = opts.fields ?? parseHeaders(opts.headerBlock).parsed;
  const lines = selectHeaders(parsed, opts.signedHeaders ?? DEFAULT_SIGNED_HEADERS, opts.overSign ?? true);
  if (!lines.headers.some((h) => h.key === 'from')) {
    // RFC 6376 §5.4 and §6.1.1: a signature without From is worthless to every verifier.
    throw new DkimSignError(`cannot DKIM-sign for ${domain}: the message has no From header`, 'ENOFROM');
  }
  const timestamp = Math.floor((opts.time ?? new Date()).getTime() / 1000);
  const fields = await Promise.all(opts.keys.map((key) => signOne(key, domain, lines, opts.bodyHash, timestamp)));
  return fields.map((f) => `${f}\r\n`).join('');
}

async function signOne(key: LoadedKey, domain: string, lines: SigningHeaderLines, bodyHash: string, timestamp: number): Promise<string> {
  const { canonicalizedHeader, dkimHeaderOpts } = relaxedHeaders('DKIM', lines, {
    signingDomain: domain,
    selector: key.selector,
    algorithm: key.algorithm,
    canonicalization: 'relaxed/relaxed',
    bodyHash,
    timestamp,
  });
  let signature: Buffer;
  try {
    signature =
      key.algorithm === 'rsa-sha256'
        ? await signAsync('sha256', canonicalizedHeader, key.privateKey)
        : // RFC 8463 §3: PureEdDSA over the SHA-256 hash of the canonicalized header data.
          await signAsync(null, createHash('sha256').update(canonicalizedHeader).digest(), key.privateKey);
  } catch (err) {
    throw new DkimSignError(`DKIM signing with ${key.file} (selector ${key.selector}) failed: ${String(err)}`, 'ESIGN', err);
  }
  // Folding differs from the line that was hashed only at whitespace, which relaxed
  // canonicalization collapses, and inside b=, which verifiers empty before hashing.
  return formatSignatureHeaderLine('DKIM', { ...dkimHeaderOpts, b: signature.toString('base64') }, true).replace(/\r?\n/g, '\r\n');
}

function signAsync(algorithm: string | null, data: Buffer, key: KeyObject): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    sign(algorithm, data, key, (err, sig) => (err ? reject(err) : resolve(sig)));
  });
}

/**
 * The header fields the signature covers, bottom-up as RFC 6376 §5.4.2 has verifiers pick
 * them, plus the over-signed names (which match no further instance, so they sign "no
 * more of these").
 */
export function selectHeaders(parsed: readonly ParsedHeader[], signed: readonly string[], overSign: boolean): SigningHeaderLines {
  const wanted = new Set(signed.map((n) => n.toLowerCase()));
  const headers: ParsedHeader[] = [];
  const names: string[] = [];
  const present = new Set<string>();
  for (let i = parsed.length - 1; i >= 0; i--) {
    const h = parsed[i]!;
    if (h.key && wanted.has(h.key)) {
      headers.push(h);
      names.push((h.casedKey ?? h.key).trim());
      present.add(h.key);
    }
  }
  if (overSign) {
    for (const name of wanted) {
      if (ALWAYS_OVERSIGN.has(name) || (OVERSIGN_IF_PRESENT.has(name) && present.has(name))) names.push(name);
    }
  }
  return { keys: names.join(': '), headers };
}
