// fsync of a path (a directory after a rename or create, or a file written elsewhere):
// open, sync, close — in one place for the queue, the suppression journal and the outbox.
import fs from 'node:fs/promises';

export async function fsyncPath(path: string, flags = 'r'): Promise<void> {
  const fh = await fs.open(path, flags);
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
