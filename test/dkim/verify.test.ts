// Signatures made by relay/dkim must verify with independent verifiers that fetch the key
// over real DNS from a server on loopback: mailauth's dkimVerify (through a node:dns
// Resolver) and OpenDKIM's libopendkim (the `opendkim -t` test mode, resolving through
// libunbound forwarded to the same server). Tampered messages must fail with both, so a
// verifier that accepted anything would be caught.
import { spawn } from 'node:child_process';
import { Resolver } from 'node:dns/promises';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dkimVerify } from 'mailauth';
import { DkimBodyHasher, dkimTxtRecord, loadDkimKeys, signMessage, type LoadedKey } from '../../relay/dkim/index.ts';
import { startDnsServer, type TestDnsServer } from '../support/dns-server.ts';
import { haveTools } from '../support/tools.ts';
import { makeKeyDir } from './keys-fixture.ts';

const DOMAIN = 'mailfleet-test.example';
const keyDir = makeKeyDir();
let dns: TestDnsServer;
let rsa: LoadedKey;
let ed: LoadedKey;

beforeAll(async () => {
  [rsa, ed] = loadDkimKeys({
    keys: [
      { selector: 'rsa2026', algorithm: 'rsa-sha256', privateKeyFile: keyDir.rsa('rsa.pem') },
      { selector: 'ed2026', algorithm: 'ed25519-sha256', privateKeyFile: keyDir.ed25519('ed.pem') },
    ],
  }) as [LoadedKey, LoadedKey];
  dns = await startDnsServer({
    [`rsa2026._domainkey.${DOMAIN}`]: { TXT: [dkimTxtRecord(rsa)] },
    [`ed2026._domainkey.${DOMAIN}`]: { TXT: [dkimTxtRecord(ed)] },
  });
});
afterAll(async () => {
  await dns?.close();
  keyDir.cleanup();
});

const MESSAGE = [
  'Received: from app.internal by relay; Fri, 27 Nov 2026 10:00:00 +0000',
  `From: "Billing Robot" <billing@${DOMAIN}>`,
  'To: customer@example.org,',
  '  second@example.org',
  'Subject:   Your   invoice\t',
  'Date: Fri, 27 Nov 2026 10:00:00 +0000',
  `Message-ID: <abc.123@${DOMAIN}>`,
  'MIME-Version: 1.0',
  'Content-Type: text/plain; charset=utf-8',
  'X-Unsigned: not in h=',
  '',
  'Hello  there,\t',
  '',
  '.. a line that was dot-stuffed on the wire',
  'trailing blank lines follow',
  '',
  '',
  '',
].join('\r\n');

async function sign(message: string, keys: LoadedKey[], chunk = 13): Promise<string> {
  const raw = Buffer.from(message, 'binary');
  const hasher = new DkimBodyHasher();
  for (let i = 0; i < raw.length; i += chunk) hasher.feed(raw.subarray(i, i + chunk));
  const { headers, bodyHash } = hasher.end();
  return signMessage({ domain: DOMAIN, keys, headerBlock: headers, bodyHash });
}

async function mailauthResults(signed: string) {
  const resolver = new Resolver({ timeout: 2000, tries: 1 });
  resolver.setServers([dns.address]);
  const res = await dkimVerify(Buffer.from(signed, 'binary'), {
    resolver: (name: string, rr: string) => resolver.resolve(name, rr) as Promise<string[][]>,
  });
  return res.results.map((r) => ({ selector: r.selector, result: r.status?.result, algo: r.algo }));
}

describe('mailauth dkimVerify over loopback DNS', () => {
  it('verifies RSA-2048', async () => {
    const sig = await sign(MESSAGE, [rsa]);
    expect(await mailauthResults(sig + MESSAGE)).toEqual([{ selector: 'rsa2026', result: 'pass', algo: 'rsa-sha256' }]);
  });

  it('verifies Ed25519 (RFC 8463)', async () => {
    const sig = await sign(MESSAGE, [ed]);
    expect(await mailauthResults(sig + MESSAGE)).toEqual([{ selector: 'ed2026', result: 'pass', algo: 'ed25519-sha256' }]);
  });

  it('verifies both signatures on one message', async () => {
    const sig = await sign(MESSAGE, [rsa, ed]);
    expect(sig.match(/^DKIM-Signature:/gm)).toHaveLength(2);
    expect(await mailauthResults(sig + MESSAGE)).toEqual([
      { selector: 'rsa2026', result: 'pass', algo: 'rsa-sha256' },
      { selector: 'ed2026', result: 'pass', algo: 'ed25519-sha256' },
    ]);
  });

  it('still verifies after transit adds headers outside h= and re-folds signed ones', async () => {
    const sig = await sign(MESSAGE, [rsa, ed]);
    const transit = 'Received: from relay by mx; Fri, 27 Nov 2026 10:00:01 +0000\r\n' + sig + MESSAGE.replace('Subject:   Your   invoice', 'Subject: Your\r\n invoice');
    const results = await mailauthResults(transit);
    expect(results.map((r) => r.result)).toEqual(['pass', 'pass']);
  });

  it.each([
    ['a changed body', (m: string) => m.replace('Hello', 'Jello')],
    ['a changed signed header', (m: string) => m.replace('Your   invoice', 'Your   lnvoice')],
    ['a second From added (over-signed)', (m: string) => `From: attacker@evil.example\r\n${m}`],
    ['a Reply-To added though there was none (over-signed)', (m: string) => m.replace('Date: Fri', 'Reply-To: x@evil.example\r\nDate: Fri')],
  ])('fails for %s', async (_name, tamper) => {
    const sig = await sign(MESSAGE, [rsa, ed]);
    const results = await mailauthResults(tamper(sig + MESSAGE));
    // mailauth reports a body hash mismatch as neutral, a header mismatch as fail.
    expect(results).toHaveLength(2);
    for (const r of results) expect(['fail', 'neutral']).toContain(r.result);
  });
});

// Debian 12's opendkim-testmsg (2.11.0~beta2) fails every input, signed or not, with
// "dkim_chunk(): Syntax error", so the milter binary's test mode stands in for it.
const haveOpendkim = haveTools('dkim-opendkim', ['opendkim']);

describe.runIf(haveOpendkim)('OpenDKIM (libopendkim) over loopback DNS', () => {
  let conf: string;
  beforeAll(() => {
    const unbound = keyDir.write(
      'unbound.conf',
      // libunbound as a pure stub: everything forwarded to the test server, no recursion.
      `server:\n  do-not-query-localhost: no\n  verbosity: 0\nforward-zone:\n  name: "."\n  forward-addr: 127.0.0.1@${dns.port}\n`,
    );
    conf = keyDir.write('opendkim.conf', `Mode v\nSyslog no\nResolverConfiguration ${unbound}\n`);
  });

  async function opendkim(signedMessage: string): Promise<string> {
    const file = join(keyDir.dir, `msg-${Math.random().toString(36).slice(2)}.eml`);
    writeFileSync(file, signedMessage, 'binary');
    return new Promise((resolve, reject) => {
      const child = spawn('opendkim', ['-x', conf, '-t', file], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout.on('data', (d) => (out += d));
      child.stderr.on('data', (d) => (out += d));
      const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
      child.on('error', reject);
      child.on('close', (code) => {
        clearTimeout(timer);
        if (code !== 0) reject(new Error(`opendkim -t exited ${code}: ${out}`));
        else resolve(out.trim());
      });
    });
  }

  // opendkim -t reports the first signature only, so each key also leads once.
  it.each([
    ['RSA-2048', () => [rsa], /\(s=rsa2026, d=mailfleet-test\.example, 2048-bit key\) succeeded/],
    ['Ed25519', () => [ed], /\(s=ed2026, d=mailfleet-test\.example, .*\) succeeded/],
    ['RSA then Ed25519', () => [rsa, ed], /\(s=rsa2026, .*\) succeeded/],
    ['Ed25519 then RSA', () => [ed, rsa], /\(s=ed2026, .*\) succeeded/],
  ])('verifies %s', async (_name, keys, expected) => {
    const sig = await sign(MESSAGE, keys());
    expect(await opendkim(sig + MESSAGE)).toMatch(expected);
  });

  it.each([
    ['RSA-2048', () => rsa],
    ['Ed25519', () => ed],
  ])('fails a tampered body signed with %s', async (_name, key) => {
    const sig = await sign(MESSAGE, [key()]);
    expect(await opendkim(sig + MESSAGE.replace('Hello', 'Jello'))).toMatch(/failed: (signature verification failed|body hash mismatch)/);
  });
});
