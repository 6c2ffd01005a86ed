// The queue store at start: committed messages come back, half-written ones go, an
// unreadable file is set aside instead of stopping the relay.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { QueueStore } from '../../../relay/queue/store.ts';

describe('queue recovery', () => {
  it('recovers committed messages and sets an unreadable file aside instead of refusing to start', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mailfleet-queue-'));
    const first = await QueueStore.open(dir);
    const q = await first.store.accept({ from: 'a@example.test', recipients: ['b@dest.test'] }, Readable.from([Buffer.from('Subject: x\r\n\r\nhi\r\n')]), { maxSize: 1000 });
    fs.writeFileSync(path.join(dir, 'msg', 'GARBAGE'), 'not a queue file');
    fs.writeFileSync(path.join(dir, 'tmp', 'HALF'), 'never acknowledged');
    const again = await QueueStore.open(dir);
    expect(again.recovered).toBe(1);
    expect(again.discarded).toBe(1);
    expect(again.corrupt).toEqual(['GARBAGE']);
    expect(again.store.get(q.meta.id)?.meta.recipients).toEqual(['b@dest.test']);
    expect(fs.readdirSync(path.join(dir, 'corrupt'))).toEqual(['GARBAGE']);
    expect(fs.readdirSync(path.join(dir, 'tmp'))).toEqual([]);
  });
});
