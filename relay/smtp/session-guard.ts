// Per-session limits smtp-server has no option for, installed on one connection object:
// - the idle timeout before authentication is short (limits.preAuthTimeout, also the TLS
//   handshake and greeting-to-EHLO time, because smtp-server's socketTimeout is set to
//   it), and an authenticated or trusted session gets the long one (limits.socketTimeout);
// - at most limits.maxCommandsBeforeAuth commands before AUTH succeeds (smtp-server's
//   own counter is off until AUTH is offered, i.e. never before STARTTLS).
// This reaches into SMTPConnection (_onCommand, _armTimeout, _onTimeout, _socket, send,
// close); test/security/session-guard.test.ts names and checks each of them.
import type { SMTPServer, SMTPServerSession } from 'smtp-server';
import type net from 'node:net';

export interface GuardedConnection {
  session: SMTPServerSession;
  _socket: net.Socket;
  _onCommand(command: Buffer, callback?: () => void): void;
  _armTimeout(socket?: net.Socket): void;
  _onTimeout(): void;
  send(code: number, data?: string, context?: unknown): void;
  close(): void;
}

/** The connection object smtp-server made for this session (it is in server.connections). */
export function connectionOf(smtp: SMTPServer, session: SMTPServerSession): GuardedConnection | undefined {
  for (const c of (smtp as unknown as { connections: Set<GuardedConnection> }).connections) if (c.session === session) return c;
  return undefined;
}

export interface SessionGuardOptions {
  /** Trusted network or no client address: the long timeout, no command cap. */
  exempt: boolean;
  longTimeoutMs: number;
  shortTimeoutMs: number;
  maxCommandsBeforeAuth: number;
  onCommandCap(): void;
}

export function guardSession(conn: GuardedConnection, opts: SessionGuardOptions): void {
  const authed = () => Boolean(conn.session.user);
  const timeout = () => (opts.exempt || authed() ? opts.longTimeoutMs : opts.shortTimeoutMs);
  conn._armTimeout = (socket = conn._socket) => {
    socket.setTimeout(timeout(), () => conn._onTimeout());
  };
  if (opts.exempt) {
    conn._socket.setTimeout(opts.longTimeoutMs);
    return;
  }
  const onCommand = conn._onCommand.bind(conn);
  let commands = 0;
  let capped = false;
  conn._onCommand = (command, callback) => {
    if (capped) return callback?.();
    if (!authed() && ++commands > opts.maxCommandsBeforeAuth) {
      capped = true;
      opts.onCommandCap();
      conn.send(421, `4.7.0 Too many commands (${opts.maxCommandsBeforeAuth}) before authentication, closing`);
      conn.close();
      return callback?.();
    }
    return onCommand(command, callback);
  };
}

/** After a successful AUTH: the session keeps the long idle timeout from now on. */
export function sessionAuthenticated(conn: GuardedConnection | undefined, longTimeoutMs: number): void {
  conn?._socket.setTimeout(longTimeoutMs);
}
