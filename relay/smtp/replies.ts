// SMTP refusals with the exact RFC 3463 enhanced status code we mean. smtp-server picks an
// enhanced code from the basic code alone (550 always becomes 5.1.1), so a reply text that
// starts with "x.y.z " has that code lifted out and used instead.
import { SMTPConnection } from 'smtp-server/lib/smtp-connection.js';

type Patched = { send(code: number, data?: unknown, context?: unknown): void; _getEnhancedStatusCode(code: number, context?: unknown): string; _mfEnhanced?: string };

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
  (proto as { _mfPatched?: boolean })._mfPatched = true;
}

export interface SmtpError extends Error { responseCode: number }

/** An error smtp-server turns into the reply `code enhanced text`. */
export function smtpError(code: number, enhanced: string, text: string): SmtpError {
  return Object.assign(new Error(`${enhanced} ${text}`), { responseCode: code });
}
