// `mailfleet relay --dev` listens on fixed loopback ports (2587, 2465, 9464), so tests that
// start it take turns: an exclusive lock (a directory, atomic to create) shared by every
// test process on the machine. A holder that died is detected by its pid and replaced.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const LOCK = path.join(os.tmpdir(), 'mailfleet-dev-ports.lock');

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Resolves with a release function once this process holds the dev ports. */
export async function lockDevPorts(timeoutMs = 600_000): Promise<() => void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      fs.mkdirSync(LOCK);
      fs.writeFileSync(path.join(LOCK, 'pid'), String(process.pid));
      return () => fs.rmSync(LOCK, { recursive: true, force: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    let holder = NaN;
    try { holder = Number(fs.readFileSync(path.join(LOCK, 'pid'), 'utf8')); } catch { /* being written or removed */ }
    if (Number.isInteger(holder) && !alive(holder)) fs.rmSync(LOCK, { recursive: true, force: true });
    if (Date.now() > deadline) throw new Error(`the dev relay ports stayed locked by pid ${holder} (${LOCK})`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
