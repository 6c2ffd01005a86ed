// Which process serves a data dir: a running relay records its pid and host in
// queue/relay.pid, so offline tools (`mailfleet queue --data-dir`, `queue import`) refuse to
// touch a queue a relay is using. A record of a process that is gone (a crash, a pod that
// was deleted, another host) does not count.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const fileOf = (dataDir: string) => path.join(dataDir, 'queue', 'relay.pid');

/** Records this process as the relay of dataDir; returns the function that removes the record. */
export function claimDataDir(dataDir: string): () => void {
  const file = fileOf(dataDir);
  fs.writeFileSync(file, JSON.stringify({ pid: process.pid, host: os.hostname() }));
  return () => {
    try {
      const rec = JSON.parse(fs.readFileSync(file, 'utf8')) as { pid?: number };
      if (rec.pid === process.pid) fs.rmSync(file, { force: true });
    } catch { /* gone already */ }
  };
}

/** The pid of a live relay on this host using dataDir, if there is one. */
export function relayHolding(dataDir: string): number | undefined {
  let rec: { pid?: unknown; host?: unknown };
  try {
    rec = JSON.parse(fs.readFileSync(fileOf(dataDir), 'utf8')) as typeof rec;
  } catch {
    return undefined;
  }
  if (typeof rec.pid !== 'number' || rec.host !== os.hostname() || rec.pid === process.pid) return undefined;
  try {
    process.kill(rec.pid, 0);
    return rec.pid;
  } catch (err) {
    // EPERM: it exists but belongs to someone else
    return (err as NodeJS.ErrnoException).code === 'EPERM' ? rec.pid : undefined;
  }
}
