/**
 * PostgreSQL through `pg` in every mode. With a database URL the pool talks to that server; without
 * one the service starts an embedded PostgreSQL engine (PGlite, served over the Postgres wire
 * protocol on a loopback port) with its data under the data directory, so the same SQL and driver
 * run in development and production.
 *
 * The pool is measured (connections by state, waiting clients, query durations by operation) and
 * versioned SQL migrations run once per service under an advisory lock.
 */
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
import type { Logger } from 'pino';
import { ServiceMetrics } from './metrics.ts';

export interface DatabaseOptions {
  service: string;
  /** postgres:// URL; undefined starts the embedded engine. */
  url: string | undefined;
  /** Where the embedded engine keeps its files; undefined keeps them in memory. */
  embeddedDataDir?: string | undefined;
  poolMax: number;
  logger: Logger;
  metrics: ServiceMetrics;
  /** Bounded name for metric labels (e.g. "runtime"). */
  poolName?: string;
}

export type SqlOperation = 'select' | 'insert' | 'update' | 'delete' | 'with' | 'begin' | 'commit' | 'rollback' | 'other';

export interface Queryable {
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string, params?: unknown[]): Promise<pg.QueryResult<R>>;
}

export interface Database extends Queryable {
  readonly pool: pg.Pool;
  readonly embedded: boolean;
  /** Where the pool connects (password removed). */
  readonly target: string;
  /** Runs `fn` in a transaction on one connection. */
  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T>;
  /** Readiness: a round trip to the server. */
  ping(): Promise<void>;
  close(): Promise<void>;
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

interface Embedded {
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

/** Starts PGlite and serves it on a loopback port for `maxConnections` clients. */
export async function startEmbeddedPostgres(dataDir: string | undefined, maxConnections: number): Promise<Embedded> {
  const [{ PGlite }, { PGLiteSocketServer }] = await Promise.all([import('@electric-sql/pglite'), import('@electric-sql/pglite-socket')]);
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

export async function openDatabase(opts: DatabaseOptions): Promise<Database> {
  const poolName = opts.poolName ?? opts.service;
  let embedded: Embedded | undefined;
  let url = opts.url;
  if (!url) {
    // The multiplexer refuses connections past its limit, so it gets headroom over the pool.
    embedded = await startEmbeddedPostgres(opts.embeddedDataDir, opts.poolMax + 2);
    url = embedded.url;
    opts.logger.info({ data_dir: opts.embeddedDataDir ?? '(memory)' }, 'embedded PostgreSQL (PGlite) started');
  }
  const pool = new pg.Pool({ connectionString: url, max: opts.poolMax, idleTimeoutMillis: 30_000, connectionTimeoutMillis: 10_000, application_name: `codelab-${opts.service}` } as pg.PoolConfig);
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
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
  });

  const timed = async <R extends pg.QueryResultRow>(run: () => Promise<pg.QueryResult<R>>, text: string): Promise<pg.QueryResult<R>> => {
    const started = performance.now();
    let outcome = 'ok';
    try {
      return await run();
    } catch (err) {
      outcome = 'error';
      throw err;
    } finally {
      duration.observe({ ...labels, operation: operationOf(text), outcome }, (performance.now() - started) / 1000);
    }
  };

  return {
    pool,
    embedded: Boolean(embedded),
    target: hideCredentials(url),
    query: (text, params) => timed(() => pool.query(text, params), text),
    async transaction(fn) {
      const client = await pool.connect();
      const tx: Queryable = { query: (text, params) => timed(() => client.query(text, params), text) };
      try {
        await tx.query('BEGIN');
        const result = await fn(tx);
        await tx.query('COMMIT');
        return result;
      } catch (err) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw err;
      } finally {
        client.release();
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
  const client = await db.pool.connect();
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
          const { rows } = await client.query<{ checksum: string }>('SELECT checksum FROM schema_migrations WHERE service = $1 AND version = $2', [service, m.version]);
          if (rows[0]?.checksum !== m.checksum) throw new Error(`migration ${service}/${m.name} was changed after it was applied; add a new migration instead`);
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
    client.release();
  }
  return applied;
}
