// One suppression list per fleet: with Redis configured, every pod of a relay sees an
// entry another pod added (or the CLI removed) within moments, instead of mailing a
// recipient again through pod 1 that bounced through pod 0.
//
// Redis holds one key per live entry (<prefix>sup:<scope>:<address>, JSON, expiring with
// the entry) and a channel announcing changes. The local journal stays the durable copy
// and the fallback: remote changes are appended to it, so a pod restarted while Redis is
// down still refuses what the fleet knew. After a connection loss, a full sync settles
// the difference: entries added here while away are pushed; entries Redis no longer has
// that this pod knew before it lost the connection were removed elsewhere.
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Logger } from '../log.ts';
import { createLimiterRedis } from '../limits/redis.ts';
import type { RedisLimiterConfig } from '../limits/schema.ts';
import type { JournalRecord, SuppressionEntry } from './journal.ts';
import type { SuppressionList } from './list.ts';

const SCAN_BATCH = 500;

export function fleetKeys(prefix: string) {
  return {
    pattern: `${prefix}sup:*`,
    entry: (scope: string, address: string) => `${prefix}sup:${scope}:${address}`,
    channel: `${prefix}sup-changes`,
  };
}

/** Live entries in Redis (bounded by the key space, read in batches). */
export async function fleetEntries(redis: Redis, prefix: string): Promise<SuppressionEntry[]> {
  const keys = fleetKeys(prefix);
  const out: SuppressionEntry[] = [];
  let cursor = '0';
  do {
    const [next, batch] = await redis.scan(cursor, 'MATCH', keys.pattern, 'COUNT', SCAN_BATCH);
    cursor = next;
    if (batch.length === 0) continue;
    for (const v of await redis.mget(...batch)) {
      if (!v) continue;
      try {
        const e = JSON.parse(v) as SuppressionEntry;
        if (typeof e.address === 'string' && typeof e.scope === 'string' && typeof e.expiresAt === 'number') out.push(e);
      } catch { /* a foreign value under our prefix: not ours to read */ }
    }
  } while (cursor !== '0');
  return out.sort((a, b) => a.addedAt - b.addedAt);
}

/** Writes records to Redis and announces them. */
export async function fleetPublish(redis: Redis, prefix: string, records: JournalRecord[], origin: string): Promise<void> {
  const keys = fleetKeys(prefix);
  const tx = redis.multi();
  for (const r of records) {
    if (r.op === 'add') {
      const { op: _op, ...entry } = r;
      tx.set(keys.entry(r.scope, r.address), JSON.stringify(entry), 'PXAT', Math.max(entry.expiresAt, Date.now() + 1));
    } else tx.del(keys.entry(r.scope, r.address));
  }
  tx.publish(keys.channel, JSON.stringify({ origin, records }));
  await tx.exec();
}

export interface FleetSuppressionOptions {
  config: RedisLimiterConfig;
  list: SuppressionList;
  log: Logger;
}

export class FleetSuppression {
  private readonly origin = randomUUID();
  private readonly redis: Redis;
  private readonly sub: Redis;
  private readonly list: SuppressionList;
  private readonly log: Logger;
  private readonly prefix: string;
  /** When this pod last stopped hearing the fleet (-Infinity: never heard it yet, push everything). */
  private lostAt = -Infinity;
  private connected = false;
  private syncing: Promise<void> = Promise.resolve();

  constructor(opts: FleetSuppressionOptions) {
    this.list = opts.list;
    this.log = opts.log.child({ component: 'suppression-fleet' });
    this.prefix = opts.config.keyPrefix;
    this.redis = createLimiterRedis(opts.config);
    this.sub = this.redis.duplicate();
    const keys = fleetKeys(this.prefix);
    for (const c of [this.redis, this.sub]) c.on('error', () => {}); // reported through the state below
    this.sub.on('message', (_channel: string, text: string) => { void this.onMessage(text); });
    this.sub.on('ready', () => {
      this.sub.subscribe(keys.channel).then(() => this.resync(), (err: Error) => this.log.warn({ err: err.message }, 'suppression: subscribe failed'));
    });
    const lost = () => {
      if (!this.connected) return;
      this.log.warn('suppression: lost Redis; the local journal serves until it returns');
      this.lostAt = Date.now();
      this.connected = false;
    };
    this.sub.on('close', lost);
    this.redis.on('close', lost);
    this.list.onChange((records) => { void this.publish(records); });
    // A change that failed on a live connection (a timeout) gets no reconnect to trigger a sync.
    this.timer = setInterval(() => { if (!this.connected && this.sub.status === 'ready') void this.resync(); }, 5_000);
    this.timer.unref();
  }

  private readonly timer: NodeJS.Timeout;

  /** True once the first full sync with Redis finished (and the connection holds). */
  get inSync(): boolean { return this.connected; }

  private async publish(records: JournalRecord[]): Promise<void> {
    try {
      await fleetPublish(this.redis, this.prefix, records, this.origin);
    } catch (err) {
      // The journal has it; the next sync after Redis returns pushes it.
      const first = Math.min(...records.map((r) => (r.op === 'add' ? r.addedAt : r.at)));
      if (this.connected) this.lostAt = first;
      else if (this.lostAt !== -Infinity) this.lostAt = Math.min(this.lostAt, first);
      this.connected = false;
      this.log.warn({ err: (err as Error).message, records: records.length }, 'suppression: change not shared with the fleet yet');
    }
  }

  private async onMessage(text: string): Promise<void> {
    try {
      const msg = JSON.parse(text) as { origin?: string; records?: JournalRecord[] };
      if (msg.origin === this.origin || !Array.isArray(msg.records)) return;
      const records = msg.records.filter((r) => (r.op === 'add' || r.op === 'remove') && typeof r.address === 'string' && typeof r.scope === 'string');
      const applied = await this.list.applyRemote(records);
      if (applied) this.log.info({ records: applied }, 'suppression: applied changes from the fleet');
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'suppression: unreadable change from the fleet');
    }
  }

  private resync(): Promise<void> {
    this.syncing = this.syncing.then(() => this.syncNow()).catch((err: Error) => {
      this.log.warn({ err: err.message }, 'suppression: sync with Redis failed; retried when the connection returns');
    });
    return this.syncing;
  }

  private async syncNow(): Promise<void> {
    const remote = await fleetEntries(this.redis, this.prefix);
    const key = (e: SuppressionEntry) => `${e.scope} ${e.address}`;
    const remoteKeys = new Set(remote.map(key));
    const pulled = await this.list.applyRemote(remote.map((e) => ({ op: 'add', ...e })));
    const local = this.list.list().filter((e) => !remoteKeys.has(key(e)));
    const push = local.filter((e) => e.addedAt >= this.lostAt);
    const gone = local.filter((e) => e.addedAt < this.lostAt);
    if (push.length) await fleetPublish(this.redis, this.prefix, push.map((e) => ({ op: 'add', ...e })), this.origin);
    const now = Date.now();
    const dropped = await this.list.applyRemote(gone.map((e) => ({ op: 'remove', address: e.address, scope: e.scope, at: now })));
    this.connected = true;
    this.log.info({ pulled, pushed: push.length, dropped }, 'suppression: in sync with the fleet');
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    this.list.onChange(() => {});
    await this.syncing;
    this.sub.disconnect();
    this.redis.disconnect();
  }
}
