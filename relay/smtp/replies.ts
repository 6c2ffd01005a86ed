// Two adjustments to smtp-server's connection class, kept in this one place.
// 1. SMTP refusals with the exact RFC 3463 enhanced status code we mean. smtp-server picks an
// enhanced code from the basic code alone (550 always becomes 5.1.1), so a reply text that
// starts with "x.y.z " has that code lifted out and used instead.
// 2. The greeting delay (below).
// smtp-server has no public hook for either; test/unit/dependency-guards.test.ts fails when
// an upgrade changes the methods wrapped here or the init() copied here.
import { SMTPConnection } from 'smtp-server/lib/smtp-connection.js';

type Patched = {
  init(): void;
  _setListeners(cb: () => void): void;
  connectionReady(): void;
  _server: { options: { maxClients?: number; greetingDelayMs?: number }; connections: Set<unknown> };
  name: string; send(code: number, data?: unknown, context?: unknown): void; _getEnhancedStatusCode(code: number, context?: unknown): string; _mfEnhanced?: string };

const proto = (SMTPConnection as unknown as { prototype: Patched }).prototype;
if (!(proto as { _mfPatched?: boolean })._mfPatched) {
  const send = proto.send;
  const getCode = proto._getEnhancedStatusCode;
  proto.send = function (this: Patched, code, data, context) {
    const m = typeof data === 'string' ? /^([245]\.\d{1,3}\.\d{1,3}) (.*)$/s.exec(data) : null;
    if (!m) return send.call(this, code, data, context);
    this._mfEnhanced = m[1];
    try {
      return send.call(this, code, m[2], context);
    } finally {
      this._mfEnhanced = undefined;
    }
  };
  proto._getEnhancedStatusCode = function (this: Patched, code, context) {
    return this._mfEnhanced ?? getCode.call(this, code, context);
  };
  // smtp-server holds every greeting for a fixed 100 ms to catch "early talkers", a spam
  // heuristic for inbound MX servers. A submission relay's clients are our own apps, and
  // clients that open a connection per message (cron jobs, smtp-source) then spend most of
  // their time waiting: 20 such sessions top out near 180 msg/s. The delay becomes the
  // listener's greetingDelayMs (0 by default); the rest of init() is smtp-server's.
  proto.init = function (this: Patched) {
    this._setListeners(() => {
      const opts = this._server.options;
      if (opts.maxClients && this._server.connections.size > opts.maxClients) {
        return this.send(421, `${this.name} Too many connected clients, try again in a moment`, false);
      }
      const delay = opts.greetingDelayMs ?? 0;
      if (delay > 0) setTimeout(() => this.connectionReady(), delay).unref();
      else setImmediate(() => this.connectionReady());
    });
  };
  (proto as { _mfPatched?: boolean })._mfPatched = true;
}

export interface SmtpError extends Error { responseCode: number }

/** An error smtp-server turns into the reply `code enhanced text`. */
export function smtpError(code: number, enhanced: string, text: string): SmtpError {
  return Object.assign(new Error(`${enhanced} ${text}`), { responseCode: code });
}
