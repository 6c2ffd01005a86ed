// A delivery attempt that fails locally after talking to the destination (here the state
// file cannot be written) must not strand the message: it is retried in the same process.
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startWorld, type World } from './fixture.ts';
import { waitUntil } from '../support/relay-harness.ts';

let w: World | undefined;
afterEach(async () => { await w?.close(); w = undefined; });

describe('delivery attempt that crashes', () => {
  it('is retried once the queue can record progress again', async () => {
    let refused = 0;
    w = await startWorld({ recipientChecks: { dns: false } }, {
      rcptReply: (_rcpt, attempt) => (attempt === 1 ? (refused++, { code: 451, message: '4.3.0 try again' }) : undefined),
    });
    const stateDir = path.join(w.relay.relay.config.dataDir, 'queue', 'state');
    // A file where the state directory should be: saving the deferral fails with ENOTDIR.
    fs.rmSync(stateDir, { recursive: true });
    fs.writeFileSync(stateDir, 'not a directory');
    await w.send({ to: 'later@dest.test', subject: 'stranded?' });
    await waitUntil('the first attempt was refused and its state write failed', () =>
      refused === 1 && fs.readFileSync(w!.relay.logFile, 'utf8').includes('delivery attempt crashed'));
    fs.rmSync(stateDir);
    fs.mkdirSync(stateDir);
    const [msg] = await w.sink.waitFor(1, 15_000);
    expect(msg!.to).toEqual(['later@dest.test']);
    await waitUntil('the queue is empty', () => w!.relay.relay.queue.size === 0);
  });
});
