// Config schema and key loading: what an operator gets wrong must fail at load with the
// file and the problem named, never with key material in the message.
import { generateKeyPairSync } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import pino from 'pino';
import { dkimSchema, DEFAULT_SIGNED_HEADERS } from '../../../relay/dkim/schema.ts';
import { DkimKeyError, dkimTxtRecord, dkimTxtStrings, loadDkimKeys } from '../../../relay/dkim/keys.ts';
import { makeKeyDir } from '../../dkim/keys-fixture.ts';

const keys = makeKeyDir();
afterAll(() => keys.cleanup());

describe('dkimSchema', () => {
  it('fills the defaults', () => {
    const cfg = dkimSchema.parse({ keys: [{ selector: 'mf2026', algorithm: 'rsa-sha256', privateKeyFile: '/k' }] });
    expect(cfg.overSign).toBe(true);
    expect(cfg.headers).toEqual([...DEFAULT_SIGNED_HEADERS]);
  });

  it.each([
    ['a bad selector', { keys: [{ selector: 'bad_sel', algorithm: 'rsa-sha256', privateKeyFile: '/k' }] }],
    ['a selector with a trailing dot', { keys: [{ selector: 'a.', algorithm: 'rsa-sha256', privateKeyFile: '/k' }] }],
    ['an unknown algorithm', { keys: [{ selector: 'a', algorithm: 'rsa-sha1', privateKeyFile: '/k' }] }],
    ['no keys', { keys: [] }],
    ['two keys with one selector', { keys: [{ selector: 'a', algorithm: 'rsa-sha256', privateKeyFile: '/k' }, { selector: 'A', algorithm: 'ed25519-sha256', privateKeyFile: '/j' }] }],
    ['a header list without From', { keys: [{ selector: 'a', algorithm: 'rsa-sha256', privateKeyFile: '/k' }], headers: ['to', 'subject'] }],
    ['a header name with a semicolon', { keys: [{ selector: 'a', algorithm: 'rsa-sha256', privateKeyFile: '/k' }], headers: ['from', 'x;y'] }],
  ])('refuses %s', (_name, input) => {
    expect(dkimSchema.safeParse(input).success).toBe(false);
  });

  it('accepts dotted selectors and lower-cases header names', () => {
    const cfg = dkimSchema.parse({ keys: [{ selector: 'mf.2026-01', algorithm: 'ed25519-sha256', privateKeyFile: '/k' }], headers: ['From', 'Subject', 'from'] });
    expect(cfg.headers).toEqual(['from', 'subject']);
  });
});

describe('loadDkimKeys', () => {
  it('loads RSA and Ed25519 keys into KeyObjects', () => {
    const loaded = loadDkimKeys({
      keys: [
        { selector: 'r', algorithm: 'rsa-sha256', privateKeyFile: keys.rsa('r.pem') },
        { selector: 'e', algorithm: 'ed25519-sha256', privateKeyFile: keys.ed25519('e.pem') },
      ],
    });
    expect(loaded.map((k) => [k.selector, k.privateKey.asymmetricKeyType, k.bits])).toEqual([
      ['r', 'rsa', 2048],
      ['e', 'ed25519', undefined],
    ]);
  });

  const load = (selector: string, algorithm: 'rsa-sha256' | 'ed25519-sha256', privateKeyFile: string) => () =>
    loadDkimKeys({ keys: [{ selector, algorithm, privateKeyFile }] });

  it('names the file when it is missing', () => {
    expect(load('s', 'rsa-sha256', '/nonexistent/dkim.pem')).toThrow(/\/nonexistent\/dkim\.pem \(selector s\): cannot read the file \(ENOENT\)/);
  });

  it('refuses a key of the wrong type for its algorithm, both ways', () => {
    const ed = keys.ed25519('wrong1.pem');
    const rsa = keys.rsa('wrong2.pem');
    expect(load('s', 'rsa-sha256', ed)).toThrow(new RegExp(`${ed}.*needs an RSA key, the file holds a ed25519 key`));
    expect(load('s', 'ed25519-sha256', rsa)).toThrow(/needs an Ed25519 key, the file holds a rsa key/);
  });

  it('refuses RSA under 1024 bits and warns under 2048', () => {
    expect(load('s', 'rsa-sha256', keys.rsa('short.pem', 768))).toThrow(/768 bits is too short/);
    const lines: string[] = [];
    const log = pino({ level: 'warn' }, { write: (l: string) => void lines.push(l) });
    loadDkimKeys({ keys: [{ selector: 's', algorithm: 'rsa-sha256', privateKeyFile: keys.rsa('weak.pem', 1024) }] }, log);
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0]!)).toMatchObject({ bits: 1024, selector: 's', msg: expect.stringMatching(/shorter than 2048/) });
  });

  it('refuses garbage and encrypted PEMs without echoing their content', () => {
    const garbage = keys.write('garbage.pem', '-----BEGIN PRIVATE KEY-----\nSECRETSTUFF\n-----END PRIVATE KEY-----\n');
    let err: unknown;
    try {
      load('s', 'rsa-sha256', garbage)();
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(DkimKeyError);
    expect((err as Error).message).toMatch(/garbage\.pem .*not a usable PEM private key/);
    expect((err as Error).message).not.toMatch(/SECRETSTUFF/);

    const enc = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({
      type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'pw',
    }) as string;
    expect(load('s', 'rsa-sha256', keys.write('enc.pem', enc))).toThrow(/the key is encrypted; passphrase-protected keys are not supported/);
  });
});

describe('dkimTxtRecord', () => {
  it('publishes Ed25519 as the raw 32-byte key (RFC 8463) and RSA as SubjectPublicKeyInfo', () => {
    const [rsa, ed] = loadDkimKeys({
      keys: [
        { selector: 'r', algorithm: 'rsa-sha256', privateKeyFile: keys.rsa('t1.pem') },
        { selector: 'e', algorithm: 'ed25519-sha256', privateKeyFile: keys.ed25519('t2.pem') },
      ],
    });
    const edRec = dkimTxtRecord(ed!);
    expect(edRec).toMatch(/^v=DKIM1; k=ed25519; p=[A-Za-z0-9+/]{43}=$/);
    const raw = Buffer.from(edRec.split('p=')[1]!, 'base64');
    expect(raw).toEqual(ed!.publicKey.export({ type: 'spki', format: 'der' }).subarray(-32));

    const rsaRec = dkimTxtRecord(rsa!);
    expect(rsaRec.startsWith('v=DKIM1; k=rsa; p=MIIBIjAN')).toBe(true); // SPKI DER of a 2048-bit key
    const strings = dkimTxtStrings(rsa!);
    expect(strings.length).toBe(2);
    expect(strings.every((s) => s.length <= 255)).toBe(true);
    expect(strings.join('')).toBe(rsaRec);
  });
});
