// A bounded SMTP protocol fuzzer: random and mutated SMTP thrown at every listener of a
// running relay (test/security/world.ts) for a fixed time, by a few parallel workers,
// from many loopback addresses. Two properties are checked:
//  1. every message the relay answered 250 arrives at the next hop as exactly the bytes
//     that were sent (the relay may only put trace and DKIM fields in front), with CRLF
//     line endings only and exactly one From: it never says 250 to one message and
//     delivers another;
//  2. afterwards the relay still serves a legitimate client (the caller checks).
// Deterministic per seed; every loop, reply and connection is bounded.
import { SmtpTalk, authPlain, type Reply } from '../support/smtp-talk.ts';
import { PASSWORD, type SecurityWorld } from './world.ts';

export interface FuzzReport {
  connections: number;
  commands: number;
  accepted: Array<{ id: string; sent: string }>;
  replies: Record<string, number>;
  violations: string[];
}

class Rng {
  private s: number;
  constructor(seed: number) { this.s = seed >>> 0 || 1; }
  next(): number { this.s ^= this.s << 13; this.s ^= this.s >>> 17; this.s ^= this.s << 5; return (this.s >>> 0) / 0x100000000; }
  int(n: number): number { return Math.floor(this.next() * n); }
  pick<T>(xs: readonly T[]): T { return xs[this.int(xs.length)]!; }
  chance(p: number): boolean { return this.next() < p; }
}

const NASTY = ['\r', '\n', '\r\n', '\0', '.', '\r\n.\r\n', '\n.\n', '\r.\r', ':', ' ', '\t', '<', '>', '@', '%', '!', '\x7f', '\xff', 'é', '=', '"'];
const HEADER_NAMES = ['From', 'FROM', 'From ', 'From\t', 'To', 'Bcc', 'Subject', 'X-A', 'Sender', 'Reply-To', 'Received', 'DKIM-Signature'];

function mutate(r: Rng, s: string, rounds: number): string {
  let out = s;
  for (let i = 0; i < rounds; i++) {
    const at = r.int(out.length + 1);
    switch (r.int(4)) {
      case 0: out = out.slice(0, at) + r.pick(NASTY) + out.slice(at); break;
      case 1: out = out.slice(0, at) + out.slice(at + 1 + r.int(3)); break;
      case 2: out = out.slice(0, at) + String.fromCharCode(r.int(256)) + out.slice(at + 1); break;
      default: out = out.slice(0, at) + out.slice(r.int(out.length + 1)).slice(0, 40) + out.slice(at); break;
    }
  }
  return out;
}

function message(r: Rng, domain: string): string {
  const fields: string[] = [`From: x@${domain}`, 'To: v@d.test', `Subject: fuzz ${r.int(1e9)}`];
  for (let i = r.int(4); i > 0; i--) fields.splice(r.int(fields.length + 1), 0, `${r.pick(HEADER_NAMES)}: ${r.chance(0.5) ? `ceo@bank.test` : `v${r.int(100)}`}`);
  if (r.chance(0.2)) fields.push(` folded continuation ${r.int(100)}`);
  const body = Array.from({ length: 1 + r.int(5) }, () => (r.chance(0.2) ? '.' : '') + 'line '.repeat(r.int(20))).join('\r\n');
  const raw = `${fields.join('\r\n')}\r\n\r\n${body}\r\n`;
  return r.chance(0.6) ? mutate(r, raw, 1 + r.int(4)) : raw;
}

function command(r: Rng): string {
  const base = r.pick([
    'EHLO fuzz.test', 'HELO fuzz.test', 'NOOP', 'RSET', 'QUIT', 'VRFY x', 'EXPN x', 'HELP', 'STARTTLS', 'DATA', 'BDAT 10',
    'MAIL FROM:<x@b.test>', 'MAIL FROM:<x@b.test> SIZE=10', 'MAIL FROM:<x@b.test> FOO=BAR', 'MAIL FROM:<>', 'MAIL FROM:<ceo@bank.test>',
    'RCPT TO:<v@d.test>', 'RCPT TO:<v%w@d.test>', 'RCPT TO:<@a,@b:v@d.test>', 'AUTH PLAIN', `AUTH PLAIN ${authPlain('b.test', 'wrong')}`,
    'AUTH LOGIN', 'XCLIENT ADDR=1.2.3.4', 'GET / HTTP/1.1', 'x'.repeat(600),
  ]);
  return r.chance(0.5) ? mutate(r, base, 1 + r.int(3)).replace(/\r?\n/g, r.chance(0.5) ? '\n' : '') : base;
}

async function quietly<T>(p: Promise<T>): Promise<T | undefined> {
  try { return await p; } catch { return undefined; }
}

/** One hostile or half-hostile connection: random commands, maybe a mutated message. */
async function hostile(w: SecurityWorld, r: Rng, report: FuzzReport, worker: number): Promise<void> {
  const listener = r.pick(['submission', 'smtps', 'plain', 'proxied'] as const);
  const localAddress = `127.0.${3 + worker}.${1 + r.int(250)}`;
  let preamble: Buffer | undefined;
  if (listener === 'proxied') {
    preamble = r.chance(0.7)
      ? Buffer.from(`PROXY TCP4 192.0.2.${r.int(255)} 127.0.0.1 ${1024 + r.int(60000)} 25\r\n`)
      : Buffer.from(mutate(r, 'PROXY TCP4 192.0.2.1 127.0.0.1 5000 25\r\n', 2), 'latin1');
  }
  const connected = await quietly(SmtpTalk.connect(w.ports[listener], '127.0.0.1', { tls: listener === 'smtps', localAddress, ...(preamble ? { preamble } : {}) }));
  report.connections++;
  if (!connected) return;
  const { talk } = connected;
  try {
    for (let i = 0, n = 1 + r.int(12); i < n && !talk.closed; i++) {
      const line = command(r);
      talk.write(`${line}\r\n`);
      report.commands++;
      const reply = await quietly(talk.read(5_000));
      if (!reply) break;
      report.replies[String(reply.code)] = (report.replies[String(reply.code)] ?? 0) + 1;
      if (reply.code === 354) {
        talk.write(`${message(r, 'b.test').replace(/(^|\r\n)\./g, '$1..')}\r\n.\r\n`);
        const end = await quietly(talk.read(10_000));
        // An unauthenticated session cannot get here with a 250 (no trusted address is used).
        if (end?.code === 250) report.violations.push(`unauthenticated message accepted on ${listener}: ${end.text}`);
      }
    }
  } finally {
    talk.close();
  }
}

/** An authenticated tenant sending mutated messages; what it got 250 for is recorded. */
async function tenant(w: SecurityWorld, r: Rng, report: FuzzReport, worker: number): Promise<void> {
  const localAddress = `127.0.${3 + worker}.${1 + r.int(250)}`;
  const connected = await quietly(SmtpTalk.connect(w.ports.submission, '127.0.0.1', { localAddress }));
  report.connections++;
  if (!connected) return;
  const { talk } = connected;
  try {
    const step = async (line: string): Promise<Reply | undefined> => { report.commands++; return quietly(talk.cmd(line)); };
    await step('EHLO tenant.test');
    if ((await quietly(talk.starttls()))?.code !== 220) return;
    await step('EHLO tenant.test');
    const user = r.pick(['b.test', 'signed.test']);
    if ((await step(`AUTH PLAIN ${authPlain(user, PASSWORD)}`))?.code !== 235) return;
    for (let i = 0, n = 1 + r.int(3); i < n && !talk.closed; i++) {
      if ((await step(`MAIL FROM:<x@${user}>`))?.code !== 250) return;
      if ((await step('RCPT TO:<v@d.test>'))?.code !== 250) return;
      if ((await step('DATA'))?.code !== 354) return;
      // The message content is everything before ".\r\n" at a line start, its last CRLF included.
      let sent = message(r, user);
      if (!sent.endsWith('\r\n')) sent += '\r\n';
      talk.write(`${sent.replace(/(^|\r\n)\./g, '$1..')}.\r\n`);
      const end = await quietly(talk.read(15_000));
      if (!end) return;
      report.replies[String(end.code)] = (report.replies[String(end.code)] ?? 0) + 1;
      const id = /queued as ([0-9A-Z]+)/.exec(end.text)?.[1];
      if (end.code === 250 && id) report.accepted.push({ id, sent });
    }
  } finally {
    talk.close();
  }
}

/** Runs workers for durationMs; then checks every accepted message against the sink. */
export async function fuzz(w: SecurityWorld, opts: { durationMs: number; seed: number; workers?: number }): Promise<FuzzReport> {
  const report: FuzzReport = { connections: 0, commands: 0, accepted: [], replies: {}, violations: [] };
  const deadline = Date.now() + opts.durationMs;
  const workers = opts.workers ?? 6;
  await Promise.all(Array.from({ length: workers }, async (_, worker) => {
    const r = new Rng(opts.seed * 1000 + worker);
    // Bounded by the deadline; each turn is bounded by its reply timeouts.
    while (Date.now() < deadline) {
      if (r.chance(0.35)) await tenant(w, r, report, worker);
      else await hostile(w, r, report, worker);
    }
  }));
  await checkDelivered(w, report);
  return report;
}

async function checkDelivered(w: SecurityWorld, report: FuzzReport): Promise<void> {
  const deadline = Date.now() + 60_000;
  const find = (id: string) => w.sink.messages.find((m) => m.data!.toString('latin1').includes(`\tid ${id}`));
  // Bounded: waits at most 60 s for the queue to deliver what it accepted.
  while (report.accepted.some((a) => !find(a.id)) && Date.now() < deadline) await new Promise((res) => setTimeout(res, 200));
  for (const a of report.accepted) {
    const got = find(a.id);
    if (!got) { report.violations.push(`accepted ${a.id} never reached the next hop`); continue; }
    const text = got.data!.toString('latin1');
    // SmtpTalk writes strings as UTF-8; the sink's bytes are read as latin1.
    const sent = Buffer.from(a.sent, 'utf8').toString('latin1');
    // The relay puts Received (and DKIM-Signature) in front; the rest is what was sent, minus Bcc fields.
    const expected = stripBcc(sent);
    if (!text.endsWith(expected)) report.violations.push(`message ${a.id}: delivered bytes differ from the bytes accepted: ${JSON.stringify(a.sent.slice(0, 200))}`);
    if (text.replace(/\r\n/g, '').match(/[\r\n]/)) report.violations.push(`message ${a.id}: delivered with a bare CR or LF`);
    const head = text.slice(0, text.indexOf('\r\n\r\n') + 2);
    const froms = head.split('\r\n').filter((l) => /^from[ \t]*:/i.test(l));
    if (froms.length !== 1) report.violations.push(`message ${a.id}: delivered with ${froms.length} From fields`);
  }
}

function stripBcc(message: string): string {
  const end = message.indexOf('\r\n\r\n');
  const head = end < 0 ? message : message.slice(0, end + 2);
  const rest = end < 0 ? '' : message.slice(end + 2);
  const lines = head.split(/(?<=\r\n)/);
  const out: string[] = [];
  let skipping = false;
  for (const l of lines) {
    if (/^[ \t]/.test(l)) { if (!skipping) out.push(l); continue; }
    skipping = /^bcc[ \t]*:/i.test(l);
    if (!skipping) out.push(l);
  }
  return out.join('') + rest;
}

export function summary(r: FuzzReport): string {
  return `connections ${r.connections}, commands ${r.commands}, accepted ${r.accepted.length}, replies ${JSON.stringify(r.replies)}, violations ${r.violations.length}`;
}
