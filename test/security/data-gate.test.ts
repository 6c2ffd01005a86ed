// The data gate alone (a pure unit): line endings, header block rules, Bcc, sizes, and
// that the verdict does not depend on how DATA was chunked.
import { describe, expect, it } from 'vitest';
import { DataGate, type DataGateOptions } from '../../relay/smtp/data-gate.ts';

const defaults: DataGateOptions = { bareLineEndings: 'reject', maxHeaderBytes: 1024 * 1024, maxMessageBytes: 10 * 1024 * 1024 };

async function run(message: string | Buffer, opts: Partial<DataGateOptions> = {}, chunkSize = Infinity) {
  const gate = new DataGate({ ...defaults, ...opts });
  const input = Buffer.isBuffer(message) ? message : Buffer.from(message, 'latin1');
  const chunks: Buffer[] = [];
  for (let i = 0; i < input.length; i += Math.min(chunkSize, input.length)) chunks.push(input.subarray(i, i + chunkSize));
  const body: Buffer[] = [];
  gate.onBody = (c) => body.push(Buffer.from(c));
  const out: Buffer[] = [];
  try {
    for await (const c of gate.filter((async function* () { yield* chunks; })())) out.push(Buffer.from(c));
  } catch (err) {
    return { error: (err as Error).message, code: (err as { responseCode?: number }).responseCode, out: Buffer.concat(out).toString('latin1') };
  }
  return { out: Buffer.concat(out).toString('latin1'), body: Buffer.concat(body).toString('latin1'), gate };
}

const ok = 'From: x@b.test\r\nTo: y@d.test\r\nSubject: hi\r\n\r\nbody line\r\nmore\r\n';

describe('data gate', () => {
  it('refuses the odd header forms an attacker tries next to an aligned From, whatever the chunking', async () => {
    const cases: [string, string][] = [
      ['From: x@b.test\r\nFROM \t : ceo@bank.test\r\n\r\nx\r\n', '5.7.1'],     // obsolete WSP before the colon, other case
      ['From: x@b.test\r\nFr\x00om: ceo@bank.test\r\n\r\nx\r\n', '5.6.0'],       // NUL inside the field name
      ['From: x@b.test\r\nFr\xe9om: ceo@bank.test\r\n\r\nx\r\n', '5.6.0'],       // 8-bit byte inside the field name
      ['From: x@b.test\r\nFrom ceo@bank.test\r\n\r\nx\r\n', '5.6.0'],            // no colon at all
      [' From: ceo@bank.test\r\nFrom: x@b.test\r\n\r\nx\r\n', '5.6.0'],          // a fold with nothing to fold onto
      ['From: x@b.test\r\n\r\nbody\r', '5.6.11'],                                // a bare CR as the very last byte
    ];
    for (const [message, code] of cases) {
      for (const size of [1, 5, Infinity]) {
        const r = await run(message, {}, size);
        expect(r.error, JSON.stringify(message)).toContain(code);
      }
    }
  });

  it('passes a well-formed message through unchanged, whatever the chunking', async () => {
    for (const size of [1, 2, 3, 7, 64, Infinity]) {
      const r = await run(ok, {}, size);
      expect(r.error).toBeUndefined();
      expect(r.out).toBe(ok);
      expect(r.body).toBe('body line\r\nmore\r\n');
      expect(r.gate!.headers!.block.toString()).toBe('From: x@b.test\r\nTo: y@d.test\r\nSubject: hi\r\n');
      expect(r.gate!.headers!.fields.map((f) => f.key)).toEqual(['from', 'to', 'subject']);
    }
  });

  it('gives the same verdict and the same bytes for a split at every position (CR held back, blank line straddling chunks)', async () => {
    const forged = 'X-A: b\rFrom: ceo@bank.test\r\nFrom: x@b.test\r\n\r\nbody\r\n';
    for (let at = 1; at < ok.length; at++) {
      const gate = new DataGate(defaults);
      const parts = [Buffer.from(ok.slice(0, at), 'latin1'), Buffer.from(ok.slice(at), 'latin1')];
      const out: Buffer[] = [];
      for await (const c of gate.filter((async function* () { yield* parts; })())) out.push(Buffer.from(c));
      expect(Buffer.concat(out).toString('latin1'), `split at ${at}`).toBe(ok);
      expect(gate.headers?.fields.map((f) => f.key)).toEqual(['from', 'to', 'subject']);
    }
    for (let at = 1; at < forged.length; at++) {
      const gate = new DataGate(defaults);
      const parts = [Buffer.from(forged.slice(0, at), 'latin1'), Buffer.from(forged.slice(at), 'latin1')];
      const drained = (async () => { for await (const _ of gate.filter((async function* () { yield* parts; })())); })();
      await expect(drained, `split at ${at}`).rejects.toMatchObject({ responseCode: 550 });
    }
  });

  it('refuses a bare CR or a bare LF anywhere with 550 5.6.11 (reject, the default)', async () => {
    const attacks = [
      'X-A: b\rFrom: "Bank CEO" <ceo@bank.test>\r\nTo: v@d.test\r\nX-B: c\r\r\nFrom: x@b.test\r\n\r\nbody\r\n',
      'From: x@b.test\nFrom: ceo@bank.test\r\n\r\nbody\r\n',
      'From: x@b.test\r\n\r\nbody with a bare CR\r here\r\n',
      'From: x@b.test\r\n\r\nbody with a bare LF\n here\r\n',
      'From: x@b.test\r\n\r\nends in a bare CR\r',
    ];
    for (const m of attacks) {
      for (const size of [1, 5, Infinity]) {
        const r = await run(m, {}, size);
        expect(r.code, JSON.stringify(m)).toBe(550);
        expect(r.error).toMatch(/^5\.6\.11 Message contains a bare (CR|LF)/);
      }
    }
  });

  it('normalize turns each bare CR and LF into CRLF before the header rules apply', async () => {
    // Read as the next hop reads it: the forged From is a field, and the "\r\r\n" ends the
    // header block, so the aligned From is body. The policy sees that forged From.
    const forged = 'X-A: b\rFrom: "Bank CEO" <ceo@bank.test>\r\nTo: v@d.test\r\nX-B: c\r\r\nFrom: x@b.test\r\n\r\nbody\r\n';
    const r = await run(forged, { bareLineEndings: 'normalize' }, 3);
    expect(r.error).toBeUndefined();
    expect(r.gate!.headers!.fields.map((f) => f.key)).toEqual(['x-a', 'from', 'to', 'x-b']);
    expect(r.gate!.headers!.fields[1]!.line.toString()).toBe('From: "Bank CEO" <ceo@bank.test>');
    expect(r.out).toBe('X-A: b\r\nFrom: "Bank CEO" <ceo@bank.test>\r\nTo: v@d.test\r\nX-B: c\r\n\r\nFrom: x@b.test\r\n\r\nbody\r\n');
    const fine = await run('From: x@b.test\nSubject: s\r\n\nline1\rline2\nline3\r\n', { bareLineEndings: 'normalize' }, 2);
    expect(fine.out).toBe('From: x@b.test\r\nSubject: s\r\n\r\nline1\r\nline2\r\nline3\r\n');
    expect(fine.body).toBe('line1\r\nline2\r\nline3\r\n');
    expect(fine.gate!.normalized).toBe(true);
  });

  it('finds a From written with obsolete whitespace before the colon or folded', async () => {
    for (const second of ['From : ceo@bank.test', 'From\t: ceo@bank.test', 'FROM:\r\n ceo@bank.test']) {
      const r = await run(`From: x@b.test\r\n${second}\r\n\r\nbody\r\n`);
      expect(r.error, second).toMatch(/^5\.7\.1 The message has 2 From header fields/);
    }
    const none = await run('Subject: no from\r\n\r\nbody\r\n');
    expect(none.error).toMatch(/^5\.7\.1 The message has no From header field/);
  });

  it('refuses a header line that is neither a field nor a fold (receivers disagree about it)', async () => {
    for (const bad of ['From: x@b.test\r\nnot a header\r\nFrom: ceo@bank.test\r\n\r\nb\r\n', ' folded first: x\r\nFrom: x@b.test\r\n\r\nb\r\n', 'From: x@b.test\r\nFrom\u0000: ceo@bank.test\r\n\r\nb\r\n']) {
      const r = await run(bad);
      expect(r.code, bad).toBe(550);
      expect(r.error).toMatch(/^5\.6\.0 Malformed header line/);
    }
  });

  it('refuses a header block over maxHeaderBytes with 552 5.3.4, with or without a blank line', async () => {
    const big = `From: x@b.test\r\n${'X-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n'.repeat(100)}`;
    for (const m of [`${big}\r\nbody\r\n`, big]) {
      for (const size of [100, Infinity]) {
        const r = await run(m, { maxHeaderBytes: 2048 }, size);
        expect(r.code).toBe(552);
        expect(r.error).toMatch(/^5\.3\.4 Message header block exceeds 2048 bytes/);
        expect(r.out).toBe('');
      }
    }
    expect((await run(`${big}\r\nbody\r\n`, { maxHeaderBytes: 8192 })).error).toBeUndefined();
  });

  it('refuses a message over the size limit with 552 5.3.4', async () => {
    const r = await run(`From: x@b.test\r\n\r\n${'a'.repeat(5000)}\r\n`, { maxMessageBytes: 4096 }, 1000);
    expect(r.error).toMatch(/^5\.3\.4 Message too big \(limit 4096 bytes\)/);
  });

  it('strips Bcc (folded too) from what is stored, keeping every other field', async () => {
    const m = 'From: x@b.test\r\nBcc: secret@d.test,\r\n other@d.test\r\nTo: y@d.test\r\nbcc : more@d.test\r\n\r\nbody\r\n';
    const r = await run(m, {}, 4);
    expect(r.out).toBe('From: x@b.test\r\nTo: y@d.test\r\n\r\nbody\r\n');
    expect(r.gate!.headers!.block.toString()).toBe('From: x@b.test\r\nTo: y@d.test\r\n');
    expect(r.gate!.headers!.fields.map((f) => f.key)).toEqual(['from', 'to']);
  });

  it('takes a message without a blank line as all header, and a header-less one as refused', async () => {
    const r = await run('From: x@b.test\r\nSubject: s\r\n');
    expect(r.out).toBe('From: x@b.test\r\nSubject: s\r\n');
    expect(r.body).toBe('');
    expect((await run('\r\nbody only\r\n')).error).toMatch(/^5\.7\.1 The message has no From/);
  });
});
