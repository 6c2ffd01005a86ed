// Recipients that hard-bounced are not tried again until their entry expires.
// The relay holds a SuppressionList; the CLI uses the pure functions below on the same
// data dir while the relay runs (see journal.ts for why that is safe).
import { z } from 'zod';
import { appendRecords, newEntry, normalizeAddress, normalizeScope, PLATFORM, readJournal, type JournalRecord, type SuppressionEntry, type SuppressionInfo } from './journal.ts';

export { SuppressionList } from './list.ts';
export { FleetSuppression, fleetEntries, fleetPublish } from './fleet.ts';
export type { SuppressionListOptions } from './list.ts';
export { normalizeAddress, normalizeScope, journalName, journalPath, PLATFORM } from './journal.ts';
export type { SuppressionEntry, SuppressionInfo, JournalRecord } from './journal.ts';

export const suppressionSchema = z
  .strictObject({
    enabled: z.boolean().default(true).describe('Refuse recipients that hard-bounced (550 5.1.1 at RCPT)'),
    ttlHours: z.number().positive().default(24 * 30).describe('How long a hard bounce keeps a recipient suppressed, in hours'),
    scope: z.enum(['sender-domain', 'platform']).default('sender-domain')
      .describe('Whose list a hard bounce lands on: the sender domain whose mail bounced (tenants never affect each other), or the platform-wide list every sender is checked against'),
  });

export type SuppressionConfig = z.infer<typeof suppressionSchema>;

/** Live entries in dataDir, oldest first; one scope's when given. For `mailfleet suppression list`. */
export async function listSuppressions(dataDir: string, now = Date.now(), scope?: string): Promise<SuppressionEntry[]> {
  const map = await readJournal(dataDir, now);
  const only = scope === undefined ? undefined : normalizeScope(scope);
  return [...map.values()].filter((e) => only === undefined || e.scope === only).sort((a, b) => a.addedAt - b.addedAt);
}

/**
 * Remove an address (durably) from one scope, or every scope; a running relay sees it at
 * its next poll (and shares it with the fleet). Returns whether a live entry existed.
 * For `mailfleet suppression remove`.
 */
export async function removeSuppression(dataDir: string, address: string, now = Date.now(), scope?: string): Promise<boolean> {
  const addr = normalizeAddress(address);
  const records: JournalRecord[] = (await listSuppressions(dataDir, now, scope))
    .filter((e) => e.address === addr)
    .map((e) => ({ op: 'remove', address: addr, scope: e.scope, at: now }));
  if (records.length === 0) return false;
  await appendRecords(dataDir, records);
  return true;
}

/** Add an address by hand (platform-wide unless a scope is given). For `mailfleet suppression add`. */
export async function addSuppression(
  dataDir: string,
  address: string,
  info: SuppressionInfo,
  ttlMs: number,
  now = Date.now(),
  scope: string = PLATFORM,
): Promise<SuppressionEntry> {
  const entry = newEntry(address, info, ttlMs, now, scope);
  await appendRecords(dataDir, [{ op: 'add', ...entry }]);
  return entry;
}
