// PROXY protocol on a listener: the client address from a v1 or v2 header is the one the
// relay judges (trusted networks) and records (Received), over real sockets.
import { SmtpTalk } from '../support/smtp-talk.ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startWorld, type World } from './fixture.ts';

let w: World;
beforeAll(async () => {
  w = await startWorld({
    listeners: [
      { name: 'submission', host: '127.0.0.1', port: 0, mode: 'starttls' },
      { name: 'smtps', host: '127.0.0.1', port: 0, mode: 'implicit' },
      { name: 'plain', host: '127.0.0.1', port: 0, mode: 'plain', proxyProtocol: true, proxyFrom: ['127.0.0.1/32'] },
    ],
    trustedNetworks: [{ cidrs: ['203.0.113.0/24'], domains: ['legacy.test'] }],
  });
});
afterAll(async () => { await w?.close(); });

// Sends the header, then each command after the previous reply (message lines go
// together after DATA); returns every reply text.
async function converse(header: Buffer, commands: string[]): Promise<string> {
  const { talk, greeting } = await SmtpTalk.connect(w.relay.port('plain'), '127.0.0.1', { preamble: header });
  const out = [greeting.text];
  for (const c of commands) {
    const r = await talk.cmd(c).catch(() => undefined);
    if (!r) break;
    out.push(r.text);
  }
  talk.close();
  return out.join('\n');
}
const message = ['DATA', 'From: cron@legacy.test\r\nSubject: proxied\r\n\r\nx\r\n.'];

const v2 = (ip: number[], port: number) => Buffer.concat([
  Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a, 0x21, 0x11, 0x00, 12]),
  Buffer.from([...ip, 127, 0, 0, 1]), Buffer.from([port >> 8, port & 255, 0, 25]),
]);

describe('PROXY protocol listener', () => {
  it('trusts the v1 client address, not the balancer\'s', async () => {
    const out = await converse(Buffer.from('PROXY TCP4 203.0.113.7 127.0.0.1 40000 25\r\n'), ['EHLO lb.test', 'MAIL FROM:<cron@legacy.test>', 'RCPT TO:<bob@dest.test>', ...message, 'QUIT']);
    expect(out).toMatch(/250 2\.0\.0 Ok: queued as/);
    const [msg] = await w.sink.waitFor(1);
    expect(msg!.data!.toString()).toContain('([203.0.113.7])');
  });

  it('reads v2 headers and refuses a client outside the trusted networks', async () => {
    const out = await converse(v2([198, 51, 100, 1], 40001), ['EHLO lb.test']);
    expect(out).toMatch(/^554 5\.7\.1 198\.51\.100\.1 is not in a trusted network/);
    const ok = await converse(v2([203, 0, 113, 8], 40002), ['EHLO lb.test', 'MAIL FROM:<cron@legacy.test>', 'QUIT']);
    expect(ok).toMatch(/250 2\.1\.0/);
  });

  it('believes PROXY headers only from proxyFrom: another peer is dropped', async () => {
    await expect(SmtpTalk.connect(w.relay.port('plain'), '127.0.0.1', { localAddress: '127.0.0.7', preamble: Buffer.from('PROXY TCP4 203.0.113.7 127.0.0.1 40000 25\r\n') }))
      .rejects.toThrow(/closed/);
  });

  it('drops a connection without a valid header', async () => {
    await expect(converse(Buffer.from('EHLO sneaky.test\r\n'), [])).rejects.toThrow(/closed/);
  });
});
