// `mailfleet queue …`: queue control against a running relay (its admin API, --url) or
// offline on a data dir (--data-dir / --config) when no relay runs on it; and `queue
// import`, which moves the messages of another relay's data dir (a PVC whose pod is gone)
// into this one with their envelope, state and arrival time.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { parseCommand, UsageError } from './args.ts';
import type { QueueEntry, QueueFilter } from '../relay/queue/control.ts';
import type { DeliveryState } from '../relay/queue/store.ts';

const OPTIONS = {
  url: { type: 'string' },
  'token-file': { type: 'string' },
  'data-dir': { type: 'string' },
  config: { type: 'string', short: 'c' },
  sender: { type: 'string' },
  recipient: { type: 'string' },
  'min-age': { type: 'string' },
  'max-age': { type: 'string' },
  all: { type: 'boolean' },
  dsn: { type: 'boolean' },
  json: { type: 'boolean' },
  'keep-source': { type: 'boolean' },
} as const;

/** One way to reach the queue: the same operations over HTTP or on the files. */
interface Target {
  list(filter: QueueFilter): Promise<QueueEntry[]>;
  show(id: string): Promise<unknown>;
  retry(id: string): Promise<string>;
  retryAll(filter: QueueFilter): Promise<{ scheduled: string[]; skipped: string[] }>;
  hold(id: string): Promise<void>;
  release(id: string): Promise<void>;
  delete(id: string, dsn: boolean): Promise<{ dsnQueueId?: string }>;
  import(file: string, state: DeliveryState | undefined): Promise<'imported' | 'exists'>;
  close(): Promise<void>;
}

export async function queueCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseCommand(args, OPTIONS, true);
  const [sub, arg, ...extra] = positionals;
  if (extra.length) throw new UsageError(`unexpected argument '${extra[0]}'`);
  const needsId = ['show', 'hold', 'release', 'delete'];
  if (!sub || ![...needsId, 'list', 'retry', 'import'].includes(sub)) throw new UsageError(sub ? `unknown subcommand '${sub}'` : 'give a subcommand: list, show, retry, hold, release, delete or import');
  if (needsId.includes(sub) && !arg) throw new UsageError(`give the queue ID to ${sub}`);
  if (sub === 'retry' && !arg === !values.all) throw new UsageError('give a queue ID or --all to retry');
  if (sub === 'list' && arg) throw new UsageError(`unexpected argument '${arg}'`);
  if (sub === 'import' && !arg) throw new UsageError('give the SOURCE data dir to import from');
  const filter = await filterOf(values);
  const target = await open(values);
  try {
    switch (sub) {
      case 'list': {
        const list = await target.list(filter);
        if (values.json) process.stdout.write(`${JSON.stringify(list, null, 2)}\n`);
        else printList(list);
        return 0;
      }
      case 'show':
        process.stdout.write(`${JSON.stringify(await target.show(arg!), null, 2)}\n`);
        return 0;
      case 'retry': {
        if (values.all) {
          const r = await target.retryAll(filter);
          process.stdout.write(`scheduled ${r.scheduled.length}${r.skipped.length ? `, skipped ${r.skipped.length} (held or in delivery)` : ''}\n`);
          return 0;
        }
        const r = await target.retry(arg!);
        process.stdout.write(`${arg}: ${r === 'scheduled' ? 'scheduled now' : r === 'held' ? 'on hold (release it to deliver)' : 'in delivery right now'}\n`);
        return r === 'scheduled' ? 0 : 1;
      }
      case 'hold': await target.hold(arg!); process.stdout.write(`${arg}: on hold\n`); return 0;
      case 'release': await target.release(arg!); process.stdout.write(`${arg}: released, scheduled now\n`); return 0;
      case 'delete': {
        const r = await target.delete(arg!, values.dsn ?? false);
        process.stdout.write(`${arg}: deleted${r.dsnQueueId ? `, DSN queued as ${r.dsnQueueId}` : values.dsn ? ' (no DSN: null sender)' : ''}\n`);
        return 0;
      }
      default:
        return await importFrom(arg!, target, values['keep-source'] ?? false);
    }
  } finally {
    await target.close();
  }
}

async function filterOf(values: { sender?: string | undefined; recipient?: string | undefined; 'min-age'?: string | undefined; 'max-age'?: string | undefined }): Promise<QueueFilter> {
  const { parseDuration } = await import('../relay/util/duration.ts');
  const age = (flag: string, v: string | undefined) => {
    if (v === undefined) return undefined;
    try { return parseDuration(v); } catch (err) { throw new UsageError(`--${flag}: ${(err as Error).message}`); }
  };
  return { sender: values.sender, recipient: values.recipient, minAgeMs: age('min-age', values['min-age']), maxAgeMs: age('max-age', values['max-age']) };
}

function printList(list: QueueEntry[]): void {
  for (const e of list) {
    const age = e.ageSeconds >= 3600 ? `${Math.floor(e.ageSeconds / 3600)}h` : e.ageSeconds >= 60 ? `${Math.floor(e.ageSeconds / 60)}m` : `${e.ageSeconds}s`;
    const flags = [e.held ? 'HELD' : '', e.isDsn ? 'DSN' : ''].filter(Boolean).join(',');
    process.stdout.write(`${e.id}\t${age}\t${e.size}\tattempts=${e.attempts}${flags ? `\t${flags}` : ''}\t<${e.from}> -> ${e.open.join(', ')}${e.lastResponse ? `\t(${e.lastResponse})` : ''}\n`);
  }
  process.stdout.write(`${list.length} message${list.length === 1 ? '' : 's'}\n`);
}

async function open(values: { url?: string | undefined; 'token-file'?: string | undefined; 'data-dir'?: string | undefined; config?: string | undefined }): Promise<Target> {
  const offline = values['data-dir'] ?? values.config;
  if (offline && (values.url || values['token-file'])) throw new UsageError('give --url/--token-file (a running relay) or --data-dir/--config (offline), not both');
  if (values.url || values['token-file']) return httpTarget(values.url ?? 'http://127.0.0.1:9464', values['token-file']);
  if (!offline) throw new UsageError('give --url URL --token-file FILE (a running relay) or --data-dir DIR / --config FILE (offline)');
  const { loadConfigFile } = await import('../relay/config/load.ts');
  const cfg = values.config ? loadConfigFile(values.config) : undefined;
  return offlineTarget(values['data-dir'] ?? cfg!.dataDir, cfg?.hostname ?? os.hostname());
}

function httpTarget(base: string, tokenFile: string | undefined): Target {
  if (!tokenFile && !process.env.MAILFLEET_ADMIN_TOKEN) throw new UsageError('give --token-file FILE (or MAILFLEET_ADMIN_TOKEN) for the admin API');
  const token = tokenFile ? fs.readFileSync(tokenFile, 'utf8').trim() : process.env.MAILFLEET_ADMIN_TOKEN!.trim();
  const call = async <T>(method: string, p: string, init: RequestInit = {}, ok: number[] = []): Promise<T & { status: number }> => {
    const res = await fetch(new URL(p, base), { method, ...init, headers: { authorization: `Bearer ${token}`, ...(init.headers as Record<string, string> ?? {}) } });
    const body = await res.json().catch(() => ({})) as T & { error?: string };
    if (!res.ok && !ok.includes(res.status)) throw new Error(`${method} ${p}: ${res.status} ${body.error ?? res.statusText}`);
    return { ...body, status: res.status };
  };
  const q = (f: QueueFilter) => {
    const s = new URLSearchParams();
    if (f.sender) s.set('sender', f.sender);
    if (f.recipient) s.set('recipient', f.recipient);
    if (f.minAgeMs !== undefined) s.set('minAge', `${f.minAgeMs}ms`);
    if (f.maxAgeMs !== undefined) s.set('maxAge', `${f.maxAgeMs}ms`);
    return s.size ? `?${s}` : '';
  };
  const id = (v: string) => encodeURIComponent(v);
  return {
    list: async (f) => (await call<{ messages: QueueEntry[] }>('GET', `/admin/queue${q(f)}`)).messages,
    show: async (v) => { const { status: _s, ...rest } = await call<Record<string, unknown>>('GET', `/admin/queue/${id(v)}`); return rest; },
    retry: async (v) => (await call<{ result: string }>('POST', `/admin/queue/${id(v)}/retry`)).result,
    retryAll: async (f) => call<{ scheduled: string[]; skipped: string[] }>('POST', `/admin/queue/retry${q(f)}`),
    hold: async (v) => { await call('POST', `/admin/queue/${id(v)}/hold`); },
    release: async (v) => { await call('POST', `/admin/queue/${id(v)}/release`); },
    delete: async (v, dsn) => call<{ dsnQueueId?: string }>('DELETE', `/admin/queue/${id(v)}${dsn ? '?dsn=true' : ''}`),
    import: async (file, state) => {
      const r = await call('POST', '/admin/queue/import', {
        body: Readable.toWeb(fs.createReadStream(file)) as ReadableStream, duplex: 'half',
        headers: state ? { 'x-mailfleet-state': Buffer.from(JSON.stringify(state)).toString('base64') } : {},
      } as RequestInit, [409]);
      return r.status === 409 ? 'exists' : 'imported';
    },
    close: async () => {},
  };
}

async function offlineTarget(dataDir: string, hostname: string): Promise<Target> {
  const { relayHolding } = await import('../relay/queue/lock.ts');
  const holder = relayHolding(dataDir);
  if (holder) throw new Error(`a relay (pid ${holder}) is running on ${dataDir}: use --url and --token-file to reach it`);
  const { QueueStore, QueueImportError } = await import('../relay/queue/store.ts');
  const { QueueControl, offlineHooks } = await import('../relay/queue/control.ts');
  const { createLogger } = await import('../relay/log.ts');
  const { store } = await QueueStore.open(path.join(dataDir, 'queue'));
  const control = new QueueControl({ store, hooks: offlineHooks, hostname, log: createLogger(process.env.MAILFLEET_LOG_LEVEL ?? 'warn') });
  return {
    list: async (f) => control.list(f),
    show: (v) => control.show(v),
    retry: (v) => control.retry(v),
    retryAll: (f) => control.retryAll(f),
    hold: (v) => control.hold(v),
    release: (v) => control.release(v),
    delete: (v, dsn) => control.delete(v, { dsn }),
    import: async (file, state) => {
      try {
        await control.import(fs.createReadStream(file), state);
        return 'imported';
      } catch (err) {
        if (err instanceof QueueImportError && err.reason === 'exists') return 'exists';
        throw err;
      }
    },
    close: async () => {},
  };
}

/**
 * Moves every message of SOURCE (a relay data dir, or its queue/ dir) into the target: each
 * source file is removed once the target has it (imported now, or already), so a repeated
 * run continues where one stopped and never imports twice. The source is only read and
 * unlinked: no relay may run on it.
 */
async function importFrom(source: string, target: Target, keepSource: boolean): Promise<number> {
  const queueDir = fs.existsSync(path.join(source, 'queue', 'msg')) ? path.join(source, 'queue') : source;
  const msgDir = path.join(queueDir, 'msg');
  if (!fs.existsSync(msgDir)) throw new Error(`${source} holds no relay queue (no queue/msg directory)`);
  const { relayHolding } = await import('../relay/queue/lock.ts');
  const holder = relayHolding(path.dirname(queueDir));
  if (holder) throw new Error(`a relay (pid ${holder}) is running on ${source}: stop it first`);
  let imported = 0;
  let already = 0;
  const failed: string[] = [];
  for (const name of fs.readdirSync(msgDir).sort()) {
    const file = path.join(msgDir, name);
    const stateFile = path.join(queueDir, 'state', `${name}.json`);
    let state: DeliveryState | undefined;
    try {
      state = JSON.parse(fs.readFileSync(stateFile, 'utf8')) as DeliveryState;
    } catch { state = undefined; }
    try {
      const r = await target.import(file, state);
      if (r === 'imported') imported++; else already++;
      if (!keepSource) { fs.rmSync(stateFile, { force: true }); fs.rmSync(file, { force: true }); }
    } catch (err) {
      failed.push(`${name}: ${(err as Error).message}`);
    }
  }
  process.stdout.write(`imported ${imported}${already ? `, ${already} already there` : ''}${failed.length ? `, ${failed.length} failed` : ''}\n`);
  for (const f of failed) process.stderr.write(`  ${f}\n`);
  return failed.length ? 1 : 0;
}
