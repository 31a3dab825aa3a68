/**
 * PostgreSQL through `pg` in every mode. With a database URL the pool talks to that server; without
 * one it uses the embedded PostgreSQL engine (PGlite, served over the Postgres wire protocol on a
 * loopback port) of the data directory, `<CODELAB_DATA_DIR>/pg`: one per directory, served by
 * whichever process took its lock first and shared with the others (openEmbeddedDatabase), so the
 * same SQL and driver run in development and production.
 *
 * The pool is measured (connections by state, waiting clients, query durations by operation) and
 * versioned SQL migrations run once per service under an advisory lock.
 */
import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
import type { Logger } from 'pino';
import {
  EmbeddedEngineMissingError,
  embeddedDatabaseDir,
  openEmbeddedDatabase,
  SHARED_EMBEDDED_HEADROOM,
  startEmbeddedPostgres,
  type Embedded,
  type EmbeddedHolder,
} from './embedded-postgres.ts';
import { dbTargetOf, endDbSpan, startDbSpan } from './db-spans.ts';
import { DB_DURATION_BUCKETS, type ServiceMetrics } from './metrics.ts';

export {
  EmbeddedDatabaseBusyError,
  EmbeddedEngineMissingError,
  embeddedDatabaseDir,
  embeddedLockFile,
  openEmbeddedDatabase,
  readEmbeddedLock,
  startEmbeddedPostgres,
  type EmbeddedDatabase,
  type EmbeddedLockRecord,
} from './embedded-postgres.ts';

export interface DatabaseOptions {
  service: string;
  /** postgres:// URL; undefined starts the embedded engine. */
  url: string | undefined;
  /** The variable the URL comes from (`AGENT_RUNTIME__DB_URL`), named when there is none and no embedded engine either. */
  urlSetting?: string;
  /**
   * Without a URL: the data directory (CODELAB_DATA_DIR) whose shared embedded database to use,
   * `<dataDir>/pg` (openEmbeddedDatabase). Neither this nor `embeddedDataDir`: an engine in memory.
   */
  dataDir?: string | undefined;
  /** Without a URL: the embedded engine's own directory (shared and locked the same way); overrides `dataDir`. */
  embeddedDataDir?: string | undefined;
  /** Who this process is in the embedded database's lock ("auth CLI"); default "<service> service". */
  embeddedHolder?: string;
  /**
   * Whether an embedded engine this process serves is offered to other processes (its URL in the
   * lock). Default true; false for short-lived holders (the CLI), which others then wait for or are refused by.
   */
  shareEmbedded?: boolean;
  poolMax: number;
  /**
   * How long a connection may stay idle before it is closed, for connections beyond the pool's
   * size only (ms, default 30 s): once opened, `poolMax` connections stay open (see openDatabase).
   */
  idleTimeoutMs?: number;
  logger: Logger;
  metrics: ServiceMetrics;
  /** Bounded name for metric labels (e.g. "runtime"). */
  poolName?: string;
}

type SqlOperation = 'select' | 'insert' | 'update' | 'delete' | 'with' | 'begin' | 'commit' | 'rollback' | 'other';

export interface Queryable {
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string, params?: unknown[]): Promise<pg.QueryResult<R>>;
}

export interface Database extends Queryable {
  readonly pool: pg.Pool;
  /** An embedded engine is behind the pool (served by this process or by another one). */
  readonly embedded: boolean;
  /**
   * The embedded engine behind the pool: its directory (undefined: in memory), and the other live
   * process that serves it when this one does not. Undefined with a URL.
   */
  readonly embeddedEngine: { dir: string | undefined; servedBy: EmbeddedHolder | undefined } | undefined;
  /** Where the pool connects (password removed). */
  readonly target: string;
  /** Runs `fn` in a transaction on one connection. */
  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T>;
  /** Readiness: a round trip to the server. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

/**
 * A parameterised statement is prepared once per connection, under a name derived from its text:
 * PostgreSQL then skips parsing it again, and planning it: the connections ask for generic plans
 * (`plan_cache_mode = force_generic_plan`, PLAN_CACHE_OPTIONS). Left to choose, PostgreSQL keeps
 * planning each execution anew whenever its statistics make a custom plan look cheaper, as they do
 * for the session list once the tables are analyzed (as autovacuum does): bench:rest measured
 * PostgreSQL at 0.29–0.36 ms of CPU per listed page planning each time, 0.09–0.11 ms with generic
 * plans (pgbench before: 13.8k statements/s prepared vs 4.8k unnamed, the planning took 0.59 of its
 * 0.8 ms). The statements are the platform's own OLTP statements (by id, session, owner), whose
 * plans do not depend on the values. The texts are the code's constants, so the names are bounded;
 * past MAX_NAMED_STATEMENTS distinct texts (a statement built with a varying number of rows, say)
 * the rest go unnamed, as before, rather than grow every connection's cache.
 */
const MAX_NAMED_STATEMENTS = 512;
/** Sent at connect (libpq's `options`): generic plans for the prepared statements. */
const PLAN_CACHE_OPTIONS = '-c plan_cache_mode=force_generic_plan';
const statementNames = new Map<string, string>();

/**
 * Sends a statement, prepared under its name when `named`. The embedded engine (PGlite) runs every
 * wire connection in one session, where a name one connection prepared already exists for the
 * next: there statements go unnamed (openDatabase asks the server what it is).
 */
function send<R extends pg.QueryResultRow>(
  on: pg.Pool | pg.PoolClient,
  named: boolean,
  text: string,
  params: unknown[] | undefined,
): Promise<pg.QueryResult<R>> {
  if (params === undefined) return on.query<R>(text);
  let name = statementNames.get(text);
  if (name === undefined && named && statementNames.size < MAX_NAMED_STATEMENTS) {
    name = `codelab_${createHash('sha256').update(text).digest('base64url').slice(0, 22)}`;
    statementNames.set(text, name);
  }
  return on.query<R>(name === undefined || !named ? { text, values: params } : { name, text, values: params });
}

function operationOf(text: string): SqlOperation {
  const word = /^\s*(\w+)/.exec(text)?.[1]?.toLowerCase();
  switch (word) {
    case 'select':
    case 'insert':
    case 'update':
    case 'delete':
    case 'with':
    case 'begin':
    case 'commit':
    case 'rollback':
      return word;
    default:
      return 'other';
  }
}

function hideCredentials(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '(unparseable URL)';
  }
}

/** Without a URL: the data directory's embedded database, or an engine in memory (see DatabaseOptions). */
async function openEmbedded(
  opts: DatabaseOptions,
): Promise<{ embedded: Embedded; embeddedEngine: NonNullable<Database['embeddedEngine']> }> {
  const dir = opts.embeddedDataDir ?? (opts.dataDir !== undefined ? embeddedDatabaseDir(opts.dataDir) : undefined);
  // The multiplexer refuses connections past its limit, so it gets headroom over the pool (and,
  // when shared, room for the other processes' pools: a runtime, the CLI).
  if (dir) {
    const share = opts.shareEmbedded ?? true;
    const shared = await openEmbeddedDatabase(dir, {
      holder: opts.embeddedHolder ?? `${opts.service} service`,
      share,
      maxConnections: opts.poolMax + 2 + (share ? SHARED_EMBEDDED_HEADROOM : 0),
      onWait: (holder) =>
        opts.logger.info(
          { data_dir: dir, holder: holder.holder, pid: holder.pid },
          `waiting for the ${holder.holder} to start the embedded PostgreSQL (PGlite) it holds`,
        ),
    });
    if (shared.servedBy) {
      opts.logger.info(
        { data_dir: dir, served_by: shared.servedBy.holder, pid: shared.servedBy.pid },
        `using the embedded PostgreSQL (PGlite) of the running ${shared.servedBy.holder}`,
      );
    } else {
      opts.logger.info({ data_dir: dir, shared: share }, 'embedded PostgreSQL (PGlite) started');
    }
    return { embedded: shared, embeddedEngine: { dir, servedBy: shared.servedBy } };
  }
  const embedded = await startEmbeddedPostgres(undefined, opts.poolMax + 2);
  opts.logger.info({ data_dir: '(memory)' }, 'embedded PostgreSQL (PGlite) started');
  return { embedded, embeddedEngine: { dir: undefined, servedBy: undefined } };
}

export async function openDatabase(opts: DatabaseOptions): Promise<Database> {
  const poolName = opts.poolName ?? opts.service;
  let embedded: Embedded | undefined;
  let embeddedEngine: Database['embeddedEngine'];
  let url = opts.url;
  if (!url) {
    try {
      ({ embedded, embeddedEngine } = await openEmbedded(opts));
    } catch (err) {
      if (!(err instanceof EmbeddedEngineMissingError)) throw err;
      throw new Error(
        `no database URL (${opts.urlSetting ?? `the ${opts.service} service's DB_URL`}) and ${err.message}: ` +
          'set the URL of a PostgreSQL server, or install the engine (`npm ci` without --omit=optional)',
        { cause: err },
      );
    }
    url = embedded.url;
  }
  const pool = new pg.Pool({
    connectionString: url,
    max: opts.poolMax,
    // A connection once opened stays open (pg-pool closes idle ones only above `min`): a pool that
    // shrank after a quiet spell made the next burst open new server backends, each planning its
    // statements again; measured in bench:ttft, the open-model round that followed 30 quiet seconds
    // had its slowest turns bunched at the moment the idle connections closed (14 runs of 14), and
    // none there with the pool kept (2 of 2).
    idleTimeoutMillis: opts.idleTimeoutMs ?? 30_000,
    min: opts.poolMax,
    connectionTimeoutMillis: 10_000,
    application_name: `codelab-${opts.service}`,
    // (an `options` parameter in the URL wins; the embedded engine ignores it)
    options: PLAN_CACHE_OPTIONS,
  } as pg.PoolConfig);
  // An idle client that errors (server restart) must not crash the process.
  pool.on('error', (err) => opts.logger.warn({ err }, 'idle PostgreSQL connection failed'));

  const m = opts.metrics;
  const labels = { service: opts.service, pool: poolName };
  m.gauge({
    name: 'db_client_connections',
    help: 'PostgreSQL pool connections by state (idle, used); total is their sum',
    labelNames: ['service', 'pool', 'state'],
    collect() {
      this.set({ ...labels, state: 'idle' }, pool.idleCount);
      this.set({ ...labels, state: 'used' }, pool.totalCount - pool.idleCount);
    },
  });
  m.gauge({
    name: 'db_client_connections_max',
    help: 'Maximum connections the PostgreSQL pool may open',
    labelNames: ['service', 'pool'],
    collect() {
      this.set(labels, opts.poolMax);
    },
  });
  m.gauge({
    name: 'db_client_connection_pending_requests',
    help: 'Clients waiting for a PostgreSQL pool connection (saturation)',
    labelNames: ['service', 'pool'],
    collect() {
      this.set(labels, pool.waitingCount);
    },
  });
  const duration = m.histogram({
    name: 'db_client_operation_duration_seconds',
    help: 'Duration of PostgreSQL queries by operation, including the wait for a pool connection',
    labelNames: ['service', 'pool', 'operation', 'outcome'],
    buckets: DB_DURATION_BUCKETS,
  });

  // Every statement is timed here, and traced here when it runs inside a span of a sampled trace.
  const target = dbTargetOf(url, poolName);
  const timed = async <R extends pg.QueryResultRow>(run: () => Promise<pg.QueryResult<R>>, text: string): Promise<pg.QueryResult<R>> => {
    const started = performance.now();
    const span = startDbSpan(target, text);
    let outcome = 'ok';
    try {
      const result = await run();
      if (span) endDbSpan(span);
      return result;
    } catch (err) {
      outcome = 'error';
      if (span) endDbSpan(span, err);
      throw err;
    } finally {
      duration.observe({ ...labels, operation: operationOf(text), outcome }, (performance.now() - started) / 1000);
    }
  };

  // Whether statements may be prepared under names: not on the embedded engine, whether this
  // process serves it or was given its URL. Asked once, at the first parameterised statement.
  let named: boolean | undefined = embedded ? false : undefined;
  let asking: Promise<boolean> | undefined;
  const mayName = async (): Promise<boolean> => {
    if (named !== undefined) return named;
    asking ??= pool.query<{ v: string }>('SELECT version() AS v').then(
      (r) => (named = !/PGlite/i.test(String(r.rows[0]?.v))),
      () => {
        asking = undefined;
        return false;
      },
    );
    return asking;
  };
  const sendOn = async <R extends pg.QueryResultRow>(on: pg.Pool | pg.PoolClient, text: string, params: unknown[] | undefined) => {
    if (named !== undefined || params === undefined) return send<R>(on, named === true, text, params);
    // A connection held for a transaction does not wait for the answer (the pool may have no other
    // connection to ask on): it sends unnamed until the answer is in.
    if (on !== pool) {
      void mayName();
      return send<R>(on, false, text, params);
    }
    return send<R>(on, await mayName(), text, params);
  };
  return {
    pool,
    embedded: Boolean(embedded),
    embeddedEngine,
    target: hideCredentials(url),
    query: (text, params) => timed(() => sendOn(pool, text, params), text),
    async transaction(fn) {
      const held = await checkOut(pool, opts.logger);
      const tx: Queryable = { query: (text, params) => timed(() => sendOn(held.client, text, params), text) };
      try {
        await tx.query('BEGIN');
        const result = await fn(tx);
        await tx.query('COMMIT');
        return result;
      } catch (err) {
        await held.client.query('ROLLBACK').catch((rollbackFailed: unknown) => held.broke(rollbackFailed));
        throw err;
      } finally {
        held.release();
      }
    },
    async ping() {
      await pool.query('SELECT 1');
    },
    async close() {
      await pool.end().catch(() => undefined);
      await embedded?.stop();
    },
  };
}

/** A connection taken from the pool for several statements (a transaction, the migrations). */
interface CheckedOut {
  client: pg.PoolClient;
  /** Marks the connection broken: `release` then closes it instead of returning it to the pool. */
  broke(err: unknown): void;
  release(): void;
}

/**
 * Takes a connection from the pool, listening for its errors while it is out: pg emits a
 * connection failure (a server restart, a reset) on the client, and a checked-out client with no
 * listener would crash the process. A connection that failed is closed on release, never reused.
 */
async function checkOut(pool: pg.Pool, logger: Logger): Promise<CheckedOut> {
  const client = await pool.connect();
  let failure: Error | undefined;
  const onError = (err: Error): void => {
    failure ??= err;
    logger.warn({ err }, 'PostgreSQL connection failed while in use; it is closed, not reused');
  };
  client.on('error', onError);
  return {
    client,
    broke: (err) => void (failure ??= err instanceof Error ? err : new Error(String(err))),
    release: () => {
      client.off('error', onError);
      client.release(failure);
    },
  };
}

export interface Migration {
  version: number;
  name: string;
  sql: string;
  checksum: string;
}

/** Reads `NNN_name.sql` files of a folder, in numeric version order (a version used twice is refused). */
export async function loadMigrations(dir: string): Promise<Migration[]> {
  const files = (await readdir(dir)).filter((f) => /^\d+_[\w-]+\.sql$/.test(f));
  const migrations = await Promise.all(
    files.map(async (file) => {
      const sql = await readFile(path.join(dir, file), 'utf8');
      return {
        version: Number(file.split('_')[0]),
        name: file.replace(/\.sql$/, ''),
        sql,
        checksum: createHash('sha256').update(sql).digest('hex'),
      };
    }),
  );
  migrations.sort((a, b) => a.version - b.version);
  for (let i = 1; i < migrations.length; i++) {
    if (migrations[i]!.version === migrations[i - 1]!.version) {
      throw new Error(`migrations ${migrations[i - 1]!.name} and ${migrations[i]!.name} have the same version`);
    }
  }
  return migrations;
}

/**
 * Applies the migrations a service has not applied yet, each in its own transaction, so that
 * several instances starting together apply each one exactly once: the migration's row in
 * `schema_migrations` is claimed first in the transaction, and whoever finds it claimed skips it
 * (on a real server the claim waits for the other transaction; the embedded engine runs
 * transactions one at a time). An applied migration whose file changed since is refused: history
 * is append-only.
 */
export async function migrate(db: Database, service: string, dir: string, logger: Logger): Promise<number[]> {
  const migrations = await loadMigrations(dir);
  const held = await checkOut(db.pool, logger);
  const { client } = held;
  const applied: number[] = [];
  try {
    // Serializes concurrent CREATE TABLE IF NOT EXISTS on a real server.
    await client.query('SELECT pg_advisory_lock(727274)');
    try {
      await client.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
        service text NOT NULL, version integer NOT NULL, name text NOT NULL, checksum text NOT NULL,
        applied_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (service, version))`);
    } finally {
      await client.query('SELECT pg_advisory_unlock(727274)');
    }
    for (const m of migrations) {
      await client.query('BEGIN');
      try {
        const claimed = await client.query(
          'INSERT INTO schema_migrations (service, version, name, checksum) VALUES ($1, $2, $3, $4) ON CONFLICT (service, version) DO NOTHING RETURNING version',
          [service, m.version, m.name, m.checksum],
        );
        if (claimed.rowCount === 0) {
          await client.query('ROLLBACK');
          const { rows } = await client.query<{ checksum: string }>(
            'SELECT checksum FROM schema_migrations WHERE service = $1 AND version = $2',
            [service, m.version],
          );
          if (rows[0]?.checksum !== m.checksum)
            throw new Error(`migration ${service}/${m.name} was changed after it was applied; add a new migration instead`);
          continue;
        }
        await client.query(m.sql);
        await client.query('COMMIT');
      } catch (err) {
        await client.query('ROLLBACK').catch(() => undefined);
        if ((err as Error).message.includes('was changed after it was applied')) throw err;
        throw new Error(`migration ${service}/${m.name} failed: ${(err as Error).message}`, { cause: err });
      }
      applied.push(m.version);
      logger.info({ migration: m.name }, 'migration applied');
    }
  } finally {
    held.release();
  }
  return applied;
}
