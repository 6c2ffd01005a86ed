// The queue's group-committed directory fsync (relay/queue/store.ts): one failed sync must
// fail only the callers that waited for it, never the commits that come after it.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { DirSyncer } from '../../relay/queue/store.ts';

describe('DirSyncer', () => {
  it('recovers after a failed sync that had a caller queued behind it', async () => {
    const dir = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'mailfleet-dirsync-')), 'msg');
    const syncer = new DirSyncer(dir);
    // The directory is missing: the running sync and the one queued behind it both fail.
    const failed = await Promise.allSettled([syncer.sync(), syncer.sync()]);
    expect(failed.map((r) => r.status)).toEqual(['rejected', 'rejected']);
    // Once the directory is back, a running sync and a queued one both succeed.
    fs.mkdirSync(dir);
    const ok = await Promise.allSettled([syncer.sync(), syncer.sync(), syncer.sync()]);
    expect(ok.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled', 'fulfilled']);
  });
});
