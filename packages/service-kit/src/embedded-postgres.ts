/**
 * The embedded PostgreSQL engine (PGlite, served over the Postgres wire protocol on a loopback port)
 * and the one embedded database of a data directory, shared by the processes that use it
 * (openEmbeddedDatabase). db.ts opens a pool on it when a service has no database URL.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, unlinkSync } from 'node:fs';
import { link, mkdir, readFile, rename, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';

export interface Embedded {
  url: string;
  stop(): Promise<void>;
}

/**
 * Makes pglite-socket's multiplexer safe for several connections. It queues each wire-protocol
 * message on its own and only keeps one connection's messages together inside a transaction, so
 * the Parse/Bind/Execute/Sync of two clients' parameterized queries can interleave and bind to
 * each other's unnamed statement (electric-sql/pglite#1046). Reporting "in transaction" while a
 * connection is between the first message of an extended-protocol batch and its Sync makes the
 * queue keep that batch together, the same way it keeps transactions together.
 */
function keepProtocolBatchesTogether(db: import('@electric-sql/pglite').PGlite): void {
  const SYNC = 0x53; // 'S'
  const QUERY = 0x51; // 'Q': a simple query is a batch on its own
  const EXTENDED = new Set([0x50, 0x42, 0x44, 0x45, 0x43, 0x48]); // Parse Bind Describe Execute Close Flush
  let midBatch = false;
  const inTransaction = db.isInTransaction.bind(db);
  const exec = db.execProtocolRawStream.bind(db);
  Object.assign(db, {
    isInTransaction: () => midBatch || inTransaction(),
    execProtocolRawStream: async (message: Uint8Array, opts: Parameters<typeof exec>[1]) => {
      const type = message[0] ?? 0;
      try {
        return await exec(message, opts);
      } finally {
        if (EXTENDED.has(type)) midBatch = true;
        else if (type === SYNC || type === QUERY) midBatch = false;
      }
    },
  });
}

/**
 * The engine is an optional dependency: images run on PostgreSQL and leave it out
 * (`npm ci --omit=dev --omit=optional`), so a process started there without a database URL ends
 * with this error instead of a module resolution failure.
 */
export class EmbeddedEngineMissingError extends Error {
  constructor(cause: unknown) {
    super(
      'the embedded PostgreSQL engine is not installed (@electric-sql/pglite and @electric-sql/pglite-socket, ' +
        'optional dependencies that `npm ci --omit=optional` leaves out)',
      { cause },
    );
    this.name = 'EmbeddedEngineMissingError';
  }
}

async function loadEngine(): Promise<[typeof import('@electric-sql/pglite'), typeof import('@electric-sql/pglite-socket')]> {
  try {
    return await Promise.all([import('@electric-sql/pglite'), import('@electric-sql/pglite-socket')]);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ERR_MODULE_NOT_FOUND') throw new EmbeddedEngineMissingError(err);
    throw err;
  }
}

/** Starts PGlite and serves it on a loopback port for `maxConnections` clients. */
export async function startEmbeddedPostgres(dataDir: string | undefined, maxConnections: number): Promise<Embedded> {
  const [{ PGlite }, { PGLiteSocketServer }] = await loadEngine();
  if (dataDir) await mkdir(dataDir, { recursive: true });
  const db = await PGlite.create(dataDir);
  keepProtocolBatchesTogether(db);
  const server = new PGLiteSocketServer({ db, host: '127.0.0.1', port: 0, maxConnections });
  await server.start();
  return {
    url: `postgres://postgres@${server.getServerConn()}/postgres`,
    stop: async () => {
      await server.stop();
      await db.close();
    },
  };
}

/*
 * The embedded database of a data directory. PGlite is a single-process engine: two processes
 * opening the same files would each run their own PostgreSQL on them and corrupt them. So there is
 * one engine per data directory (`<CODELAB_DATA_DIR>/pg`), served on a loopback port by the process
 * that holds its lock file (`<data dir>/pg.lock`, beside it), and whoever else needs it (the auth
 * CLI, a service started alone) connects to the URL recorded in that lock:
 *
 * - free: take it (created atomically), start the engine, and record its URL (`serving`); a
 *   short-lived holder that keeps the engine to itself (the CLI) records `private` instead;
 * - held by a live process serving it: connect to its URL (checked first: it must answer);
 * - held by a live process still starting its engine: wait for the URL (up to `waitMs`);
 * - held `private` by a live process, or held at all when `join: false` (the launcher: one
 *   platform per data directory): refused with EmbeddedDatabaseBusyError, naming the holder;
 * - left by a process that is gone (or by an earlier process with this pid, a restarted
 *   container's pid 1): taken over.
 *
 * The server removes the lock when it stops (after its engine has closed the files), or on exit.
 */

/** Room for other processes' pools on an engine this process shares (a runtime, the CLI). */
export const SHARED_EMBEDDED_HEADROOM = 32;

/** The embedded database of a data directory (CODELAB_DATA_DIR). */
export function embeddedDatabaseDir(dataDir: string): string {
  return path.join(dataDir, 'pg');
}

/** Its lock file, beside it: `<data dir>/pg.lock`. */
export function embeddedLockFile(dir: string): string {
  return `${path.resolve(dir)}.lock`;
}

export interface EmbeddedHolder {
  pid: number;
  /** Who holds it, in words: "platform" (npm start), "auth service", "auth CLI". */
  holder: string;
}

/** The lock file's content (one JSON line). */
export interface EmbeddedLockRecord extends EmbeddedHolder {
  state: 'starting' | 'serving' | 'private';
  /** The engine's postgres:// URL, once it serves (`serving`). */
  url?: string;
}

export class EmbeddedDatabaseBusyError extends Error {
  readonly holder: EmbeddedLockRecord;
  readonly lockFile: string;

  constructor(message: string, holder: EmbeddedLockRecord, lockFile: string) {
    super(message);
    this.holder = holder;
    this.lockFile = lockFile;
    this.name = 'EmbeddedDatabaseBusyError';
  }
}

export interface EmbeddedDatabase extends Embedded {
  dir: string;
  /** The other live process serving the engine; undefined when this process serves it. */
  servedBy: EmbeddedHolder | undefined;
}

export interface EmbeddedDatabaseOptions {
  holder: string;
  /** Clients the engine accepts, when this process serves it. */
  maxConnections: number;
  /** Record the URL for other processes (long-lived servers); false keeps the engine to this process. */
  share: boolean;
  /** Connect to a live holder's engine (default); false refuses to (the launcher). */
  join?: boolean;
  /** How long to wait for a holder that is starting its engine (default 30 s). */
  waitMs?: number;
  /** Called once when it starts waiting for such a holder (to say why nothing happens yet). */
  onWait?: (holder: EmbeddedLockRecord) => void;
}

/** Lock files this process holds (a pid alone cannot tell this process from an earlier one with its pid). */
const heldHere = new Set<string>();

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists, owned by someone else.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function parseLock(text: string): EmbeddedLockRecord | 'unreadable' {
  try {
    const r = JSON.parse(text) as Partial<EmbeddedLockRecord>;
    if (
      Number.isInteger(r.pid) &&
      Number(r.pid) > 0 &&
      typeof r.holder === 'string' &&
      ['starting', 'serving', 'private'].includes(String(r.state))
    ) {
      return { pid: r.pid!, holder: r.holder, state: r.state!, ...(typeof r.url === 'string' ? { url: r.url } : {}) };
    }
  } catch {
    /* below */
  }
  return 'unreadable';
}

/** The lock's record; undefined when there is no lock, 'unreadable' for a file that is not one of ours. */
export async function readEmbeddedLock(file: string): Promise<EmbeddedLockRecord | 'unreadable' | undefined> {
  try {
    return parseLock(await readFile(file, 'utf8'));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

const tempFile = (file: string): string => `${file}.${process.pid}.${randomBytes(4).toString('hex')}`;

/** Creates the lock with its content in one step (a reader never sees it empty); false when it exists. */
async function createLock(file: string, record: EmbeddedLockRecord): Promise<boolean> {
  const content = `${JSON.stringify(record)}\n`;
  const tmp = tempFile(file);
  await writeFile(tmp, content, { mode: 0o600 });
  try {
    await link(tmp, file);
    return true;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return false;
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EXDEV') throw err;
  } finally {
    await unlink(tmp).catch(() => undefined);
  }
  // A file system without hard links: exclusive create (a reader may see it empty for an instant).
  try {
    await writeFile(file, content, { flag: 'wx', mode: 0o600 });
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  }
}

/** Replaces the lock's content atomically. */
async function updateLock(file: string, record: EmbeddedLockRecord): Promise<void> {
  const tmp = tempFile(file);
  await writeFile(tmp, `${JSON.stringify(record)}\n`, { mode: 0o600 });
  await rename(tmp, file);
}

function ownLock(text: string): boolean {
  const record = parseLock(text);
  return record !== 'unreadable' && record.pid === process.pid;
}

async function releaseLock(file: string): Promise<void> {
  const text = await readFile(file, 'utf8').catch(() => '');
  if (ownLock(text)) await unlink(file).catch(() => undefined);
}

function releaseLockSync(file: string): void {
  try {
    if (ownLock(readFileSync(file, 'utf8'))) unlinkSync(file);
  } catch {
    /* gone already */
  }
}

/** Fails, naming the holder and the lock, unless the recorded URL answers. */
async function probe(url: string, held: EmbeddedHolder, dir: string, file: string): Promise<void> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000 });
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.query('SELECT 1');
  } catch (err) {
    throw new Error(
      `the embedded database in ${dir} is served by the ${held.holder} (pid ${held.pid}) at ${url}, which does not answer (${(err as Error).message}); ` +
        `if that process is not serving it, delete ${file}`,
      { cause: err },
    );
  } finally {
    await client.end().catch(() => undefined);
  }
}

async function serve(dir: string, file: string, record: EmbeddedLockRecord, opts: EmbeddedDatabaseOptions): Promise<EmbeddedDatabase> {
  heldHere.add(file);
  const onExit = (): void => releaseLockSync(file);
  process.once('exit', onExit);
  const release = async (): Promise<void> => {
    heldHere.delete(file);
    process.off('exit', onExit);
    await releaseLock(file);
  };
  let engine: Embedded | undefined;
  try {
    engine = await startEmbeddedPostgres(dir, opts.maxConnections);
    if (opts.share) await updateLock(file, { ...record, state: 'serving', url: engine.url });
  } catch (err) {
    await engine?.stop().catch(() => undefined);
    await release();
    throw err;
  }
  const started = engine;
  let stopping: Promise<void> | undefined;
  return {
    dir,
    url: started.url,
    servedBy: undefined,
    stop: () => (stopping ??= started.stop().finally(release)),
  };
}

/** The embedded database in `dir`: served by this process, or the one a live process serves (see above). */
export async function openEmbeddedDatabase(dir: string, opts: EmbeddedDatabaseOptions): Promise<EmbeddedDatabase> {
  const file = embeddedLockFile(dir);
  await mkdir(path.dirname(file), { recursive: true });
  const waitMs = opts.waitMs ?? 30_000;
  const deadline = Date.now() + waitMs;
  const mine: EmbeddedLockRecord = { pid: process.pid, holder: opts.holder, state: opts.share ? 'starting' : 'private' };
  let waiting = false;
  for (let takeovers = 0; ; ) {
    if (await createLock(file, mine)) return serve(dir, file, mine, opts);
    const held = await readEmbeddedLock(file);
    if (held === undefined) continue; // released meanwhile
    const live = held !== 'unreadable' && (held.pid === process.pid ? heldHere.has(file) : alive(held.pid));
    if (!live) {
      // Left by a process that is gone, or not a lock of ours: take it over.
      if (++takeovers > 5) throw new Error(`cannot take over the lock ${file}: other processes keep taking it`);
      await unlink(file).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'ENOENT') throw new Error(`cannot remove the stale lock ${file}: ${err.message}`, { cause: err });
      });
      continue;
    }
    const inUse = `the embedded database in ${dir} is in use by the ${held.holder} (pid ${held.pid})`;
    const hint = `if that process does not use it, delete ${file}`;
    if (opts.join === false) throw new EmbeddedDatabaseBusyError(`${inUse}; ${hint}`, held, file);
    if (held.state === 'private') {
      throw new EmbeddedDatabaseBusyError(`${inUse}, which keeps it to itself: try again when it has finished; ${hint}`, held, file);
    }
    if (held.state === 'serving' && held.url) {
      await probe(held.url, held, dir, file);
      return { dir, url: held.url, servedBy: { pid: held.pid, holder: held.holder }, stop: async () => undefined };
    }
    if (!waiting) {
      waiting = true;
      opts.onWait?.(held);
    }
    if (Date.now() >= deadline) {
      throw new EmbeddedDatabaseBusyError(
        `${inUse}, whose engine did not start within ${Math.round(waitMs / 1000)} s; ${hint}`,
        held,
        file,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
