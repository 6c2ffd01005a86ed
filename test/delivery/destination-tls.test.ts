// Per-destination TLS for smarthosts over real sockets (destinations.<name>.tls): an
// explicit `require` verifies a certificate the smarthost's own settings would not check,
// and `opportunistic` lets a smarthost without TLS through where its requireTls would not.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../relay/log.ts';
import { Deliverer } from '../../relay/delivery/deliverer.ts';
import { createMetrics } from '../../relay/metrics.ts';
import { startSink, type Sink } from '../support/sink.ts';
import { metricValue } from '../support/relay-harness.ts';
import { config, makeJob, tempDir } from './helpers.ts';
import { loopbackSinks } from '../support/outbound.ts';

const tmp = tempDir();
let untrusted: Sink;   // STARTTLS with a certificate nobody configured as trusted
let plain: Sink;       // no TLS at all

beforeAll(async () => {
  untrusted = await startSink({ host: '127.0.0.2' });
  plain = await startSink({ host: '127.0.0.3', tls: 'none' });
});

afterAll(async () => {
  await Promise.all([untrusted?.close(), plain?.close()]);
  tmp.cleanup();
});

function deliverer(sink: Sink, name: string, smarthost: object, tls: 'require' | 'opportunistic' | undefined, metrics = createMetrics()) {
  return new Deliverer({
    log: silentLogger, outbound: loopbackSinks, metrics,
    config: config({
      mode: 'smarthost', smarthosts: [{ name, host: sink.host, port: sink.port, ...smarthost }],
      ...(tls ? { destinations: { [name]: { tls } } } : {}), hostDownBackoffMs: 50,
    }),
  });
}

describe('per-destination TLS for smarthosts', () => {
  it('require verifies the certificate even where the smarthost says tlsRejectUnauthorized: false', async () => {
    const lax = deliverer(untrusted, 'lax', { tlsRejectUnauthorized: false }, undefined);
    const strict = deliverer(untrusted, 'strict', { tlsRejectUnauthorized: false }, 'require');
    try {
      const [ok] = await lax.deliver(makeJob(tmp.dir, ['a@dest.test']));
      expect(ok!.status).toBe('delivered');
      const [held] = await strict.deliver(makeJob(tmp.dir, ['b@dest.test']));
      expect(held!.status).toBe('deferred');
      expect(held!.enhanced).toBe('4.7.5');
      expect(held!.response).toMatch(/presented one that does not verify/);
      expect(untrusted.messages.flatMap((m) => m.to)).toEqual(['a@dest.test']);
    } finally {
      await Promise.all([lax.close(), strict.close()]);
    }
  });

  it('opportunistic sends to a smarthost without TLS that its requireTls would refuse, and is counted under its name', async () => {
    const metrics = createMetrics();
    const refusing = deliverer(plain, 'old-relay', {}, undefined, metrics);
    const allowing = deliverer(plain, 'old-relay', {}, 'opportunistic', metrics);
    try {
      const [held] = await refusing.deliver(makeJob(tmp.dir, ['c@dest.test']));
      expect(held!.status).toBe('deferred');
      expect(held!.enhanced).toBe('4.7.4');
      const [ok] = await allowing.deliver(makeJob(tmp.dir, ['d@dest.test']));
      expect(ok!.status).toBe('delivered');
      expect(plain.messages.flatMap((m) => m.to)).toEqual(['d@dest.test']);
      const text = await metrics.registry.metrics();
      expect(metricValue(text, 'mailfleet_delivery_tls_total', { destination: 'old-relay', policy: 'none', result: 'failed' })).toBe(1);
      expect(metricValue(text, 'mailfleet_delivery_tls_total', { destination: 'old-relay', policy: 'opportunistic', result: 'opportunistic' })).toBe(1);
    } finally {
      await Promise.all([refusing.close(), allowing.close()]);
    }
  });
});
