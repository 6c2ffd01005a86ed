// Queue control end to end: `mailfleet queue …` as a real CLI process against a real relay
// process (admin API with a token file), the same commands offline on its data dir once it
// stopped, and `queue import` of one relay's data dir into another with the envelope,
// state and arrival time intact.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import nodemailer from 'nodemailer';
import { afterAll, describe, expect, it } from 'vitest';
import { startSink, type Sink } from '../support/sink.ts';
import { repoRoot, spawnRelay, tempDir, waitUntil, writeConfig, type ChildRelay } from '../support/relay-harness.ts';
import { freePort } from '../support/ports.ts';

const cleanup: Array<() => unknown> = [];
afterAll(async () => { for (const f of cleanup.reverse()) await f(); });

function cli(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [path.join(repoRoot, 'bin/mailfleet.ts'), 'queue', ...args], { timeout: 60_000 }, (error, out, err) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, out, err });
    });
  });
}

interface Running { relay: ChildRelay; dir: string; port: number; url: string; tokenFile: string; configFile: string }

async function runRelay(sink: Sink, dir = tempDir()): Promise<Running> {
  const [port, httpPort] = [await freePort(), await freePort()];
  const tokenFile = path.join(dir, 'admin-token');
  fs.writeFileSync(tokenFile, `token-${path.basename(dir)}\n`);
  const configFile = writeConfig(dir, {
    hostname: 'relay.test', dataDir: path.join(dir, 'data'),
    listeners: [{ name: 'plain', host: '127.0.0.1', port, mode: 'plain' }],
    trustedNetworks: [{ cidrs: ['127.0.0.0/8'], domains: ['example.test', 'other.test'] }],
    domains: [{ domain: 'example.test' }, { domain: 'other.test' }],
    recipientChecks: { dns: false },
    queue: { retrySchedule: ['1h'] },
    delivery: { mode: 'smarthost', smarthosts: [{ host: sink.host, port: sink.port, tls: 'none', requireTls: false }] },
    http: { host: '127.0.0.1', port: httpPort, adminTokenFile: tokenFile },
  });
  const relay = await spawnRelay(configFile);
  cleanup.push(() => relay.child.kill('SIGKILL'));
  return { relay, dir, port, url: `http://127.0.0.1:${httpPort}`, tokenFile, configFile };
}

async function send(port: number, from: string, to: string, subject: string): Promise<void> {
  const client = nodemailer.createTransport({ host: '127.0.0.1', port, ignoreTLS: true });
  await client.sendMail({ envelope: { from, to: [to] }, raw: `From: ${from}\r\nTo: ${to}\r\nSubject: ${subject}\r\n\r\n${subject}\r\n` });
  client.close();
}

const idsOf = (out: string) => out.split('\n').filter((l) => /^[0-9A-Z]{10,}\t/.test(l)).map((l) => l.split('\t')[0]!);

describe('mailfleet queue', () => {
  it('lists, filters, holds, retries, releases and deletes (with a DSN) through the admin API, and offline once the relay stopped', { timeout: 240_000 }, async () => {
    let accept = false;
    // every delivery is deferred until `accept`
    const sink = await startSink({ host: '127.0.0.20', tls: 'none', rcptReply: () => (accept ? undefined : { code: 451, message: '4.3.0 not yet' }) });
    cleanup.push(() => sink.close());
    const r = await runRelay(sink);
    const api = ['--url', r.url, '--token-file', r.tokenFile];
    await send(r.port, 'app@example.test', 'a@one.test', 'first');
    await send(r.port, 'app@example.test', 'b@two.test', 'second');
    await send(r.port, 'news@other.test', 'c@one.test', 'third');
    await waitUntil('three deferred attempts', async () => {
      const l = await cli('list', '--json', ...api);
      return l.code === 0 && (JSON.parse(l.out) as { attempts: number }[]).filter((m) => m.attempts >= 1).length === 3;
    }, 60_000, 300);

    // the API refuses a missing or wrong token, and is not reachable without the admin path
    expect((await fetch(`${r.url}/admin/queue`)).status).toBe(401);
    expect((await fetch(`${r.url}/admin/queue`, { headers: { authorization: 'Bearer nope' } })).status).toBe(401);
    const wrong = path.join(r.dir, 'wrong-token');
    fs.writeFileSync(wrong, 'nope');
    expect((await cli('list', '--url', r.url, '--token-file', wrong)).code).toBe(1);

    const all = await cli('list', ...api);
    expect(all.code).toBe(0);
    expect(idsOf(all.out)).toHaveLength(3);
    expect(all.out).toContain('not yet');
    expect(idsOf((await cli('list', '--recipient', 'one.test', ...api)).out)).toHaveLength(2);
    expect(idsOf((await cli('list', '--sender', 'other.test', ...api)).out)).toHaveLength(1);
    expect(idsOf((await cli('list', '--min-age', '1h', ...api)).out)).toHaveLength(0);
    expect(idsOf((await cli('list', '--max-age', '1h', '--recipient', 'two.test', ...api)).out)).toHaveLength(1);
    const [first, second, third] = JSON.parse((await cli('list', '--json', ...api)).out) as { id: string; recipients: string[] }[];
    expect(first!.recipients).toEqual(['a@one.test']);

    const shown = JSON.parse((await cli('show', first!.id, ...api)).out) as { headers: string; from: string; attempts: number };
    expect(shown).toMatchObject({ from: 'app@example.test' });
    expect(shown.headers).toContain('Subject: first');
    expect((await cli('show', 'NOSUCHID0000', ...api)).code).toBe(1);

    // hold: retry leaves it alone; release delivers it
    expect((await cli('hold', first!.id, ...api)).code).toBe(0);
    expect((await cli('list', ...api)).out).toMatch(new RegExp(`${first!.id}\\t.*HELD`));
    accept = true;
    const held = await cli('retry', first!.id, ...api);
    expect(held.code).toBe(1);
    expect(held.out).toContain('on hold');
    // delete with a DSN: the second message leaves, a DSN to app@example.test takes its place
    const del = await cli('delete', second!.id, '--dsn', ...api);
    expect(del.code).toBe(0);
    expect(del.out).toMatch(/DSN queued as [0-9A-Z]+/);
    // retry --all delivers what is not held: the third message and the DSN
    expect((await cli('retry', '--all', ...api)).out).toMatch(/scheduled \d/);
    await waitUntil('third and the DSN delivered', () => sink.messages.some((m) => m.data!.includes('Subject: third')) && sink.messages.some((m) => m.from === '' && m.to.includes('app@example.test')), 30_000);
    const dsn = sink.messages.find((m) => m.from === '')!.data!.toString();
    expect(dsn).toContain('Final-Recipient: rfc822; b@two.test');
    expect(dsn).toContain('deleted from the queue by the relay administrator');
    expect(sink.messages.some((m) => m.to.includes('b@two.test'))).toBe(false);
    expect(sink.messages.some((m) => m.to.includes('a@one.test'))).toBe(false);
    expect((await cli('release', first!.id, ...api)).code).toBe(0);
    await waitUntil('first delivered after release', () => sink.messages.some((m) => m.data!.includes('Subject: first')), 30_000);
    expect(third).toBeDefined();

    // offline: refused while the relay runs on the data dir, works once it stopped
    const dataDir = path.join(r.dir, 'data');
    const busy = await cli('list', '--data-dir', dataDir);
    expect(busy.code).toBe(1);
    expect(busy.err).toMatch(/a relay \(pid \d+\) is running/);
    accept = false;
    await send(r.port, 'app@example.test', 'd@one.test', 'fourth');
    await waitUntil('fourth deferred', async () => (await cli('list', ...api)).out.includes('not yet'), 30_000, 300);
    r.relay.child.kill('SIGTERM');
    expect(await r.relay.exited).toBe(0);
    const offline = await cli('list', '--data-dir', dataDir);
    expect(offline.code).toBe(0);
    const [fourth] = idsOf(offline.out);
    expect(fourth).toBeDefined();
    expect((await cli('hold', fourth!, '--config', r.configFile)).code).toBe(0);
    expect((await cli('list', '--data-dir', dataDir)).out).toContain('HELD');
    expect((await cli('delete', fourth!, '--data-dir', dataDir)).code).toBe(0);
    expect(idsOf((await cli('list', '--data-dir', dataDir)).out)).toHaveLength(0);
  });

  it('imports the queue of a data dir whose relay is gone into a running relay, once, with arrival time and state', { timeout: 240_000 }, async () => {
    const deferring = await startSink({ host: '127.0.0.21', tls: 'none', rcptReply: () => ({ code: 451, message: '4.3.0 later' }) });
    cleanup.push(() => deferring.close());
    const old = await runRelay(deferring);
    for (let i = 0; i < 5; i++) await send(old.port, 'app@example.test', `r${i}@far.test`, `orphan ${i}`);
    await waitUntil('five deferred', async () => {
      const l = await cli('list', '--json', '--url', old.url, '--token-file', old.tokenFile);
      return (JSON.parse(l.out || '[]') as { attempts: number }[]).filter((m) => m.attempts === 1).length === 5;
    }, 60_000, 300);
    old.relay.child.kill('SIGKILL'); // the pod is gone; its PVC is what is left
    await old.relay.exited;
    const source = path.join(old.dir, 'data');
    const before = JSON.parse((await cli('list', '--json', '--data-dir', source)).out) as { id: string; receivedAt: string; attempts: number }[];
    expect(before).toHaveLength(5);

    // offline into another data dir first: arrival time and attempts are kept
    const offlineDir = tempDir();
    const copy = await cli('import', source, '--keep-source', '--data-dir', offlineDir);
    expect(copy.code).toBe(0);
    expect(copy.out).toContain('imported 5');
    const copied = JSON.parse((await cli('list', '--json', '--data-dir', offlineDir)).out) as typeof before;
    expect(copied.map((m) => [m.id, m.receivedAt, m.attempts])).toEqual(before.map((m) => [m.id, m.receivedAt, m.attempts]));
    // a second run finds them there and imports nothing twice
    expect((await cli('import', source, '--keep-source', '--data-dir', offlineDir)).out).toContain('imported 0, 5 already there');

    // into a running relay over its admin API: delivered, and the source is emptied
    const good = await startSink({ host: '127.0.0.22', tls: 'none' });
    cleanup.push(() => good.close());
    const target = await runRelay(good);
    const moved = await cli('import', source, '--url', target.url, '--token-file', target.tokenFile);
    expect(moved.code).toBe(0);
    expect(moved.out).toContain('imported 5');
    await waitUntil('all five delivered by the new relay', () => new Set(good.messages.map((m) => /Subject: (orphan \d)/.exec(m.data!.toString())?.[1])).size === 5, 30_000);
    expect(fs.readdirSync(path.join(source, 'queue', 'msg'))).toEqual([]);
    // a file that is not a queue file is refused with a reason, not taken in
    fs.writeFileSync(path.join(source, 'queue', 'msg', 'JUNK0000000000'), 'not a queue file');
    const junk = await cli('import', source, '--url', target.url, '--token-file', target.tokenFile);
    expect(junk.code).toBe(1);
    expect(junk.err).toMatch(/JUNK0000000000: .*400 not a queue file/);
    target.relay.child.kill('SIGTERM');
    expect(await target.relay.exited).toBe(0);
  });
});
