// Typed access to the pieces of mailauth's DKIM signer that the relay reuses: header
// parsing, header selection and relaxed header canonicalization, and the formatting of the
// DKIM-Signature field. These are mailauth's own well-tested code paths; only the key
// handling (parsed once, not per message) and the signing call (async, off the event loop)
// are the relay's. mailauth exposes them as CommonJS files without type declarations, so
// the shapes used are declared here, narrowly. Its public dkimSign() cannot be used
// instead: it parses the PEM key and signs synchronously on the event loop for every
// message. test/unit/dependency-guards.test.ts fails if these files become unreachable
// (an exports map) or if signing through them stops matching dkimSign() byte for byte.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

export interface ParsedHeader {
  key: string | null;
  casedKey: string | undefined;
  line: Buffer;
}

export interface SigningHeaderLines {
  /** The h= value, names joined with ': '. */
  keys: string;
  headers: ParsedHeader[];
}

export interface DkimSignatureTags {
  a: string;
  c: string;
  s: string;
  d: string;
  h: string;
  bh: string;
  t?: number | null;
  b?: string;
}

interface Tools {
  parseHeaders(buf: Buffer): { parsed: ParsedHeader[]; original: Buffer };
  formatSignatureHeaderLine(type: 'DKIM', values: DkimSignatureTags, folded: boolean): string;
}

interface RelaxedHeaderModule {
  relaxedHeaders(
    type: 'DKIM',
    signingHeaderLines: SigningHeaderLines,
    options: {
      signingDomain: string;
      selector: string;
      algorithm: string;
      canonicalization: string;
      bodyHash: string;
      timestamp: number;
    },
  ): { canonicalizedHeader: Buffer; signatureHeaderLine: string; dkimHeaderOpts: DkimSignatureTags };
}

interface SyntaxModule {
  DOMAIN_NAME: RegExp;
  SELECTOR: RegExp;
}

const tools = require('mailauth/lib/tools.js') as Tools;
const relaxed = require('mailauth/lib/dkim/header/relaxed.js') as RelaxedHeaderModule;
const syntax = require('mailauth/lib/dkim/syntax.js') as SyntaxModule;

export const parseHeaders = tools.parseHeaders;
export const formatSignatureHeaderLine = tools.formatSignatureHeaderLine;
export const relaxedHeaders = relaxed.relaxedHeaders;
export const DKIM_DOMAIN_NAME = syntax.DOMAIN_NAME;
