// Guard for the reach-in of relay/smtp/session-guard.ts: the smtp-server internals it
// replaces or calls on one connection object. If an upgrade renames any of these, this
// fails instead of the pre-auth timeout or the command cap silently doing nothing.
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { SMTPServer, type SMTPServerSession } from 'smtp-server';
import { SMTPConnection } from 'smtp-server/lib/smtp-connection.js';
import { connectionOf } from '../../relay/smtp/session-guard.ts';

describe('smtp-server internals the session guard relies on', () => {
  it('SMTPConnection has _onCommand, _armTimeout, _onTimeout, send and close', () => {
    const proto = (SMTPConnection as unknown as { prototype: Record<string, unknown> }).prototype;
    for (const name of ['_onCommand', '_armTimeout', '_onTimeout', 'send', 'close']) expect(typeof proto[name], name).toBe('function');
  });

  it('a server keeps its connections in a Set whose members carry session and _socket', async () => {
    let seen: ReturnType<typeof connectionOf>;
    const server = new SMTPServer({
      disabledCommands: ['AUTH', 'STARTTLS'], logger: false,
      onConnect(session: SMTPServerSession, cb: (err?: Error | null) => void) { seen = connectionOf(server, session); cb(); },
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const port = (server.server.address() as net.AddressInfo).port;
    const socket = net.connect(port, '127.0.0.1');
    await new Promise<void>((r) => socket.once('data', () => r()));
    expect(seen).toBeDefined();
    expect(seen!._socket).toBeInstanceOf(net.Socket);
    socket.destroy();
    await new Promise<void>((r) => server.close(() => r()));
  });
});
