import { mkdtempSync, rmSync, readFileSync, appendFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  addSuppression,
  journalPath,
  listSuppressions,
  removeSuppression,
  SuppressionList,
} from '../../relay/suppression/index.ts';

const bounce = { reason: 'user unknown', code: '550 5.1.1', source: 'bounce' };
const day = 86_400_000;

describe('SuppressionList', () => {
  let dir: string;
  const open: SuppressionList[] = [];
  const openList = async (opts: Parameters<typeof SuppressionList.open>[1] = {}) => {
    const l = await SuppressionList.open(dir, { pollIntervalMs: 0, ...opts });
    open.push(l);
    return l;
  };
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'mailfleet-suppr-'));
  });
  afterEach(async () => {
    for (const l of open.splice(0)) await l.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('adds, checks with a case-insensitive domain and case-kept local part, removes', async () => {
    const l = await openList();
    const e = await l.add('Bob.Smith@Example.COM', bounce, day);
    expect(e).toMatchObject({ address: 'Bob.Smith@example.com', reason: 'user unknown', code: '550 5.1.1', source: 'bounce' });
    expect(l.check('Bob.Smith@example.com')?.reason).toBe('user unknown');
    expect(l.check('Bob.Smith@EXAMPLE.com')).toBeDefined();
    expect(l.check('bob.smith@example.com')).toBeUndefined();
    expect(l.list().map((x) => x.address)).toEqual(['Bob.Smith@example.com']);
    expect(await l.remove('Bob.Smith@example.COM')).toBe(true);
    expect(await l.remove('Bob.Smith@example.com')).toBe(false);
    expect(l.check('Bob.Smith@example.com')).toBeUndefined();
    expect(() => l.check('not-an-address')).toThrow(/not an email address/);
  });

  it('ignores and purges expired entries', async () => {
    let now = 1_000_000;
    const l = await openList({ now: () => now });
    await l.add('a@example.com', bounce, 1_000);
    await l.add('b@example.com', bounce, 10_000);
    now += 1_000;
    expect(l.check('a@example.com')).toBeUndefined();
    expect(l.list().map((x) => x.address)).toEqual(['b@example.com']);
    expect((await listSuppressions(dir, now)).map((x) => x.address)).toEqual(['b@example.com']);
  });

  it('survives a reopen', async () => {
    const l = await openList();
    await l.add('a@example.com', bounce, day);
    await l.add('b@example.com', { reason: 'mailbox disabled', source: 'dsn' }, day);
    await l.remove('a@example.com');
    await l.close();
    const again = await openList();
    expect(again.check('a@example.com')).toBeUndefined();
    expect(again.check('b@example.com')).toMatchObject({ reason: 'mailbox disabled', source: 'dsn' });
  });

  it('sees a removal made by another process (the CLI functions) on refresh and by polling', async () => {
    const relay = await openList();
    const polled = await openList({ pollIntervalMs: 20 });
    await relay.add('a@example.com', bounce, day);
    await relay.add('b@example.com', bounce, day);
    await polled.refresh();
    expect(polled.check('a@example.com')).toBeDefined();

    expect(await removeSuppression(dir, 'a@EXAMPLE.com')).toBe(true);
    expect(await removeSuppression(dir, 'nobody@example.com')).toBe(false);
    expect(relay.check('a@example.com')).toBeDefined(); // not yet read
    await relay.refresh();
    expect(relay.check('a@example.com')).toBeUndefined();
    expect(relay.check('b@example.com')).toBeDefined();
    await vi.waitFor(() => expect(polled.check('a@example.com')).toBeUndefined(), { timeout: 5_000, interval: 20 });

    await addSuppression(dir, 'c@example.com', { reason: 'manual', source: 'cli' }, day);
    await relay.refresh();
    expect(relay.check('c@example.com')?.source).toBe('cli');
  });

  it('compacts to live entries, and a second instance follows the rewrite', async () => {
    let now = 1_000_000;
    const relay = await openList({ now: () => now });
    const other = await openList({ now: () => now });
    for (let i = 0; i < 20; i++) await relay.add(`u${i}@example.com`, bounce, i < 10 ? 1_000 : day);
    for (let i = 10; i < 15; i++) await relay.remove(`u${i}@example.com`);
    await other.refresh(); // holds the pre-compaction file's inode and offset
    expect(other.list()).toHaveLength(15);
    now += 1_000;
    await relay.compact();
    const lines = readFileSync(journalPath(dir), 'utf8').split('\n').filter(Boolean);
    expect(lines).toHaveLength(5); // u15..u19
    // Appended after the compaction by someone else: seen by both.
    await removeSuppression(dir, 'u19@example.com', now);
    await relay.refresh();
    await other.refresh();
    const live = ['u15@example.com', 'u16@example.com', 'u17@example.com', 'u18@example.com'];
    expect(relay.list().map((e) => e.address)).toEqual(live);
    expect(other.list().map((e) => e.address)).toEqual(live);
  });

  it('skips a line torn by a crash without losing the records after it', async () => {
    const l = await openList();
    await l.add('a@example.com', bounce, day);
    await l.close();
    appendFileSync(journalPath(dir), '\n{"op":"add","address":"torn@exa'); // a write cut short
    await addSuppression(dir, 'b@example.com', bounce, day);
    const again = await openList();
    expect(again.list().map((e) => e.address)).toEqual(['a@example.com', 'b@example.com']);
  });
});
