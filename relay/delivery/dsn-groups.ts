// nodemailer's `dsn` envelope option is one set of RFC 3461 parameters per transaction
// (RET and ENVID belong to MAIL, but NOTIFY and ORCPT apply to every RCPT of it), so the
// recipients of one send are grouped by their NOTIFY and ORCPT: each group is one
// transaction. Recipients without parameters form one group; a message without any DSN
// parameters stays one transaction without the option.
import type { DeliveryJob } from './types.ts';
import type { OutgoingMail } from './pools.ts';

export interface DsnGroup {
  rcpts: string[];
  dsn?: OutgoingMail['dsn'];
}

export function dsnGroups(job: Pick<DeliveryJob, 'dsn' | 'rcptDsn'>, rcpts: string[]): DsnGroup[] {
  if (!job.dsn && !job.rcptDsn) return [{ rcpts }];
  const groups = new Map<string, DsnGroup>();
  for (const r of rcpts) {
    const p = job.rcptDsn?.[r];
    const key = JSON.stringify([p?.notify ?? null, p?.orcpt ?? null]);
    let g = groups.get(key);
    if (!g) {
      const dsn: NonNullable<OutgoingMail['dsn']> = {
        ...(job.dsn?.ret ? { ret: job.dsn.ret } : {}), ...(job.dsn?.envid ? { envid: job.dsn.envid } : {}),
        ...(p?.notify ? { notify: p.notify } : {}), ...(p?.orcpt ? { orcpt: p.orcpt } : {}),
      };
      g = { rcpts: [], ...(Object.keys(dsn).length ? { dsn } : {}) };
      groups.set(key, g);
    }
    g.rcpts.push(r);
  }
  return [...groups.values()];
}
