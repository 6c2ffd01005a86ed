// The queue's in-memory copy of a new message (relay/queue/memory-copies.ts): the first
// delivery attempt sends it instead of reading the file back; a retry reads the file; the
// budget and the per-message limit hold. To tell the two sources apart, the test changes
// the body in the queue file (same length) after the commit and before delivery: what the
// capture receives shows which one was read.
import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { CaptureSink } from '../../relay/delivery/capture.ts';
import type { Deliverer } from '../../relay/delivery/deliverer.ts';
import type { DeliveryJob, RecipientOutcome } from '../../relay/delivery/types.ts';
import { silentLogger } from '../../relay/log.ts';
import { createMetrics } from '../../relay/metrics.ts';
import { MEMORY_COPY_MAX_MESSAGE } from '../../relay/queue/memory-copies.ts';
import { DeliveryRunner } from '../../relay/queue/runner.ts';
import { QueueStore } from '../../relay/queue/store.ts';
import { metricValue, scrape, waitUntil, tempDir } from '../support/relay-harness.ts';
import { startWorld, type World } from './fixture.ts';

const ENVELOPE = { from: 'app@example.test', recipients: ['someone@dest.test'] };
const message = (body: string) => Buffer.from(`From: app@example.test\r\nSubject: copy\r\n\r\n${body}\r\n`);

let runner: DeliveryRunner | undefined;
let world: World | undefined;
afterEach(async () => {
  await runner?.stop();
  runner = undefined;
  await world?.close();
  world = undefined;
});

/** A runner whose deliverer is the capture sink, deferring each message's first `defer` attempts. */
function captureRunner(store: QueueStore, dir: string, defer = 0): { captured: () => string[] } {
  const sink = new CaptureSink(path.join(dir, 'capture'), silentLogger);
  const attempts = new Map<string, number>();
  const deliverer = {
    async deliver(job: DeliveryJob): Promise<RecipientOutcome[]> {
      const n = (attempts.get(job.id) ?? 0) + 1;
      attempts.set(job.id, n);
      if (n <= defer) return job.recipients.map((recipient) => ({ recipient, status: 'deferred', response: '451 4.3.0 later', route: 'mx' }));
      return sink.deliver(job);
    },
  } as unknown as Deliverer;
  runner = new DeliveryRunner({
    store, deliverer: () => deliverer, policy: { retrySchedule: [50], maxLifetime: 60_000 }, concurrency: 4,
    hostname: 'relay.test', log: silentLogger, metrics: createMetrics(),
  });
  runner.start();
  const captureDir = path.join(dir, 'capture');
  return { captured: () => (fs.existsSync(captureDir) ? fs.readdirSync(captureDir).filter((f) => f.endsWith('.eml')).sort().map((f) => fs.readFileSync(path.join(captureDir, f), 'utf8')) : []) };
}

/** Rewrites the body bytes in the committed queue file: same length, different text. */
function tamper(file: string, from: string, to: string): void {
  const bytes = fs.readFileSync(file);
  const at = bytes.indexOf(from);
  expect(at, `"${from}" in the queue file`).toBeGreaterThan(0);
  bytes.write(to, at);
  fs.writeFileSync(file, bytes);
}

describe('in-memory copies for the first delivery attempt', () => {
  it('keeps exactly the bytes written to the queue file', async () => {
    const dir = tempDir();
    const { store } = await QueueStore.open(path.join(dir, 'queue'), { memoryCopyBytes: 1024 * 1024 });
    // in several chunks, as DATA arrives
    const chunks = [Buffer.from('From: app@example.test\r\nSubj'), Buffer.from('ect: x\r\n\r\n'), Buffer.from('line 1\r\nline 2\r\n')];
    const q = await store.accept(ENVELOPE, Readable.from(chunks), { maxSize: 1000 });
    const copy = store.memoryCopy(q.meta.id);
    expect(copy).toBeDefined();
    expect(copy!.equals(fs.readFileSync(q.path).subarray(0, q.meta.size))).toBe(true);
    expect(copy!.equals(Buffer.concat(chunks))).toBe(true);
  });

  it('sends the copy on the first attempt, and the file on a retry', async () => {
    const dir = tempDir();
    const { store } = await QueueStore.open(path.join(dir, 'queue'), { memoryCopyBytes: 1024 * 1024 });
    const first = await store.accept(ENVELOPE, Readable.from([message('original text')]), { maxSize: 1000 });
    tamper(first.path, 'original text', 'tampered text');
    const { captured } = captureRunner(store, dir);
    runner!.enqueue(first);
    await waitUntil('first message captured', () => captured().length === 1);
    expect(captured()[0]).toContain('original text');
    expect(store.memoryCopy(first.meta.id)).toBeUndefined();
    await runner!.stop();

    // deferred once: the copy ends with the first attempt, the retry reads the (changed) file
    const second = await store.accept(ENVELOPE, Readable.from([message('original text')]), { maxSize: 1000 });
    tamper(second.path, 'original text', 'tampered text');
    const retried = captureRunner(store, dir, 1);
    runner!.enqueue(second);
    await waitUntil('second message captured', () => retried.captured().length === 2, 20_000);
    expect(retried.captured().find((m) => m.includes(second.meta.id) || m.includes('tampered text'))).toContain('tampered text');
    expect(store.memoryCopy(second.meta.id)).toBeUndefined();
    expect(store.size).toBe(0);
  });

  it('keeps no copy past the budget, of a message over the per-message limit, or with a budget of 0', async () => {
    const dir = tempDir();
    const { store } = await QueueStore.open(path.join(dir, 'queue'), { memoryCopyBytes: 100 });
    const small = await store.accept(ENVELOPE, Readable.from([message('a'.repeat(20))]), { maxSize: 10_000 });
    const over = await store.accept(ENVELOPE, Readable.from([message('b'.repeat(40))]), { maxSize: 10_000 });
    expect(store.memoryCopy(small.meta.id)).toBeDefined();
    expect(store.memoryCopy(over.meta.id), 'the second no longer fits the 100 bytes').toBeUndefined();
    store.dropMemoryCopy(small.meta.id);
    const fits = await store.accept(ENVELOPE, Readable.from([message('c'.repeat(40))]), { maxSize: 10_000 });
    expect(store.memoryCopy(fits.meta.id), 'the budget came back with the drop').toBeDefined();

    store.setMemoryCopyBytes(4 * MEMORY_COPY_MAX_MESSAGE);
    const big = Buffer.alloc(MEMORY_COPY_MAX_MESSAGE + 1, 'x');
    const large = await store.accept(ENVELOPE, Readable.from([message(''), big]), { maxSize: 2 * MEMORY_COPY_MAX_MESSAGE });
    expect(store.memoryCopy(large.meta.id)).toBeUndefined();

    store.setMemoryCopyBytes(0);
    const none = await store.accept(ENVELOPE, Readable.from([message('d')]), { maxSize: 10_000 });
    expect(store.memoryCopy(none.meta.id)).toBeUndefined();
    // removing a message ends its copy
    await store.remove(fits.meta.id);
    expect(store.memoryCopy(fits.meta.id)).toBeUndefined();
  });

  it('keeps no copy of a message that was refused as too large', async () => {
    const dir = tempDir();
    const { store } = await QueueStore.open(path.join(dir, 'queue'), { memoryCopyBytes: 1024 * 1024 });
    await expect(store.accept(ENVELOPE, Readable.from([message('e'.repeat(200))]), { maxSize: 100 })).rejects.toThrow(/size limit/);
    expect(store.size).toBe(0);
    // nothing was held for it: the whole budget is still there for a message that fills it
    const full = await store.accept(ENVELOPE, Readable.from([Buffer.alloc(200_000, 'f')]), { maxSize: 1024 * 1024 });
    expect(store.memoryCopy(full.meta.id)?.length).toBe(200_000);
  });

  it('shows the bytes held in /metrics while the first attempt runs, and none once it ended', async () => {
    // the destination holds its end-of-DATA reply: the attempt, and so the copy, lasts that long
    world = await startWorld({}, { dataDelayMs: 1_500 });
    await world.send({ to: 'someone@dest.test', subject: 'held copy', text: 'x'.repeat(3000) });
    let held = 0;
    await waitUntil('a copy held during the attempt', async () => {
      held = metricValue(await scrape(world!.relay.httpPort), 'mailfleet_queue_memory_copy_bytes');
      return held > 3000;
    });
    expect(held).toBe(world.relay.relay.queue.memoryCopyBytes);
    const [msg] = await world.sink.waitFor(1, 20_000);
    expect(msg!.data!.toString()).toContain('Subject: held copy');
    await waitUntil('queue empty', () => world!.relay.relay.queue.size === 0);
    expect(metricValue(await scrape(world.relay.httpPort), 'mailfleet_queue_memory_copy_bytes')).toBe(0);
  });
});
