import { spawn } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { acquireEmbeddedLock, embeddedLockFile, EmbeddedDatabaseBusyError } from '../src/embedded-lock.ts';
import { tempDir } from './helpers.ts';

describe('embedded database lock', () => {
  let dir: string;
  let remove: () => Promise<void>;
  beforeEach(async () => {
    ({ dir, remove } = await tempDir());
  });
  afterEach(() => remove());

  it('is held once at a time and free again after release', async () => {
    const lock = await acquireEmbeddedLock(dir, 'auth service');
    expect(await readFile(embeddedLockFile(dir), 'utf8')).toBe(`${process.pid} auth service\n`);
    const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 10000)']);
    try {
      // Another live process holds it.
      await writeFile(embeddedLockFile(dir), `${child.pid} auth CLI\n`);
      await expect(acquireEmbeddedLock(dir, 'auth service')).rejects.toThrow(EmbeddedDatabaseBusyError);
      await expect(acquireEmbeddedLock(dir, 'auth service')).rejects.toThrow(`in use by the auth CLI (pid ${child.pid})`);
    } finally {
      child.kill();
    }
    await writeFile(embeddedLockFile(dir), `${process.pid} auth service\n`);
    await lock.release();
    const again = await acquireEmbeddedLock(dir, 'auth CLI');
    await again.release();
  });

  it('takes over a lock left by a process that is gone', async () => {
    const child = spawn(process.execPath, ['-e', '']);
    await new Promise((resolve) => child.once('exit', resolve));
    await acquireEmbeddedLock(dir, 'x').then((l) => l.release());
    await writeFile(embeddedLockFile(dir), `${child.pid} auth service\n`);
    const lock = await acquireEmbeddedLock(dir, 'auth CLI');
    expect(await readFile(embeddedLockFile(dir), 'utf8')).toBe(`${process.pid} auth CLI\n`);
    await lock.release();
  });
});
