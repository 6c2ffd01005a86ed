// `mailfleet suppression list|add|remove`: on the pod's journal (--data-dir, or the
// config's dataDir), and, when the config names Redis, on the fleet's list there too,
// so a removal reaches every pod and `list` shows what the whole fleet refuses.
import fs from 'node:fs';
import { parseCommand, UsageError } from './args.ts';
import { loadConfigFile } from '../relay/config/load.ts';
import type { RelayConfig } from '../relay/config/schema.ts';
import { createLimiterRedis } from '../relay/limits/redis.ts';
import {
  addSuppression, fleetEntries, fleetPublish, listSuppressions, normalizeAddress, normalizeScope, PLATFORM, removeSuppression,
  type JournalRecord, type SuppressionEntry,
} from '../relay/suppression/index.ts';

function row(e: SuppressionEntry): string {
  return `${e.scope}\t${e.address}\t${new Date(e.addedAt).toISOString()}\texpires ${new Date(e.expiresAt).toISOString()}\t${e.code ?? ''}\t${e.reason}\n`;
}

async function withRedis<T>(redis: NonNullable<RelayConfig['redis']>, fn: (r: ReturnType<typeof createLimiterRedis>) => Promise<T>): Promise<T> {
  const r = createLimiterRedis({ ...redis, commandTimeoutMs: Math.max(redis.commandTimeoutMs, 5_000) });
  let lastError = '';
  r.on('error', (e: Error) => { lastError = e.message; });
  try {
    // The client has no offline queue (relay settings): wait for the connection first.
    if (r.status !== 'ready') {
      await new Promise<void>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`redis ${redis.url} not reachable within ${redis.connectTimeoutMs} ms${lastError ? `: ${lastError}` : ''}`)), redis.connectTimeoutMs);
        r.once('ready', () => { clearTimeout(t); resolve(); });
      });
    }
    return await fn(r);
  } finally {
    r.disconnect();
  }
}

export async function runSuppression(args: string[]): Promise<number> {
  const { values, positionals } = parseCommand(args, {
    config: { type: 'string', short: 'c' }, 'data-dir': { type: 'string' }, scope: { type: 'string' }, reason: { type: 'string' },
  }, true);
  const [sub, address, ...extra] = positionals;
  if (sub !== 'list' && sub !== 'remove' && sub !== 'add') throw new UsageError(sub ? `unknown subcommand '${sub}'` : 'give a subcommand: list, add ADDRESS or remove ADDRESS');
  if (sub !== 'list' && !address) throw new UsageError(`give the ADDRESS to ${sub}`);
  const unexpected = sub === 'list' ? address : extra[0];
  if (unexpected) throw new UsageError(`unexpected argument '${unexpected}'`);
  if (values.reason !== undefined && sub !== 'add') throw new UsageError('--reason goes with add');
  const cfg = values.config ? loadConfigFile(values.config) : undefined;
  const dataDir = values['data-dir'] ?? cfg?.dataDir;
  if (!dataDir) throw new UsageError('give --config FILE or --data-dir DIR');
  let scope: string | undefined;
  try {
    scope = values.scope === undefined ? undefined : normalizeScope(values.scope);
    if (address) normalizeAddress(address);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const redis = cfg?.redis;
  const local = fs.existsSync(dataDir);
  const origin = `cli-${process.pid}`;

  if (sub === 'list') {
    const entries = redis
      ? (await withRedis(redis, (r) => fleetEntries(r, redis.keyPrefix))).filter((e) => scope === undefined || e.scope === scope)
      : await listSuppressions(dataDir, Date.now(), scope);
    for (const e of entries) process.stdout.write(row(e));
    return 0;
  }
  if (sub === 'add') {
    const ttl = (cfg?.suppression.ttlHours ?? 24 * 30) * 3_600_000;
    const entry = await addSuppression(dataDir, address!, { reason: values.reason ?? 'added by hand', source: 'cli' }, ttl, Date.now(), scope ?? PLATFORM);
    if (redis) await withRedis(redis, (r) => fleetPublish(r, redis.keyPrefix, [{ op: 'add', ...entry }], origin));
    process.stdout.write(`suppressed ${entry.address} on ${entry.scope === PLATFORM ? 'the platform-wide list' : `the list of ${entry.scope}`}\n`);
    return 0;
  }
  let removed = local ? await removeSuppression(dataDir, address!, Date.now(), scope) : false;
  if (redis) {
    const addr = normalizeAddress(address!);
    removed = await withRedis(redis, async (r) => {
      const now = Date.now();
      const records: JournalRecord[] = (await fleetEntries(r, redis.keyPrefix))
        .filter((e) => e.address === addr && (scope === undefined || e.scope === scope))
        .map((e) => ({ op: 'remove', address: addr, scope: e.scope, at: now }));
      if (records.length) await fleetPublish(r, redis.keyPrefix, records, origin);
      return records.length > 0;
    }) || removed;
  }
  process.stdout.write(removed ? `removed ${address}\n` : `${address} was not suppressed\n`);
  return removed ? 0 : 1;
}
