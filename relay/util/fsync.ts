// fsync of a path (a directory after a rename or create, or a file written elsewhere):
// open, sync, close — in one place for the queue, the suppression journal and the outbox.
import { closeFd, fsyncFd, openFd } from './fd.ts';

export async function fsyncPath(path: string, flags = 'r'): Promise<void> {
  const fd = await openFd(path, flags);
  try {
    await fsyncFd(fd);
  } finally {
    await closeFd(fd);
  }
}
