// RFC 3461 DSN parameters as the queue record keeps them. They are part of the envelope
// trailer (store.ts), so they travel with a queue file wherever it goes (import, hand-off);
// records written before they existed simply have none, which means "no DSN parameters
// were given" (the RFC 3461 defaults: failure notices, return headers).
//
// Values are stored decoded (smtp-server decodes xtext at intake); whoever passes them on
// encodes them again (nodemailer does, for its `dsn` envelope option).

/** MAIL parameters: one set per message. */
export interface EnvelopeDsn {
  /** RET: return the full message or only its headers in a failure DSN. */
  ret?: 'FULL' | 'HDRS';
  /** ENVID, decoded: printable US-ASCII, at most 100 characters (RFC 3461 §4.4). */
  envid?: string;
}

export type DsnNotify = 'NEVER' | 'SUCCESS' | 'FAILURE' | 'DELAY';

/** RCPT parameters: one set per recipient. */
export interface RecipientDsn {
  /** NOTIFY: ['NEVER'] alone, or one or more of SUCCESS, FAILURE, DELAY (RFC 3461 §4.1). */
  notify?: DsnNotify[];
  /** ORCPT, decoded: "addr-type;address", e.g. "rfc822;a@example.com" (RFC 3461 §4.2). */
  orcpt?: string;
}

/** The queue record's DSN fields (on MessageMeta). */
export interface StoredDsn {
  /** RET and ENVID of the MAIL command; absent when neither was given. */
  dsn?: EnvelopeDsn;
  /** NOTIFY and ORCPT per recipient, keyed by the recipient exactly as in `recipients`; absent when none was given. */
  rcptDsn?: Record<string, RecipientDsn>;
}

const NOTIFY_VALUES = new Set<string>(['NEVER', 'SUCCESS', 'FAILURE', 'DELAY']);
const PRINTABLE = /^[\x20-\x7e]*$/;
// addr-type is an atom (RFC 3461 §4.2); the address after it is what was given, decoded
const ORCPT = /^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+;[^\x00-\x1f\x7f]+$/;

export const ENVID_MAX = 100;
export const ORCPT_MAX = 500;

/** Why a RET value is not valid, or undefined. */
export function retProblem(ret: unknown): string | undefined {
  return ret === 'FULL' || ret === 'HDRS' ? undefined : 'RET must be FULL or HDRS';
}

/** Why a decoded ENVID is not valid (RFC 3461 §4.4), or undefined. */
export function envidProblem(envid: unknown): string | undefined {
  if (typeof envid !== 'string' || envid.length === 0) return 'ENVID must not be empty';
  if (!PRINTABLE.test(envid)) return 'ENVID must be printable US-ASCII (RFC 3461 section 4.4)';
  if (envid.length > ENVID_MAX) return `ENVID must not exceed ${ENVID_MAX} characters (RFC 3461 section 4.4)`;
  return undefined;
}

/** Why a NOTIFY list is not valid (RFC 3461 §4.1), or undefined. */
export function notifyProblem(notify: unknown): string | undefined {
  if (!Array.isArray(notify) || notify.length === 0) return 'NOTIFY must name NEVER or one or more of SUCCESS, FAILURE, DELAY';
  if (notify.some((n) => typeof n !== 'string' || !NOTIFY_VALUES.has(n))) return 'NOTIFY values are NEVER, SUCCESS, FAILURE and DELAY';
  if (notify.includes('NEVER') && notify.length > 1) return 'NOTIFY=NEVER cannot be combined with other values';
  if (new Set(notify).size !== notify.length) return 'NOTIFY names a value twice';
  return undefined;
}

/** Why a decoded ORCPT is not valid (RFC 3461 §4.2), or undefined. */
export function orcptProblem(orcpt: unknown, utf8Allowed = false): string | undefined {
  if (typeof orcpt !== 'string' || !ORCPT.test(orcpt)) return 'ORCPT must be addr-type;address (e.g. rfc822;user@example.com)';
  if (orcpt.length > ORCPT_MAX) return `ORCPT must not exceed ${ORCPT_MAX} characters (RFC 3461 section 4.2)`;
  // utf-8 addresses (RFC 6533) only in a transaction that is SMTPUTF8 anyway
  if (!utf8Allowed && !PRINTABLE.test(orcpt)) return 'ORCPT must be US-ASCII without SMTPUTF8';
  return undefined;
}

/**
 * Checks the DSN fields of a record from elsewhere (queue import): every value must be
 * one intake could have stored. Returns the first problem, or undefined.
 */
export function storedDsnProblem(meta: StoredDsn & { recipients: string[] }): string | undefined {
  if (meta.dsn !== undefined) {
    if (typeof meta.dsn !== 'object' || meta.dsn === null) return 'dsn must be an object';
    const extra = Object.keys(meta.dsn).find((k) => k !== 'ret' && k !== 'envid');
    if (extra) return `dsn has an unknown field ${extra}`;
    if (meta.dsn.ret !== undefined && retProblem(meta.dsn.ret)) return `dsn.ret: ${retProblem(meta.dsn.ret)}`;
    if (meta.dsn.envid !== undefined && envidProblem(meta.dsn.envid)) return `dsn.envid: ${envidProblem(meta.dsn.envid)}`;
  }
  if (meta.rcptDsn !== undefined) {
    if (typeof meta.rcptDsn !== 'object' || meta.rcptDsn === null) return 'rcptDsn must be an object';
    const rcpts = new Set(meta.recipients);
    for (const [rcpt, p] of Object.entries(meta.rcptDsn)) {
      if (!rcpts.has(rcpt)) return `rcptDsn names ${rcpt}, which is not a recipient`;
      if (typeof p !== 'object' || p === null) return `rcptDsn[${rcpt}] must be an object`;
      const extra = Object.keys(p).find((k) => k !== 'notify' && k !== 'orcpt');
      if (extra) return `rcptDsn[${rcpt}] has an unknown field ${extra}`;
      if (p.notify !== undefined && notifyProblem(p.notify)) return `rcptDsn[${rcpt}].notify: ${notifyProblem(p.notify)}`;
      if (p.orcpt !== undefined && orcptProblem(p.orcpt, true)) return `rcptDsn[${rcpt}].orcpt: ${orcptProblem(p.orcpt, true)}`;
    }
  }
  return undefined;
}

/** Whether a notice of this kind goes to the sender for `rcpt` (RFC 3461 §4.1; no NOTIFY: failures only). */
export function wantsNotice(meta: StoredDsn, rcpt: string, kind: 'SUCCESS' | 'FAILURE' | 'DELAY'): boolean {
  const notify = meta.rcptDsn?.[rcpt]?.notify;
  if (!notify) return kind === 'FAILURE';
  return notify.includes(kind);
}
