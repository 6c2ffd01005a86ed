// Maps what nodemailer reports for one SMTP transaction to per-recipient outcomes, and
// decides whether a failure was the host's answer or a failure to reach it (failover).

import type { RecipientOutcome, RecipientStatus } from './types.ts';

/** The fields of a nodemailer error this module reads. */
export interface SmtpError extends Error {
  code?: string;           // nodemailer's category: ECONNECTION, ETLS, EENVELOPE, ...
  originalCode?: string;   // the system error behind it, e.g. ECONNREFUSED
  response?: string;       // the server's reply line(s)
  responseCode?: number;
  command?: string;        // 'CONN', 'EHLO', 'STARTTLS', 'AUTH PLAIN', 'MAIL FROM', 'RCPT TO', 'DATA', 'API'
  recipient?: string;
  rejectedErrors?: SmtpError[];
}

export interface SendInfo {
  accepted: (string | { address: string })[];
  rejected: (string | { address: string })[];
  rejectedErrors?: SmtpError[];
  response: string;
}

/** One line from a reply, without the code, bounded so a chatty server cannot bloat logs or DSNs. */
export function cleanReply(response: string): string {
  return response.replace(/\r?\n/g, ' | ').slice(0, 500);
}

/** Reads an RFC 3463 enhanced status code after the reply code ('550 5.1.1 ...' → '5.1.1'). */
export function parseEnhanced(response: string | undefined): string | undefined {
  const m = /^[245]\d\d[ -]([245]\.\d{1,3}\.\d{1,3})\b/.exec(response ?? '');
  return m?.[1];
}

export function statusForCode(code: number): RecipientStatus {
  if (code >= 200 && code < 300) return 'delivered';
  return code >= 500 ? 'failed' : 'deferred';
}

/** A failure to get a transaction going with this host; the next host may be tried. */
export interface HostFailure {
  response: string;
  code?: number;
  enhanced: string;
  /** The host took the session and refused our credentials: not a host failure for the health breaker. */
  reachable?: boolean;
}

type Base = Pick<RecipientOutcome, 'remote' | 'route'>;

const addr = (a: string | { address: string }) => (typeof a === 'string' ? a : a.address);

/** Outcomes for a transaction that completed (some or all recipients accepted). */
export function fromInfo(recipients: string[], info: SendInfo, base: Base): RecipientOutcome[] {
  const accepted = new Set(info.accepted.map((a) => addr(a).toLowerCase()));
  const rejected = new Map<string, SmtpError>();
  for (const e of info.rejectedErrors ?? []) if (e.recipient) rejected.set(e.recipient.toLowerCase(), e);
  const code = Number(/^\d{3}/.exec(info.response ?? '')?.[0] ?? 250);
  return recipients.map((recipient) => {
    const key = recipient.toLowerCase();
    if (accepted.has(key)) {
      return withEnhanced({ recipient, status: 'delivered', code, response: cleanReply(info.response ?? '250'), ...base });
    }
    const e = rejected.get(key);
    if (e) return fromReplyError(recipient, e, base);
    // not reported either way: treat as a temporary failure rather than guess delivery
    return { recipient, status: 'deferred', enhanced: '4.0.0', response: 'the server did not report on this recipient', ...base };
  });
}

function withEnhanced(o: RecipientOutcome): RecipientOutcome {
  const enhanced = parseEnhanced(o.response);
  return enhanced ? { ...o, enhanced } : o;
}

function fromReplyError(recipient: string, e: SmtpError, base: Base): RecipientOutcome {
  const code = e.responseCode ?? 451;
  const response = cleanReply(e.response ?? e.message);
  return withEnhanced({ recipient, status: statusForCode(code), code, response, ...base });
}

/** Commands whose replies are the host's answer about this message. */
const TRANSACTION_COMMANDS = new Set(['MAIL FROM', 'RCPT TO', 'DATA']);

export type ErrorVerdict =
  | { kind: 'answer'; outcomes: RecipientOutcome[] }
  | { kind: 'unreachable'; failure: HostFailure };

/**
 * Classifies a send error. `bodyStarted` tells whether any message byte was handed to the
 * connection: after that, a lost connection may still have delivered the message, so it is
 * not retried on another host now (that could duplicate it) but deferred for the retry loop.
 */
export function fromError(recipients: string[], err: SmtpError, base: Base, bodyStarted: boolean, requireTls: boolean): ErrorVerdict {
  const all = (o: Omit<RecipientOutcome, 'recipient' | 'remote' | 'route'>): ErrorVerdict =>
    ({ kind: 'answer', outcomes: recipients.map((recipient) => ({ recipient, ...o, ...base })) });

  const code = err.responseCode;
  // A definitive reply to MAIL/RCPT/DATA (421 means "closing", i.e. the host is going away).
  if (code && code !== 421 && (TRANSACTION_COMMANDS.has(err.command ?? '') || err.code === 'EENVELOPE' || err.code === 'EMESSAGE')) {
    if (err.rejectedErrors?.length && err.command === 'RCPT TO') {
      // every recipient was refused: each keeps its own reply
      const byRcpt = new Map(err.rejectedErrors.filter((e) => e.recipient).map((e) => [e.recipient!.toLowerCase(), e]));
      return {
        kind: 'answer',
        outcomes: recipients.map((r) => {
          const e = byRcpt.get(r.toLowerCase());
          return e ? fromReplyError(r, e, base) : fromReplyError(r, err, base);
        }),
      };
    }
    return { kind: 'answer', outcomes: recipients.map((r) => fromReplyError(r, err, base)) };
  }
  if (err.code === 'ESTREAM') {
    return all({ status: 'deferred', enhanced: '4.3.0', response: `local error reading the message: ${err.message}` });
  }
  if (err.code === 'EENVELOPE' && err.command === 'API') {
    return all({ status: 'failed', enhanced: '5.1.3', response: `invalid envelope: ${err.message}` });
  }
  if (err.code === 'EMESSAGE' && !code) {
    // nodemailer checks the SIZE limit the server announced before sending
    return all({ status: 'failed', enhanced: '5.3.4', response: cleanReply(err.message) });
  }
  const failure = hostFailure(err, base.remote ?? '?', requireTls);
  if (bodyStarted) {
    return all({ status: 'deferred', ...(failure.code ? { code: failure.code } : {}), enhanced: '4.4.2', response: `connection lost during the transaction: ${failure.response}` });
  }
  return { kind: 'unreachable', failure };
}

// OpenSSL's and Node's codes for a certificate that does not verify (chain, name, dates)
const CERT_ERROR = /CERT|SIGNATURE|ALTNAME|ISSUER/;

/** Why a host could not be used: also the verdict on a failed health probe. */
export function hostFailure(err: SmtpError, remote: string, requireTls: boolean): HostFailure {
  const reply = err.response ? cleanReply(err.response) : undefined;
  const withCode = (f: HostFailure): HostFailure => (err.responseCode ? { ...f, code: err.responseCode } : f);
  if (err.code === 'ETLS' || (requireTls && err.command === 'STARTTLS')) {
    const why = reply ? `STARTTLS refused or not offered (${reply})` : err.message;
    return { response: requireTls ? `TLS is required, but ${remote} could not provide it: ${why}` : `TLS failure with ${remote}: ${why}`, enhanced: '4.7.4' };
  }
  const sysCode = err.originalCode ?? '';
  if (CERT_ERROR.test(sysCode)) {
    // the handshake worked but the certificate did not verify: only when verification was asked for
    return { response: `TLS with a verified certificate is required, but ${remote} presented one that does not verify: ${err.message}`, enhanced: '4.7.5' };
  }
  if (err.code === 'EAUTH' || err.code === 'ENOAUTH') {
    // our credentials (or the host's AUTH support) are wrong: a config problem, never a bounce
    return withCode({ response: `authentication failed at ${remote}: ${reply ?? err.message}`, enhanced: '4.7.0', reachable: true });
  }
  const sys = err.originalCode ?? err.code ?? '';
  if (sys === 'ECONNREFUSED') return { response: `connection refused to ${remote}`, enhanced: '4.4.1' };
  if (sys === 'ETIMEDOUT' || /timeout|timed out/i.test(err.message)) {
    return { response: `timed out talking to ${remote}: ${err.message}`, enhanced: '4.4.1' };
  }
  if (reply) {
    return withCode({ response: `${remote} said: ${reply}`, enhanced: parseEnhanced(err.response) ?? '4.4.2' });
  }
  return { response: `${err.message} (${remote})`, enhanced: '4.4.2' };
}
