/**
 * The embedded database (PGlite) is a single-process engine: two processes opening the same data
 * directory would each run their own PostgreSQL on the same files and corrupt them. The service and
 * the CLI hold this lock file (`<data dir>/auth/pg.lock`, the holder's pid) while they use it; a
 * second holder is refused, naming the first. A lock left by a process that died is taken over.
 */
import { mkdir, readFile, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';

export class EmbeddedDatabaseBusyError extends Error {}

export interface EmbeddedLock {
  release(): Promise<void>;
}

export function embeddedLockFile(dataDir: string): string {
  return path.join(dataDir, 'auth', 'pg.lock');
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists, owned by someone else.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function holder(file: string): Promise<{ pid: number; what: string } | undefined> {
  try {
    const [pid, ...what] = (await readFile(file, 'utf8')).trim().split(' ');
    return { pid: Number(pid), what: what.join(' ') };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** Takes the lock for `what` ("auth service", "auth CLI"); throws EmbeddedDatabaseBusyError when a live process holds it. */
export async function acquireEmbeddedLock(dataDir: string, what: string): Promise<EmbeddedLock> {
  const file = embeddedLockFile(dataDir);
  await mkdir(path.dirname(file), { recursive: true });
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      await writeFile(file, `${process.pid} ${what}\n`, { flag: 'wx', mode: 0o600 });
      return {
        async release() {
          const current = await holder(file).catch(() => undefined);
          if (current?.pid === process.pid) await unlink(file).catch(() => undefined);
        },
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const current = await holder(file);
      if (current && Number.isInteger(current.pid) && current.pid !== process.pid && alive(current.pid)) {
        throw new EmbeddedDatabaseBusyError(
          `the embedded database under ${path.dirname(file)} is in use by the ${current.what || 'process'} (pid ${current.pid}): stop it first, or use a PostgreSQL server (AUTH_SERVICE__DB_URL); delete ${file} if that process is not the one`,
        );
      }
      // Left by a process that is gone, or by an earlier process with this pid (a restarted container's pid 1): take it over.
      await unlink(file).catch(() => undefined);
    }
  }
  throw new EmbeddedDatabaseBusyError(`cannot take the lock ${file}: another process took it at the same time`);
}
