// Connection pooling as seen from the destination: reuse across jobs, the per-destination
// connection cap, and a 25 MB message streamed byte-exact (the sink hashes, keeps nothing).
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../relay/log.ts';
import { Deliverer } from '../../relay/delivery/deliverer.ts';
import type { DeliveryJob } from '../../relay/delivery/types.ts';
import { startDnsServer, type TestDnsServer } from '../support/dns-server.ts';
import { startSink, type Sink } from '../support/sink.ts';
import { config, makeJob, tempDir } from './helpers.ts';
import { loopbackSinks } from '../support/outbound.ts';

const tmp = tempDir();
let dns: TestDnsServer;

beforeAll(async () => {
  dns = await startDnsServer({
    'reuse.test': { MX: [{ preference: 10, exchange: 'mx.reuse.test' }] },
    'mx.reuse.test': { A: ['127.0.0.7'] },
    'capped.test': { MX: [{ preference: 10, exchange: 'mx.capped.test' }] },
    'mx.capped.test': { A: ['127.0.0.8'] },
    'big.test': { MX: [{ preference: 10, exchange: 'mx.big.test' }] },
    'mx.big.test': { A: ['127.0.0.9'] },
  });
});

afterAll(async () => {
  await dns?.close();
  tmp.cleanup();
});

async function withSink<T>(host: string, opts: Parameters<typeof startSink>[0], fn: (sink: Sink) => Promise<T>): Promise<T> {
  const sink = await startSink({ ...opts, host });
  try {
    return await fn(sink);
  } finally {
    await sink.close();
  }
}

describe('delivery pools', () => {
  it('reuses connections across jobs to one destination', async () => {
    await withSink('127.0.0.7', { keepData: false }, async (sink) => {
      const d = new Deliverer({ outbound: loopbackSinks, log: silentLogger, config: config({ mx: { port: sink.port, dnsServers: [dns.address] }, maxConnectionsPerDestination: 2 }) });
      try {
        const jobs = 40;
        const outcomes = await Promise.all(Array.from({ length: jobs }, (_, i) => d.deliver(makeJob(tmp.dir, [`u${i}@reuse.test`]))));
        expect(outcomes.flat().every((o) => o.status === 'delivered')).toBe(true);
        expect(await sink.waitFor(jobs, 5000)).toHaveLength(jobs);
        expect(sink.connections()).toBeLessThanOrEqual(2);
        // later jobs ride on the same, still open connections
        await d.deliver(makeJob(tmp.dir, ['later@reuse.test']));
        expect(sink.connections()).toBeLessThanOrEqual(2);
      } finally {
        await d.close();
      }
    });
  });

  it('never opens more connections to a destination than its cap, per domain and per host', async () => {
    // the sink holds every DATA reply, so without a cap the jobs would pile up in parallel
    await withSink('127.0.0.8', { keepData: false, dataDelayMs: 40 }, async (sink) => {
      const d = new Deliverer({ outbound: loopbackSinks,
        log: silentLogger,
        config: config({ mx: { port: sink.port, dnsServers: [dns.address] }, maxConnectionsPerDestination: 10, destinations: { 'Capped.test': { maxConnections: 3 } } }),
      });
      try {
        const outcomes = await Promise.all(Array.from({ length: 30 }, (_, i) => d.deliver(makeJob(tmp.dir, [`c${i}@capped.test`]))));
        expect(outcomes.flat().every((o) => o.status === 'delivered')).toBe(true);
        expect(sink.maxConcurrent()).toBeLessThanOrEqual(3);
        expect(sink.maxConcurrent()).toBeGreaterThan(1); // the cap, not a lack of parallelism, held it down
      } finally {
        await d.close();
      }
      const reopened = new Deliverer({ outbound: loopbackSinks, log: silentLogger, config: config({ mx: { port: sink.port, dnsServers: [dns.address] }, maxConnectionsPerDestination: 2 }) });
      const before = sink.connections();
      try {
        await Promise.all(Array.from({ length: 20 }, (_, i) => reopened.deliver(makeJob(tmp.dir, [`h${i}@capped.test`]))));
        expect(sink.connections() - before).toBeLessThanOrEqual(2);
      } finally {
        await reopened.close();
      }
    });
  });

  it('streams a 25 MB message with a prepended header byte-exact', async () => {
    await withSink('127.0.0.9', { keepData: false }, async (sink) => {
      const size = 25 * 1024 * 1024;
      const offset = 512;
      const path = join(tmp.dir, 'big.eml');
      const prepend = Buffer.from('DKIM-Signature: v=1; a=rsa-sha256; d=sender.test; s=sel; b=abc\r\n');
      const expected = createHash('sha256').update(prepend);
      // a 1 MB block of 76-char CRLF lines with some leading dots (dot-stuffing must round-trip)
      const line = (i: number) => `${i % 7 === 0 ? '.' : ''}${String(i).padStart(10, '0')}${'x'.repeat(64)}\r\n`;
      const headers = 'Subject: big\r\n\r\n';
      const out = createWriteStream(path);
      out.write(Buffer.alloc(offset, 'q'));
      out.write(headers);
      expected.update(headers);
      let written = headers.length;
      for (let i = 0; written < size; i++) {
        const chunk = Buffer.from(line(i));
        if (!out.write(chunk)) await new Promise<void>((r) => out.once('drain', () => r()));
        expected.update(chunk);
        written += chunk.length;
      }
      await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())));
      const job: DeliveryJob = { id: 'big', from: 'a@sender.test', recipients: ['big@big.test'], bodyPath: path, bodyOffset: offset, prepend, size: written };
      const d = new Deliverer({ outbound: loopbackSinks, log: silentLogger, config: config({ mx: { port: sink.port, dnsServers: [dns.address] } }) });
      try {
        const [o] = await d.deliver(job);
        expect(o!.status).toBe('delivered');
        expect(sink.messages[0]?.size).toBe(prepend.length + written);
        expect(sink.messages[0]?.sha256).toBe(expected.digest('hex'));
      } finally {
        await d.close();
      }
    });
  });
});
