// Relaxed body canonicalization (RFC 6376 §3.4.4) and the header/body split, checked
// against the RFC's own example, hand-computed vectors, every chunk boundary, and
// mailauth's RelaxedHash as an independent oracle on random inputs.
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { RelaxedBodyHash } from '../../../relay/dkim/relaxed-body.ts';
import { DkimBodyHasher, DkimInputError } from '../../../relay/dkim/body-hasher.ts';
import { seededRandom } from '../../support/random.ts';

const require = createRequire(import.meta.url);
const { RelaxedHash } = require('mailauth/lib/dkim/body/relaxed.js') as {
  RelaxedHash: new (algo: string) => { update(chunk: Buffer | null, final?: boolean): void; digest(enc: 'base64'): string };
};

const sha = (s: string) => createHash('sha256').update(Buffer.from(s, 'binary')).digest('base64');
const EMPTY_HASH = '47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=';

function relaxed(chunks: (string | Buffer)[]): string {
  const h = new RelaxedBodyHash();
  for (const c of chunks) h.update(typeof c === 'string' ? Buffer.from(c, 'binary') : c);
  return h.digest();
}

function mailauthRelaxed(body: Buffer): string {
  const h = new RelaxedHash('sha256');
  h.update(body);
  return h.digest('base64');
}


describe('relaxed body canonicalization', () => {
  it('matches the RFC 6376 §3.4.5 example', () => {
    const body = ' C \r\nD \t E\r\n\r\n\r\n';
    expect(relaxed([body])).toBe(sha(' C\r\nD E\r\n'));
  });

  it.each([
    ['empty body', '', ''],
    ['only line breaks', '\r\n\r\n\r\n', ''],
    ['only whitespace lines', ' \t \r\n\t\r\n  ', ''],
    ['no final line break', 'abc', 'abc\r\n'],
    ['trailing whitespace on the last unterminated line', 'abc \t ', 'abc\r\n'],
    ['trailing blank lines dropped, inner kept', 'a\r\n\r\n\r\nb\r\n\r\n\r\n', 'a\r\n\r\n\r\nb\r\n'],
    ['whitespace runs reduced, leading kept as one SP', '\t\t a  \t b\t\r\n', ' a b\r\n'],
    ['bare LF read as a line break', 'a\nb \n\n', 'a\r\nb\r\n'],
    ['bare CR is content', 'a\rb\r\n', 'a\rb\r\n'],
    ['CR CR LF keeps one CR as content', 'a\r\r\n', 'a\r\r\n'],
    ['CR at the very end is content', 'a \r', 'a \r\r\n'],
    ['whitespace-only line between content lines becomes empty', 'a\r\n \t \r\nb', 'a\r\n\r\nb\r\n'],
  ])('%s', (_name, body, canonical) => {
    expect(relaxed([body])).toBe(canonical === '' ? EMPTY_HASH : sha(canonical));
  });

  it('gives the same hash at every single and double chunk boundary', () => {
    const body = Buffer.from(' C \r\nD \t E\r\n\r\nx  \t\r\r\n\ty\r\n \r\n\r\n\r\n', 'binary');
    const expected = mailauthRelaxed(body);
    expect(relaxed([body])).toBe(expected);
    for (let i = 0; i <= body.length; i++) {
      expect(relaxed([body.subarray(0, i), body.subarray(i)]), `split at ${i}`).toBe(expected);
      for (let j = i; j <= body.length; j++) {
        expect(relaxed([body.subarray(0, i), body.subarray(i, j), body.subarray(j)]), `split at ${i},${j}`).toBe(expected);
      }
    }
    // one byte at a time
    expect(relaxed([...body].map((b) => Buffer.of(b)))).toBe(expected);
  });

  it('agrees with mailauth RelaxedHash on random bodies split at random points', () => {
    const alphabet = ['a', 'b', ' ', ' ', '\t', '\r\n', '\r\n', '\n', '\r', '.'];
    const seed = 20261127;
    const rnd = seededRandom(seed); // reproducible from the printed seed
    for (let n = 0; n < 1500; n++) {
      const len = Math.floor(rnd() * 40);
      let s = '';
      for (let k = 0; k < len; k++) s += alphabet[Math.floor(rnd() * alphabet.length)];
      const body = Buffer.from(s, 'binary');
      const cut = Math.floor(rnd() * (body.length + 1));
      expect(relaxed([body.subarray(0, cut), body.subarray(cut)]), `seed ${seed} case ${n}: ${JSON.stringify(s)}`).toBe(
        mailauthRelaxed(body),
      );
    }
  });
});

describe('DkimBodyHasher', () => {
  const headers = 'From: a@example.com\r\nSubject: x\r\n  folded\r\n';
  const body = 'Hello  world \r\n\r\n';

  it('splits headers from body at every chunk boundary (CRLF)', () => {
    const msg = Buffer.from(`${headers}\r\n${body}`);
    for (let i = 0; i <= msg.length; i++) {
      const h = new DkimBodyHasher();
      h.feed(msg.subarray(0, i));
      h.feed(msg.subarray(i));
      const r = h.end();
      expect(r.headers.toString(), `split at ${i}`).toBe(headers);
      expect(r.bodyHash, `split at ${i}`).toBe(sha('Hello world\r\n'));
      expect(r.messageBytes).toBe(msg.length);
    }
  });

  it('splits on a bare-LF blank line too', () => {
    const h = new DkimBodyHasher();
    h.feed(Buffer.from('From: a@example.com\nTo: b@example.org\n\nbody\n'));
    const r = h.end();
    expect(r.headers.toString()).toBe('From: a@example.com\nTo: b@example.org\n');
    expect(r.bodyHash).toBe(sha('body\r\n'));
  });

  it('treats a message without a blank line as all header, empty body', () => {
    const h = new DkimBodyHasher();
    h.feed(Buffer.from('From: a@example.com\r\nSubject: s\r\n'));
    const r = h.end();
    expect(r.headers.toString()).toBe('From: a@example.com\r\nSubject: s\r\n');
    expect(r.bodyHash).toBe(EMPTY_HASH);
  });

  it('does not take a CR inside a header line for the end of the headers', () => {
    const h = new DkimBodyHasher();
    h.feed(Buffer.from('From: a@example.com\r\n\rX: y\r\n\r\nb'));
    const r = h.end();
    expect(r.headers.toString()).toBe('From: a@example.com\r\n\rX: y\r\n');
    expect(r.bodyHash).toBe(sha('b\r\n'));
  });

  it('refuses a header block over the limit, and not one at it', () => {
    const line = `X-Pad: ${'p'.repeat(91)}\r\n`; // 100 bytes
    const ok = new DkimBodyHasher({ maxHeaderBytes: 1002 });
    ok.feed(Buffer.from(line.repeat(10) + '\r\n'));
    expect(ok.end().headers.length).toBe(1000);

    const h = new DkimBodyHasher({ maxHeaderBytes: 1000 });
    h.feed(Buffer.from(line.repeat(9)));
    let caught: unknown;
    try {
      h.feed(Buffer.from(line.repeat(2)));
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(DkimInputError);
    expect((caught as DkimInputError).code).toBe('EHEADERTOOLARGE');
  });
});
