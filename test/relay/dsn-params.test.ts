// RFC 3461 parameters at intake, over real sockets: DSN is announced, RET/ENVID on MAIL and
// NOTIFY/ORCPT on RCPT are validated (501 5.5.4 for a bad one) and kept in the queue
// record, decoded; a record without them (written before they existed) still loads; an
// imported record with impossible DSN values is refused.
import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startWorld, PASSWORD, type World } from './fixture.ts';
import { SmtpTalk, authPlain } from '../support/smtp-talk.ts';
import { waitUntil, tempDir } from '../support/relay-harness.ts';
import { QueueImportError, QueueStore, readTrailer } from '../../relay/queue/store.ts';

let w: World;
// held@dest.test is deferred by the next hop, so its message stays queued for inspection
beforeAll(async () => {
  w = await startWorld({}, { rcptReply: (rcpt) => (rcpt.startsWith('held') ? { code: 450, message: '4.2.1 try later' } : undefined) });
});
afterAll(async () => { await w?.close(); });

async function session(): Promise<SmtpTalk> {
  const { talk } = await SmtpTalk.connect(w.relay.port('submission'));
  await talk.cmd('EHLO client.test');
  await talk.starttls();
  const ehlo = await talk.cmd('EHLO client.test');
  expect(ehlo.lines.map((l) => l.split(' ')[0])).toContain('DSN');
  expect((await talk.cmd(`AUTH PLAIN ${authPlain('alice', PASSWORD)}`)).code).toBe(235);
  return talk;
}

describe('DSN parameters at intake', () => {
  it('stores RET, ENVID, NOTIFY and ORCPT decoded in the queue record', async () => {
    const talk = await session();
    expect((await talk.cmd('MAIL FROM:<app@example.test> RET=HDRS ENVID=QQ+2B123+3Dx')).code).toBe(250);
    expect((await talk.cmd('RCPT TO:<held@dest.test> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;held+2Bx@dest.test')).code).toBe(250);
    expect((await talk.cmd('RCPT TO:<held2@dest.test> NOTIFY=never')).code).toBe(250);
    expect((await talk.cmd('RCPT TO:<held3@dest.test>')).code).toBe(250);
    expect((await talk.cmd('DATA')).code).toBe(354);
    const done = await talk.cmd('From: app@example.test\r\nSubject: dsn params\r\n\r\nbody\r\n.');
    expect(done.code).toBe(250);
    const id = /queued as ([0-9A-Z]+)/.exec(done.text)![1]!;
    talk.close();
    const q = w.relay.relay.queue.get(id)!;
    expect(q.meta.dsn).toEqual({ ret: 'HDRS', envid: 'QQ+123=x' });
    expect(q.meta.rcptDsn).toEqual({
      'held@dest.test': { notify: ['SUCCESS', 'DELAY'], orcpt: 'rfc822;held+x@dest.test' },
      'held2@dest.test': { notify: ['NEVER'] },
    });
    // the record on disk says the same (what a restart or an import reads)
    const meta = await readTrailer(q.path);
    expect(meta.dsn).toEqual(q.meta.dsn);
    expect(meta.rcptDsn).toEqual(q.meta.rcptDsn);
  });

  it('refuses bad values with 501 5.5.4 and keeps the session usable', async () => {
    const talk = await session();
    expect((await talk.cmd('MAIL FROM:<app@example.test> RET=BODY')).text).toMatch(/^501 5\.5\.4/);
    expect((await talk.cmd(`MAIL FROM:<app@example.test> ENVID=${'x'.repeat(101)}`)).text).toMatch(/^501 5\.5\.4 ENVID must not exceed 100/);
    expect((await talk.cmd('MAIL FROM:<app@example.test> ENVID=a+C3+A9b')).text).toMatch(/^501 5\.5\.4 ENVID must be printable US-ASCII/);
    // a control character smuggled through xtext: smtp-server refuses the whole command itself
    expect((await talk.cmd('MAIL FROM:<app@example.test> ENVID=a+0D+0Ab')).code).toBe(501);
    expect((await talk.cmd('MAIL FROM:<app@example.test> RET=FULL RET=HDRS')).text).toMatch(/^501 5\.5\.4/);
    expect((await talk.cmd('MAIL FROM:<app@example.test> RET=FULL')).code).toBe(250);
    expect((await talk.cmd('RCPT TO:<bob@dest.test> NOTIFY=NEVER,SUCCESS')).text).toMatch(/^501 5\.5\.4/);
    expect((await talk.cmd('RCPT TO:<bob@dest.test> NOTIFY=SOMETIMES')).text).toMatch(/^501 5\.5\.4/);
    expect((await talk.cmd('RCPT TO:<bob@dest.test> NOTIFY=FAILURE,FAILURE')).text).toMatch(/^501 5\.5\.4 NOTIFY names a value twice/);
    expect((await talk.cmd('RCPT TO:<bob@dest.test> ORCPT=bob@dest.test')).text).toMatch(/^501 5\.5\.4/);
    expect((await talk.cmd(`RCPT TO:<bob@dest.test> ORCPT=rfc822;${'b'.repeat(500)}@dest.test`)).text).toMatch(/^501 5\.5\.4 ORCPT must not exceed 500/);
    expect((await talk.cmd('RCPT TO:<bob@dest.test> ORCPT=rfc822;b\u00f6b@dest.test')).text).toMatch(/^501 5\.5\.4 ORCPT must be US-ASCII/);
    expect((await talk.cmd('RCPT TO:<bob@dest.test> FOO=BAR')).text).toMatch(/^555 5\.5\.4 RCPT parameter FOO is not supported/);
    expect((await talk.cmd('RCPT TO:<bob@dest.test> NOTIFY=FAILURE ORCPT=rfc822;bob@dest.test')).code).toBe(250);
    talk.close();
  });

  it('loads a record written before DSN parameters existed, and refuses an import with impossible ones', async () => {
    const dir = tempDir('mailfleet-dsn-');
    try {
      const { store } = await QueueStore.open(path.join(dir, 'a'), { fsync: false });
      const old = await store.acceptBuffer({ from: 'app@example.test', recipients: ['bob@dest.test'] }, Buffer.from('Subject: old\r\n\r\nx\r\n'));
      expect(old.meta.dsn).toBeUndefined();
      const reopened = await QueueStore.open(path.join(dir, 'a'), { fsync: false });
      expect(reopened.recovered).toBe(1);
      expect(reopened.store.get(old.meta.id)!.meta.rcptDsn).toBeUndefined();

      const { store: target } = await QueueStore.open(path.join(dir, 'b'), { fsync: false });
      const forged = await store.acceptBuffer({
        from: 'app@example.test', recipients: ['bob@dest.test'], rcptDsn: { 'bob@dest.test': { notify: ['NEVER', 'SUCCESS'] } },
      }, Buffer.from('Subject: forged\r\n\r\nx\r\n'));
      await expect(target.importMessage(Readable.from([fs.readFileSync(forged.path)])))
        .rejects.toThrow(QueueImportError);
      await expect(target.importMessage(Readable.from([fs.readFileSync(forged.path)])))
        .rejects.toThrow(/invalid DSN parameters in the trailer: rcptDsn\[bob@dest.test\]\.notify: NOTIFY=NEVER cannot be combined/);
      const good = await store.acceptBuffer({
        from: 'app@example.test', recipients: ['bob@dest.test'], dsn: { ret: 'HDRS', envid: 'e1' }, rcptDsn: { 'bob@dest.test': { notify: ['DELAY'], orcpt: 'rfc822;bob@dest.test' } },
      }, Buffer.from('Subject: good\r\n\r\nx\r\n'));
      const imported = await target.importMessage(Readable.from([fs.readFileSync(good.path)]));
      expect(imported.meta.dsn).toEqual({ ret: 'HDRS', envid: 'e1' });
      expect(imported.meta.rcptDsn).toEqual({ 'bob@dest.test': { notify: ['DELAY'], orcpt: 'rfc822;bob@dest.test' } });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('delivers what it accepted with DSN parameters like any message', async () => {
    const before = w.sink.messages.length;
    const talk = await session();
    expect((await talk.cmd('MAIL FROM:<app@example.test> RET=FULL ENVID=abc')).code).toBe(250);
    expect((await talk.cmd('RCPT TO:<carol@dest.test> NOTIFY=FAILURE')).code).toBe(250);
    expect((await talk.cmd('DATA')).code).toBe(354);
    expect((await talk.cmd('From: app@example.test\r\nSubject: plain\r\n\r\nbody\r\n.')).code).toBe(250);
    talk.close();
    await waitUntil('delivered', () => w.sink.messages.length > before);
    expect(w.sink.messages.at(-1)!.to).toEqual(['carol@dest.test']);
  });
});
