// Recipients that hard-bounced are not tried again until their entry expires.
// The relay holds a SuppressionList; the CLI uses the pure functions below on the same
// data dir while the relay runs (see journal.ts for why that is safe).
import { z } from 'zod';
import { appendRecords, newEntry, normalizeAddress, readJournal, type SuppressionEntry, type SuppressionInfo } from './journal.ts';

export { SuppressionList } from './list.ts';
export type { SuppressionListOptions } from './list.ts';
export { normalizeAddress, journalName, journalPath } from './journal.ts';
export type { SuppressionEntry, SuppressionInfo } from './journal.ts';

export const suppressionSchema = z
  .strictObject({
    enabled: z.boolean().default(true).describe('Refuse recipients that hard-bounced (550 5.1.1 at RCPT)'),
    ttlHours: z.number().positive().default(24 * 30).describe('How long a hard bounce keeps a recipient suppressed, in hours'),
  });

export type SuppressionConfig = z.infer<typeof suppressionSchema>;

/** Live entries in dataDir, oldest first. For `mailfleet suppression list`. */
export async function listSuppressions(dataDir: string, now = Date.now()): Promise<SuppressionEntry[]> {
  const map = await readJournal(dataDir, now);
  return [...map.values()].sort((a, b) => a.addedAt - b.addedAt);
}

/**
 * Remove an address (durably); a running relay sees it at its next poll.
 * Returns whether a live entry existed. For `mailfleet suppression remove`.
 */
export async function removeSuppression(dataDir: string, address: string, now = Date.now()): Promise<boolean> {
  const key = normalizeAddress(address);
  const map = await readJournal(dataDir, now);
  if (!map.has(key)) return false;
  await appendRecords(dataDir, [{ op: 'remove', address: key, at: now }]);
  return true;
}

/** Add an address by hand. For `mailfleet suppression add`. */
export async function addSuppression(
  dataDir: string,
  address: string,
  info: SuppressionInfo,
  ttlMs: number,
  now = Date.now(),
): Promise<SuppressionEntry> {
  const entry = newEntry(address, info, ttlMs, now);
  await appendRecords(dataDir, [{ op: 'add', ...entry }]);
  return entry;
}
