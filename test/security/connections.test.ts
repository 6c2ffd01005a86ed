// Attack 4 of issue 9 against a real relay process: one address holding connections
// open, idling before TLS, before EHLO, before AUTH or before its PROXY header, or
// talking without authenticating. A legitimate tenant from another address is served
// throughout, and an authenticated session keeps the long idle timeout.
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSecurityWorld, legitimateDelivery, type SecurityWorld } from './world.ts';
import { SmtpTalk } from '../support/smtp-talk.ts';
import { scrape, metricValue } from '../support/relay-harness.ts';

let w: SecurityWorld;
beforeAll(async () => {
  w = await startSecurityWorld((c) => {
    c.limits = { ...c.limits, maxClients: 60, maxConnectionsPerAddress: 10, maxNewConnectionsPerMinutePerAddress: 30, preAuthTimeout: '2s', socketTimeout: '5m', maxCommandsBeforeAuth: 15 };
  });
});
afterAll(async () => { await w?.close(); });

/** Resolves when the relay closes the socket (bounded by the caller's test timeout). */
function closedByRelay(socket: net.Socket): Promise<void> {
  socket.on('error', () => {});
  socket.resume(); // a paused socket never reads the FIN
  return new Promise((resolve) => { if (socket.destroyed) resolve(); else socket.once('close', () => resolve()); });
}

describe('connection abuse', () => {
  it('one address gets 421 4.7.0 past its concurrent share; others are served', async () => {
    const held: SmtpTalk[] = [];
    const refused: string[] = [];
    for (let i = 0; i < 25; i++) {
      const { talk, greeting } = await SmtpTalk.connect(w.ports.submission, '127.0.0.1', { localAddress: '127.0.0.9' });
      if (greeting.code === 220) held.push(talk); else { refused.push(greeting.text); talk.close(); }
    }
    expect(held).toHaveLength(10);
    expect(refused).toHaveLength(15);
    expect(refused[0]).toMatch(/^421 4\.7\.0 Too many connections from 127\.0\.0\.9 \(limit 10\)/);
    await legitimateDelivery(w, 'during-exhaustion');
    for (const t of held) t.close();
    expect(metricValue(await scrape(w.ports.http), 'mailfleet_smtp_refusals_total', { reason: 'address_concurrency' })).toBe(15);
  });

  it('limits new connections per minute per address', async () => {
    const codes: number[] = [];
    for (let i = 0; i < 35; i++) {
      const { talk, greeting } = await SmtpTalk.connect(w.ports.submission, '127.0.0.1', { localAddress: '127.0.0.10' });
      codes.push(greeting.code);
      talk.close();
    }
    expect(codes.filter((c) => c === 220)).toHaveLength(30);
    expect(codes.slice(30).every((c) => c === 421)).toBe(true);
  });

  it('closes idle pre-auth connections (no TLS handshake, no EHLO, no AUTH, no PROXY header) but not an authenticated one', async () => {
    const authed = await w.session();
    const raw = [
      net.connect({ port: w.ports.smtps, host: '127.0.0.1', localAddress: '127.0.0.11' }), // implicit TLS, never handshakes
      net.connect({ port: w.ports.submission, host: '127.0.0.1', localAddress: '127.0.0.11' }), // never says EHLO
      net.connect({ port: w.ports.proxied, host: '127.0.0.1' }), // never sends its PROXY header
    ];
    const { talk: noAuth } = await SmtpTalk.connect(w.ports.submission, '127.0.0.1', { localAddress: '127.0.0.11' });
    await noAuth.cmd('EHLO idle.test');
    await noAuth.starttls();
    await noAuth.cmd('EHLO idle.test'); // then nothing: no AUTH
    await Promise.all(raw.map(closedByRelay));
    await expect(noAuth.read(20_000)).resolves.toMatchObject({ code: 421 });
    // The authenticated session idled just as long and is still served.
    expect((await authed.cmd('NOOP')).code).toBe(250);
    expect((await authed.cmd('MAIL FROM:<x@b.test>')).code).toBe(250);
    authed.close();
  });

  it('caps commands before authentication, before STARTTLS too', async () => {
    const { talk } = await SmtpTalk.connect(w.ports.submission, '127.0.0.1', { localAddress: '127.0.0.12' });
    const codes: number[] = [];
    let last = '';
    for (let i = 0; i < 20 && !talk.closed; i++) {
      const r = await talk.cmd('NOOP').catch(() => undefined);
      if (!r) break;
      codes.push(r.code);
      last = r.text;
    }
    expect(codes.filter((c) => c === 250)).toHaveLength(15);
    expect(last).toMatch(/^421 4\.7\.0 Too many commands \(15\) before authentication/);
    talk.close();
    await legitimateDelivery(w, 'after-command-cap');
  });
});
