// RFC 3461 parameters at intake. smtp-server (with DSN announced) has already split the
// parameters, decoded their xtext, refused control characters, checked RET and NOTIFY's
// words and ORCPT's "type;" prefix; what it leaves is checked here (ENVID and ORCPT length
// and character set, NOTIFY repeated) before anything is stored. A bad value is 501 5.5.4.
import type { SMTPServerAddress, SMTPServerSession } from 'smtp-server';
import { envidProblem, notifyProblem, orcptProblem, retProblem, type DsnNotify, type EnvelopeDsn, type RecipientDsn, type StoredDsn } from '../queue/dsn.ts';
import { smtpError, type SmtpError } from './replies.ts';

type Args = Record<string, string | boolean> | false | undefined;

function arg(args: Args, name: string): string | boolean | undefined {
  if (!args) return undefined;
  const key = Object.keys(args).find((k) => k.toUpperCase() === name);
  return key === undefined ? undefined : args[key];
}

function bad(message: string): SmtpError {
  return smtpError(501, '5.5.4', message);
}

/** The MAIL command's RET and ENVID, or an SmtpError (501 5.5.4) saying what is wrong. */
export function mailDsn(address: SMTPServerAddress): EnvelopeDsn | SmtpError | undefined {
  const args = address.args as Args;
  const ret = arg(args, 'RET');
  const envid = arg(args, 'ENVID');
  const out: EnvelopeDsn = {};
  if (ret !== undefined) {
    const value = typeof ret === 'string' ? ret.toUpperCase() : ret;
    const problem = retProblem(value);
    if (problem) return bad(problem);
    out.ret = value as 'FULL' | 'HDRS';
  }
  if (envid !== undefined) {
    const problem = envidProblem(envid);
    if (problem) return bad(problem);
    out.envid = envid as string;
  }
  return Object.keys(out).length ? out : undefined;
}

/** The RCPT command's NOTIFY and ORCPT, or an SmtpError (501 5.5.4) saying what is wrong. */
export function rcptDsn(address: SMTPServerAddress, session: SMTPServerSession): RecipientDsn | SmtpError | undefined {
  const args = address.args as Args;
  const notify = arg(args, 'NOTIFY');
  const orcpt = arg(args, 'ORCPT');
  const out: RecipientDsn = {};
  if (notify !== undefined) {
    const list = typeof notify === 'string' ? notify.toUpperCase().split(',') : notify;
    const problem = notifyProblem(list);
    if (problem) return bad(problem);
    out.notify = list as DsnNotify[];
  }
  if (orcpt !== undefined) {
    const problem = orcptProblem(orcpt, Boolean((session.envelope as { smtpUtf8?: boolean }).smtpUtf8));
    if (problem) return bad(problem);
    out.orcpt = orcpt as string;
  }
  return Object.keys(out).length ? out : undefined;
}

/** The queue record's DSN fields for the transaction in `session` (empty when it had none). */
export function envelopeDsn(session: SMTPServerSession): StoredDsn {
  const from = session.envelope.mailFrom;
  const dsn = from ? mailDsn(from) : undefined;
  const perRcpt: Record<string, RecipientDsn> = {};
  for (const r of session.envelope.rcptTo) {
    const p = rcptDsn(r, session);
    // already checked when the command was accepted: only valid values reach here
    if (p && !(p instanceof Error)) perRcpt[r.address] = p;
  }
  return {
    ...(dsn && !(dsn instanceof Error) ? { dsn } : {}),
    ...(Object.keys(perRcpt).length ? { rcptDsn: perRcpt } : {}),
  };
}
