// RFC 6531 at delivery, against real smtp-server peers on loopback: a hop that announces
// SMTPUTF8 gets the parameter with a non-ASCII envelope; a hop that does not never sees a
// non-ASCII address, and those recipients fail permanently (553 5.6.7) for a DSN.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../relay/log.ts';
import { Deliverer } from '../../relay/delivery/deliverer.ts';
import { loopbackSinks } from '../support/outbound.ts';
import { startSink, type Sink } from '../support/sink.ts';
import { config, makeJob, tempDir } from './helpers.ts';

const tmp = tempDir();
let capable: Sink;    // 127.0.0.7, announces SMTPUTF8, STARTTLS
let legacy: Sink;     // 127.0.0.8, no SMTPUTF8, STARTTLS

beforeAll(async () => {
  capable = await startSink({ host: '127.0.0.7' });
  legacy = await startSink({ host: '127.0.0.8', smtputf8: false });
});

afterAll(async () => {
  await Promise.all([capable, legacy].map((s) => s?.close()));
  tmp.cleanup();
});

const fast = { connectTimeoutMs: 3000, greetingTimeoutMs: 3000, socketTimeoutMs: 10_000 };

function through(sink: Sink): Deliverer {
  return new Deliverer({
    log: silentLogger, outbound: loopbackSinks,
    config: config({ mode: 'smarthost', ...fast, smarthosts: [{ host: sink.host, port: sink.port, tlsRejectUnauthorized: false }] }),
  });
}

const NON_ASCII = /[^\x00-\x7f]/;

describe('SMTPUTF8 at delivery', () => {
  it('sends a non-ASCII envelope with the SMTPUTF8 parameter to a hop that announces it', async () => {
    const d = through(capable);
    try {
      const outcomes = await d.deliver(makeJob(tmp.dir, ['josé@bücher.test', 'plain@far.test'], { from: 'jörg@sender.test' }));
      expect(outcomes.map((o) => [o.recipient, o.status])).toEqual([['josé@bücher.test', 'delivered'], ['plain@far.test', 'delivered']]);
      const [msg] = await capable.waitFor(1);
      expect(msg!.from).toBe('jörg@sender.test');
      expect(msg!.to).toEqual(['josé@bücher.test', 'plain@far.test']);
      expect(msg!.mailArgs).toMatchObject({ SMTPUTF8: true });
    } finally {
      await d.close();
    }
  });

  it('fails only the non-ASCII recipients (553 5.6.7) at a hop without SMTPUTF8 and sends the others', async () => {
    const d = through(legacy);
    try {
      const outcomes = await d.deliver(makeJob(tmp.dir, ['josé@bücher.test', 'plain@far.test']));
      expect(outcomes.map((o) => [o.recipient, o.status, o.code, o.enhanced])).toEqual([
        ['josé@bücher.test', 'failed', 553, '5.6.7'],
        ['plain@far.test', 'delivered', 250, undefined],
      ]);
      expect(outcomes[0]!.response).toMatch(/does not announce SMTPUTF8/);
      const [msg] = await legacy.waitFor(1);
      expect(msg!.to).toEqual(['plain@far.test']);
      expect(msg!.mailArgs).not.toHaveProperty('SMTPUTF8');
    } finally {
      await d.close();
    }
  });

  it('fails every recipient of a non-ASCII sender at a hop without SMTPUTF8, sending nothing', async () => {
    const d = through(legacy);
    const before = legacy.mailCommands.length;
    try {
      const outcomes = await d.deliver(makeJob(tmp.dir, ['plain@far.test', 'other@far.test'], { from: 'jörg@sender.test' }));
      expect(outcomes.map((o) => [o.status, o.enhanced])).toEqual([['failed', '5.6.7'], ['failed', '5.6.7']]);
      expect(legacy.mailCommands.length).toBe(before);
      // whatever was sent to this hop over the whole file, no address in it was non-ASCII
      expect(legacy.mailCommands.filter((m) => NON_ASCII.test(m.address))).toEqual([]);
      expect(legacy.messages.flatMap((m) => m.to).filter((r) => NON_ASCII.test(r))).toEqual([]);
    } finally {
      await d.close();
    }
  });
});
