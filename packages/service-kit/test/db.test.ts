import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { cp, mkdtemp, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import pino from 'pino';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, inject, it } from 'vitest';
import {
  EmbeddedDatabaseBusyError,
  embeddedDatabaseDir,
  embeddedLockFile,
  loadMigrations,
  migrate,
  openDatabase,
  openEmbeddedDatabase,
  readEmbeddedLock,
  startEmbeddedPostgres,
  type Database,
  type EmbeddedLockRecord,
} from '../src/db.ts';
import { ServiceMetrics } from '../src/metrics.ts';
import { silentLogger } from '@codelab/service-kit/testing';
import { startTcpProxy, type TcpProxy } from '../../../test/helpers/tcp-proxy.ts';
import { value } from './prom-text.ts';

/** A TCP front for the database (test/helpers/tcp-proxy.ts) whose connections can be cut; `url` is the database URL through it. */
async function cuttableProxy(databaseUrl: string): Promise<TcpProxy & { databaseUrl: string }> {
  const proxy = await startTcpProxy([databaseUrl.replace(/^postgres(ql)?:/, 'http:')]);
  const url = new URL(databaseUrl);
  url.hostname = '127.0.0.1';
  url.port = new URL(proxy.url).port;
  return Object.assign(proxy, { databaseUrl: url.toString() });
}

async function waitUntil(condition: () => boolean, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** A name no other suite (nor an earlier run against the same server) uses. */
const unique = (prefix: string): string => `${prefix}_${Date.now().toString(36)}_${randomBytes(4).toString('hex')}`;

async function open(metrics = new ServiceMetrics('svc'), poolMax = 3): Promise<Database> {
  return openDatabase({ service: 'svc', url: inject('databaseUrl'), poolMax, logger: silentLogger(), metrics, poolName: 'main' });
}

describe('db', () => {
  describe('openDatabase', () => {
    let db: Database;
    let metrics: ServiceMetrics;
    const table = unique('kit_db');
    beforeAll(async () => {
      metrics = new ServiceMetrics('svc');
      db = await open(metrics);
      await db.query(`CREATE TABLE ${table} (id integer PRIMARY KEY, name text NOT NULL)`);
    });
    afterAll(async () => {
      await db.query(`DROP TABLE IF EXISTS ${table}`);
      await db.close();
    });

    it('connects to the given server without starting an embedded one', () => {
      expect(db.embedded).toBe(false);
    });

    // A PostgreSQL server; the embedded engine ignores the startup option (and prepares nothing by name).
    it.skipIf(inject('databaseKind') !== 'server')(
      'asks for generic plans of its prepared statements (no planning per execution), unless the URL says otherwise',
      async () => {
        const mode = async (d: Database): Promise<string | undefined> =>
          (await d.query<{ plan_cache_mode: string }>('SHOW plan_cache_mode')).rows[0]?.plan_cache_mode;
        expect(await mode(db)).toBe('force_generic_plan');
        const url = new URL(inject('databaseUrl'));
        url.searchParams.set('options', '-c plan_cache_mode=auto');
        const own = await openDatabase({
          service: 'svc',
          url: url.toString(),
          poolMax: 1,
          logger: silentLogger(),
          metrics: new ServiceMetrics('svc'),
        });
        try {
          expect(await mode(own)).toBe('auto');
        } finally {
          await own.close();
        }
      },
    );

    it('names its target without the password', async () => {
      // The pool connects lazily: nothing listens on port 1 and nothing needs to.
      const other = await openDatabase({
        service: 'svc',
        url: 'postgres://app:s3cret@127.0.0.1:1/codelab',
        poolMax: 1,
        logger: silentLogger(),
        metrics: new ServiceMetrics('svc'),
      });
      expect(other.target).toBe('postgres://app:***@127.0.0.1:1/codelab');
      await other.close();
    });

    it('runs parameterized queries', async () => {
      const res = await db.query<{ n: number; s: string }>('SELECT $1::int + 1 AS n, $2::text AS s', [41, 'x']);
      expect(res.rows).toEqual([{ n: 42, s: 'x' }]);
    });

    it('commits a transaction and returns its result', async () => {
      const result = await db.transaction(async (tx) => {
        await tx.query(`INSERT INTO ${table} (id, name) VALUES (1, 'one'), (2, 'two')`);
        return (await tx.query<{ c: string }>(`SELECT count(*) AS c FROM ${table}`)).rows[0]!.c;
      });
      expect(result).toBe('2');
      expect((await db.query(`SELECT id, name FROM ${table} ORDER BY id`)).rows).toEqual([
        { id: 1, name: 'one' },
        { id: 2, name: 'two' },
      ]);
    });

    it('rolls a transaction back and rethrows when it fails', async () => {
      const failure = new Error('stop here');
      await expect(
        db.transaction(async (tx) => {
          await tx.query(`INSERT INTO ${table} (id, name) VALUES (3, 'three')`);
          await tx.query(`UPDATE ${table} SET name = 'changed' WHERE id = 1`);
          throw failure;
        }),
      ).rejects.toBe(failure);
      expect((await db.query(`SELECT id, name FROM ${table} ORDER BY id`)).rows).toEqual([
        { id: 1, name: 'one' },
        { id: 2, name: 'two' },
      ]);
    });

    it('rolls back when a statement fails, and the pool stays usable', async () => {
      await expect(
        db.transaction(async (tx) => {
          await tx.query(`INSERT INTO ${table} (id, name) VALUES (4, 'four')`);
          await tx.query(`INSERT INTO ${table} (id, name) VALUES (1, 'duplicate')`);
        }),
      ).rejects.toThrow(/duplicate key/);
      expect((await db.query<{ c: string }>(`SELECT count(*) AS c FROM ${table}`)).rows[0]!.c).toBe('2');
      await expect(db.ping()).resolves.toBeUndefined();
    });

    it('measures query durations by operation and outcome', async () => {
      const before = await metrics.render(undefined);
      const count = (body: string, operation: string, outcome = 'ok') =>
        value(body, 'db_client_operation_duration_seconds_count', { service: 'svc', pool: 'main', operation, outcome }) ?? 0;
      await db.query('SELECT 1');
      await db.query(`  select 2`);
      await db.query(`WITH x AS (SELECT 1) SELECT * FROM x`);
      await db.query(`UPDATE ${table} SET name = name WHERE id = 2`);
      await db.query(`DELETE FROM ${table} WHERE id = 99`);
      await db.transaction(async (tx) => tx.query(`INSERT INTO ${table} (id, name) VALUES (10, 'ten')`));
      await db.query(`SHOW server_version`);
      await expect(db.query('SELECT * FROM no_such_table_at_all')).rejects.toThrow(/no_such_table_at_all/);
      const after = (await metrics.render(undefined)).body;
      const delta = (operation: string, outcome = 'ok') => count(after, operation, outcome) - count(before.body, operation, outcome);
      expect({
        select: delta('select'),
        with: delta('with'),
        update: delta('update'),
        delete: delta('delete'),
        insert: delta('insert'),
        begin: delta('begin'),
        commit: delta('commit'),
        other: delta('other'),
        selectError: delta('select', 'error'),
      }).toEqual({ select: 2, with: 1, update: 1, delete: 1, insert: 1, begin: 1, commit: 1, other: 1, selectError: 1 });
    });

    it('answers ping', async () => {
      await expect(db.ping()).resolves.toBeUndefined();
    });

    it('fails a transaction whose connection is cut while it is out of the pool, without crashing the process, and never reuses that connection', async () => {
      // (a database restart, a reset): pg emits the failure on the checked-out client; with no
      // listener there, it was an uncaught 'error' event that ended the process
      const proxy = await cuttableProxy(inject('databaseUrl'));
      const lines: string[] = [];
      const logger = pino({ level: 'warn' }, { write: (line: string) => void lines.push(line) });
      const cut = await openDatabase({ service: 'svc', url: proxy.databaseUrl, poolMax: 1, logger, metrics: new ServiceMetrics('svc') });
      try {
        let inside!: () => void;
        const reached = new Promise<void>((resolve) => (inside = resolve));
        let goOn!: () => void;
        const held = new Promise<void>((resolve) => (goOn = resolve));
        const tx = cut.transaction(async (q) => {
          await q.query('SELECT 1');
          inside();
          await held; // the connection sits idle in the transaction, as between a turn's statements
          await q.query('SELECT 2');
        });
        await reached;
        proxy.cut();
        await waitUntil(() => lines.some((l) => l.includes('PostgreSQL connection failed while in use')));
        goOn();
        await expect(tx).rejects.toThrow();
        expect(proxy.connections()).toBe(1);
        // the pool (of one) opens a new connection instead of handing out the broken one
        await expect(cut.ping()).resolves.toBeUndefined();
        expect(proxy.connections()).toBe(2);
      } finally {
        await cut.close();
        await proxy.close();
      }
    });
  });

  describe('prepared statements', () => {
    it('prepares a parameterised statement once per connection on a PostgreSQL server, and sends it unnamed to the embedded engine (one session for every connection)', async () => {
      const db = await open(new ServiceMetrics('svc'), 2);
      try {
        const pglite = /PGlite/i.test((await db.query<{ v: string }>('SELECT version() AS v')).rows[0]!.v);
        const marker = unique('stmt');
        const text = `SELECT $1::text AS v, '${marker}' AS marker`;
        // Both connections at once, several times: on the embedded engine a name prepared by one
        // connection would already exist for the other.
        for (let i = 0; i < 4; i++) {
          const answers = await Promise.all([db.query<{ v: string }>(text, ['a']), db.query<{ v: string }>(text, ['b'])]);
          expect(answers.map((r) => r.rows[0]!.v)).toEqual(['a', 'b']);
        }
        // In a transaction (its connection is one of the same two) as well.
        const inTx = await db.transaction((tx) => tx.query<{ v: string }>(text, ['c']));
        expect(inTx.rows[0]!.v).toBe('c');
        const prepared = await db.transaction((tx) =>
          tx.query<{ name: string }>(`SELECT name FROM pg_prepared_statements WHERE statement LIKE '%' || $1 || '%'`, [marker]),
        );
        if (pglite) expect(prepared.rows).toEqual([]);
        else expect(prepared.rows).toEqual([{ name: expect.stringMatching(/^codelab_[\w-]{22}$/) }]);
      } finally {
        await db.close();
      }
    });
  });

  describe('pool metrics', () => {
    it('reports connections by state, the maximum and the clients waiting', async () => {
      const metrics = new ServiceMetrics('svc');
      const db = await open(metrics, 1);
      try {
        const gauges = async () => {
          const { body } = await metrics.render(undefined);
          const labels = { service: 'svc', pool: 'main' };
          return {
            idle: value(body, 'db_client_connections', { ...labels, state: 'idle' }),
            used: value(body, 'db_client_connections', { ...labels, state: 'used' }),
            max: value(body, 'db_client_connections_max', labels),
            pending: value(body, 'db_client_connection_pending_requests', labels),
          };
        };
        expect(await gauges()).toEqual({ idle: 0, used: 0, max: 1, pending: 0 });
        await db.query('SELECT 1');
        expect(await gauges()).toEqual({ idle: 1, used: 0, max: 1, pending: 0 });

        const held = await db.pool.connect();
        const waiting = db.query<{ n: number }>('SELECT 7 AS n');
        await expect.poll(gauges).toEqual({ idle: 0, used: 1, max: 1, pending: 1 });
        held.release();
        expect((await waiting).rows).toEqual([{ n: 7 }]);
        expect(await gauges()).toEqual({ idle: 1, used: 0, max: 1, pending: 0 });
      } finally {
        await db.close();
      }
    });

    it('keeps the connections it opened through quiet spells longer than the idle timeout', async () => {
      const db = await openDatabase({
        service: 'svc',
        url: inject('databaseUrl'),
        poolMax: 2,
        idleTimeoutMs: 20,
        logger: silentLogger(),
        metrics: new ServiceMetrics('svc'),
      });
      let opened = 0;
      let closed = 0;
      db.pool.on('connect', () => opened++);
      db.pool.on('remove', () => closed++);
      /** Both connections out of the pool at once, then back. */
      const useBoth = async (): Promise<void> => {
        const [a, b] = await Promise.all([db.pool.connect(), db.pool.connect()]);
        await Promise.all([a.query('SELECT 1'), b.query('SELECT 1')]);
        a.release();
        b.release();
      };
      try {
        await useBoth();
        expect([opened, closed]).toEqual([2, 0]);
        // ten idle timeouts: a pool without a minimum has closed both by then (pg-pool's timer per idle client)
        await new Promise((resolve) => setTimeout(resolve, 200));
        expect([db.pool.totalCount, closed]).toEqual([2, 0]);
        await useBoth();
        expect([opened, closed]).toEqual([2, 0]); // the same connections again, none opened anew
      } finally {
        await db.close();
      }
    });

    it('stops answering ping once closed', async () => {
      const db = await open();
      await db.ping();
      await db.close();
      await expect(db.ping()).rejects.toThrow(/ended|pool/i);
    });
  });

  describe('loadMigrations', () => {
    let dir: string;
    beforeEach(async () => {
      dir = await mkdtemp(path.join(os.tmpdir(), 'kit-migrations-'));
    });
    afterEach(() => rm(dir, { recursive: true, force: true }));

    it('reads NNN_name.sql files in order, with a sha256 checksum, ignoring other files', async () => {
      await writeFile(path.join(dir, '002_second.sql'), 'SELECT 2;');
      await writeFile(path.join(dir, '001_first-one.sql'), 'SELECT 1;');
      await writeFile(path.join(dir, 'README.md'), '# not a migration');
      await writeFile(path.join(dir, 'draft.sql'), 'SELECT 0;');
      await writeFile(path.join(dir, '003_third.sql.bak'), 'SELECT 3;');
      const migrations = await loadMigrations(dir);
      expect(migrations.map((m) => [m.version, m.name, m.sql])).toEqual([
        [1, '001_first-one', 'SELECT 1;'],
        [2, '002_second', 'SELECT 2;'],
      ]);
      // sha256('SELECT 1;')
      expect(migrations[0]!.checksum).toBe('17db4fd369edb9244b9f91d9aeed145c3d04ad8ba6e95d06247f07a63527d11a');
    });

    // Regression: files were sorted as strings, so `10_` ran before `2_`.
    it('orders versions numerically', async () => {
      for (const v of [1, 2, 10]) await writeFile(path.join(dir, `${v}_m.sql`), `SELECT ${v};`);
      expect((await loadMigrations(dir)).map((m) => m.version)).toEqual([1, 2, 10]);
    });
  });

  describe('migrate', () => {
    let db: Database;
    let dir: string;
    let service: string;
    let table: string;
    beforeAll(async () => {
      db = await open(new ServiceMetrics('svc'), 4);
    });
    afterAll(() => db.close());
    beforeEach(async () => {
      dir = await mkdtemp(path.join(os.tmpdir(), 'kit-migrations-'));
      service = unique('kit-test');
      table = unique('kit_mig');
      await writeFile(path.join(dir, '001_create.sql'), `CREATE TABLE ${table} (id integer PRIMARY KEY);`);
      await writeFile(path.join(dir, '002_add_name.sql'), `ALTER TABLE ${table} ADD COLUMN name text;`);
      await writeFile(path.join(dir, '003_seed.sql'), `INSERT INTO ${table} (id, name) VALUES (1, 'seed');`);
    });
    afterEach(async () => {
      await db.query(`DROP TABLE IF EXISTS ${table}`);
      await db.query('DELETE FROM schema_migrations WHERE service = $1', [service]).catch(() => undefined);
      await rm(dir, { recursive: true, force: true });
    });

    const recorded = async () =>
      (
        await db.query<{ version: number; name: string }>(
          'SELECT version, name FROM schema_migrations WHERE service = $1 ORDER BY version',
          [service],
        )
      ).rows;

    it('applies the migrations in order, once', async () => {
      expect(await migrate(db, service, dir, silentLogger())).toEqual([1, 2, 3]);
      expect((await db.query(`SELECT id, name FROM ${table}`)).rows).toEqual([{ id: 1, name: 'seed' }]);
      expect(await recorded()).toEqual([
        { version: 1, name: '001_create' },
        { version: 2, name: '002_add_name' },
        { version: 3, name: '003_seed' },
      ]);
      expect(await migrate(db, service, dir, silentLogger())).toEqual([]);
      expect((await db.query(`SELECT id, name FROM ${table}`)).rows).toEqual([{ id: 1, name: 'seed' }]);
    });

    it('applies only the migrations added since', async () => {
      expect(await migrate(db, service, dir, silentLogger())).toEqual([1, 2, 3]);
      await writeFile(path.join(dir, '004_more.sql'), `INSERT INTO ${table} (id, name) VALUES (2, 'more');`);
      expect(await migrate(db, service, dir, silentLogger())).toEqual([4]);
      expect((await db.query(`SELECT id FROM ${table} ORDER BY id`)).rows).toEqual([{ id: 1 }, { id: 2 }]);
    });

    it('keeps the migrations of each service apart', async () => {
      expect(await migrate(db, service, dir, silentLogger())).toEqual([1, 2, 3]);
      const otherDir = await mkdtemp(path.join(os.tmpdir(), 'kit-migrations-'));
      const other = unique('kit-test-other');
      try {
        await writeFile(path.join(otherDir, '001_noop.sql'), 'SELECT 1;');
        expect(await migrate(db, other, otherDir, silentLogger())).toEqual([1]);
      } finally {
        await db.query('DELETE FROM schema_migrations WHERE service = $1', [other]);
        await rm(otherDir, { recursive: true, force: true });
      }
    });

    it('refuses a migration whose file changed after it was applied', async () => {
      await migrate(db, service, dir, silentLogger());
      await writeFile(path.join(dir, '002_add_name.sql'), `ALTER TABLE ${table} ADD COLUMN name varchar(10);`);
      await expect(migrate(db, service, dir, silentLogger())).rejects.toThrow(
        `migration ${service}/002_add_name was changed after it was applied; add a new migration instead`,
      );
    });

    it('stops at a failing migration, rolling it back and keeping the ones before', async () => {
      await writeFile(path.join(dir, '002_add_name.sql'), `ALTER TABLE ${table} ADD COLUMN name text; SELECT * FROM no_such_table_kit;`);
      await expect(migrate(db, service, dir, silentLogger())).rejects.toThrow(
        new RegExp(`^migration ${service}/002_add_name failed: .*no_such_table_kit`),
      );
      expect(await recorded()).toEqual([{ version: 1, name: '001_create' }]);
      const columns = await db.query<{ column_name: string }>('SELECT column_name FROM information_schema.columns WHERE table_name = $1', [
        table,
      ]);
      expect(columns.rows.map((r) => r.column_name)).toEqual(['id']);
      // Fixed, it applies from where it stopped.
      await writeFile(path.join(dir, '002_add_name.sql'), `ALTER TABLE ${table} ADD COLUMN name text;`);
      expect(await migrate(db, service, dir, silentLogger())).toEqual([2, 3]);
    });

    // On the embedded engine every connection shares one backend session, so an advisory lock
    // excludes nobody there: exactly-once comes from claiming the schema_migrations row first.
    it('applies each migration exactly once when two instances migrate together', async () => {
      // Two fresh pools, as two processes starting together would have.
      const first = await open(new ServiceMetrics('svc'), 2);
      const second = await open(new ServiceMetrics('svc'), 2);
      try {
        const results = await Promise.allSettled([
          migrate(first, service, dir, silentLogger()),
          migrate(second, service, dir, silentLogger()),
        ]);
        expect(results.map((r) => (r.status === 'rejected' ? String(r.reason) : 'ok'))).toEqual(['ok', 'ok']);
        const applied = results.flatMap((r) => (r.status === 'fulfilled' ? r.value : []));
        expect(applied.sort()).toEqual([1, 2, 3]);
        expect((await db.query(`SELECT id, name FROM ${table}`)).rows).toEqual([{ id: 1, name: 'seed' }]);
        expect(await recorded()).toHaveLength(3);
      } finally {
        await first.close();
        await second.close();
      }
    });
  });

  describe('openEmbeddedDatabase (one engine per data directory, shared through its lock)', () => {
    let template: string;
    let dataDir: string;
    let dir: string;
    let lockFile: string;
    const children: ChildProcess[] = [];
    // A data directory initialized once (initdb is most of an engine's start) and copied for each test.
    beforeAll(async () => {
      template = await mkdtemp(path.join(os.tmpdir(), 'kit-embedded-template-'));
      await (await startEmbeddedPostgres(path.join(template, 'pg'), 2)).stop();
    });
    afterAll(() => rm(template, { recursive: true, force: true }));
    beforeEach(async () => {
      dataDir = await mkdtemp(path.join(os.tmpdir(), 'kit-embedded-'));
      dir = embeddedDatabaseDir(dataDir);
      lockFile = embeddedLockFile(dir);
      await cp(path.join(template, 'pg'), dir, { recursive: true });
    });
    afterEach(async () => {
      for (const c of children.splice(0)) c.kill('SIGKILL');
      await rm(dataDir, { recursive: true, force: true });
    });

    /** A live process that is not this one (holds nothing: its pid goes into hand-written locks). */
    const liveProcess = (): number => {
      const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)']);
      children.push(child);
      return child.pid!;
    };
    const deadPid = async (): Promise<number> => {
      const child = spawn(process.execPath, ['-e', '']);
      await new Promise((resolve) => child.once('exit', resolve));
      return child.pid!;
    };
    // replaced in one step, as a holder does (a reader polling meanwhile never sees the file empty)
    const writeLock = async (record: EmbeddedLockRecord) => {
      const tmp = `${lockFile}.test-${randomUUID()}`;
      await writeFile(tmp, `${JSON.stringify(record)}\n`);
      await rename(tmp, lockFile);
    };
    const count = async (url: string, table: string): Promise<number> => {
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      try {
        return (await client.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table}`)).rows[0]!.n;
      } finally {
        await client.end();
      }
    };

    it('is <data dir>/pg, locked by <data dir>/pg.lock', () => {
      expect(dir).toBe(path.join(dataDir, 'pg'));
      expect(lockFile).toBe(path.join(dataDir, 'pg.lock'));
    });

    it('serves the engine of a free directory, records its pid and URL in a lock only its owner may read, and removes the lock when stopped', async () => {
      const served = await openEmbeddedDatabase(dir, { holder: 'platform', share: true, maxConnections: 4 });
      try {
        expect(served.servedBy).toBeUndefined();
        expect(served.url).toMatch(/^postgres:\/\/postgres@127\.0\.0\.1:\d+\/postgres$/);
        expect(await readEmbeddedLock(lockFile)).toEqual({ pid: process.pid, holder: 'platform', state: 'serving', url: served.url });
        expect((await stat(lockFile)).mode & 0o777).toBe(0o600);
      } finally {
        await served.stop();
      }
      expect(await readEmbeddedLock(lockFile)).toBeUndefined();
    });

    it('connects a second user to the engine already served, instead of opening its files again', async () => {
      const served = await openEmbeddedDatabase(dir, { holder: 'auth service', share: true, maxConnections: 6 });
      try {
        const joined = await openEmbeddedDatabase(dir, { holder: 'auth CLI', share: false, maxConnections: 4 });
        expect(joined).toMatchObject({ url: served.url, servedBy: { pid: process.pid, holder: 'auth service' } });
        await joined.stop(); // joined: stops nothing
        expect((await readEmbeddedLock(lockFile)) as EmbeddedLockRecord).toMatchObject({ holder: 'auth service', state: 'serving' });
      } finally {
        await served.stop();
      }
    });

    it('shares one database between pools opened on the same data directory (openDatabase dataDir)', async () => {
      const logger = silentLogger();
      const first = await openDatabase({ service: 'auth', url: undefined, dataDir, poolMax: 2, logger, metrics: new ServiceMetrics('a') });
      try {
        const second = await openDatabase({
          service: 'runtime',
          url: undefined,
          dataDir,
          poolMax: 2,
          logger,
          metrics: new ServiceMetrics('b'),
        });
        try {
          expect(first.embeddedEngine).toEqual({ dir, servedBy: undefined });
          expect(second.embeddedEngine).toEqual({ dir, servedBy: { pid: process.pid, holder: 'auth service' } });
          await first.query('CREATE TABLE shared_t (id int)');
          await second.query('INSERT INTO shared_t VALUES (1)');
          expect((await first.query('SELECT id FROM shared_t')).rows).toEqual([{ id: 1 }]);
        } finally {
          await second.close();
        }
      } finally {
        await first.close();
      }
      expect(await readEmbeddedLock(lockFile)).toBeUndefined();
    });

    it('refuses, naming the holder, when the holder keeps the engine to itself or when asked not to join', async () => {
      const pid = liveProcess();
      await writeLock({ pid, holder: 'auth CLI', state: 'private' });
      const cli = openEmbeddedDatabase(dir, { holder: 'auth service', share: true, maxConnections: 4 });
      await expect(cli).rejects.toThrow(EmbeddedDatabaseBusyError);
      await expect(cli).rejects.toThrow(`the embedded database in ${dir} is in use by the auth CLI (pid ${pid}), which keeps it to itself`);

      await writeLock({ pid, holder: 'platform', state: 'serving', url: 'postgres://postgres@127.0.0.1:1/postgres' });
      const launcher = await openEmbeddedDatabase(dir, { holder: 'platform', share: true, join: false, maxConnections: 4 }).catch(
        (e: unknown) => e,
      );
      expect(launcher).toBeInstanceOf(EmbeddedDatabaseBusyError);
      expect((launcher as EmbeddedDatabaseBusyError).holder).toMatchObject({ pid, holder: 'platform' });
      expect((launcher as Error).message).toContain(
        `in use by the platform (pid ${pid}); if that process does not use it, delete ${lockFile}`,
      );
    });

    it('waits for a holder that is starting its engine, then connects to it', async () => {
      const pid = liveProcess();
      await writeLock({ pid, holder: 'platform', state: 'starting' });
      await cp(path.join(template, 'pg'), path.join(dataDir, 'other'), { recursive: true });
      const engine = await startEmbeddedPostgres(path.join(dataDir, 'other'), 4);
      try {
        let waitingFor: EmbeddedLockRecord | undefined;
        const joining = openEmbeddedDatabase(dir, { holder: 'auth CLI', share: false, maxConnections: 4, onWait: (h) => (waitingFor = h) });
        // it found the holder starting and waits (a condition, not a time)
        await expect.poll(() => waitingFor, { timeout: 20_000 }).toMatchObject({ pid, holder: 'platform', state: 'starting' });
        await writeLock({ pid, holder: 'platform', state: 'serving', url: engine.url });
        expect(await joining).toMatchObject({ url: engine.url, servedBy: { pid, holder: 'platform' } });
        await writeLock({ pid, holder: 'platform', state: 'starting' });
        await expect(openEmbeddedDatabase(dir, { holder: 'auth CLI', share: false, maxConnections: 4, waitMs: 200 })).rejects.toThrow(
          `in use by the platform (pid ${pid}), whose engine did not start within 0 s`,
        );
      } finally {
        await engine.stop();
      }
    });

    it('fails naming the lock when the URL of a live holder does not answer', async () => {
      const pid = liveProcess();
      await writeLock({ pid, holder: 'platform', state: 'serving', url: 'postgres://postgres@127.0.0.1:1/postgres' });
      await expect(openEmbeddedDatabase(dir, { holder: 'auth CLI', share: false, maxConnections: 4 })).rejects.toThrow(
        `is served by the platform (pid ${pid}) at postgres://postgres@127.0.0.1:1/postgres, which does not answer`,
      );
    });

    it('takes over a lock left by a process that is gone, by an earlier process with this pid, or unreadable', async () => {
      for (const left of [
        JSON.stringify({ pid: await deadPid(), holder: 'platform', state: 'serving', url: 'postgres://postgres@127.0.0.1:1/postgres' }),
        JSON.stringify({ pid: process.pid, holder: 'platform', state: 'serving', url: 'postgres://postgres@127.0.0.1:1/postgres' }),
        '12345 auth service',
      ]) {
        await writeFile(lockFile, `${left}\n`);
        const served = await openEmbeddedDatabase(dir, { holder: 'auth CLI', share: false, maxConnections: 4 });
        expect(served.servedBy).toBeUndefined();
        expect(await readEmbeddedLock(lockFile)).toEqual({ pid: process.pid, holder: 'auth CLI', state: 'private' });
        await served.stop();
      }
    });

    it('keeps the data across holders, and removes the lock when its holder exits without stopping', async () => {
      const served = await openEmbeddedDatabase(dir, { holder: 'platform', share: true, maxConnections: 4 });
      const client = new pg.Client({ connectionString: served.url });
      await client.connect();
      await client.query('CREATE TABLE kept (id int); INSERT INTO kept VALUES (1), (2)');
      await client.end();
      await served.stop();

      // A holder that exits (process.exit) without stopping its engine leaves no lock behind.
      const kit = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
      const db = path.join(kit, 'src', 'db.ts');
      const script = path.join(dataDir, 'hold.mts');
      await writeFile(
        script,
        `import { openEmbeddedDatabase } from ${JSON.stringify(db)};\n` +
          `const e = await openEmbeddedDatabase(${JSON.stringify(dir)}, { holder: 'runtime service', share: true, maxConnections: 4 });\n` +
          `process.stdout.write(e.url + '\\n');\nsetTimeout(() => process.exit(0), 100);\n`,
      );
      const child = spawn(process.execPath, [script], { cwd: kit, stdio: ['ignore', 'pipe', 'inherit'] });
      let url = '';
      child.stdout!.on('data', (d: Buffer) => (url += d.toString()));
      expect(await new Promise((resolve) => child.once('exit', resolve))).toBe(0);
      expect(url).toMatch(/^postgres:\/\//);
      expect(await readEmbeddedLock(lockFile)).toBeUndefined();

      const again = await openEmbeddedDatabase(dir, { holder: 'auth CLI', share: false, maxConnections: 4 });
      try {
        expect(await count(again.url, 'kept')).toBe(2);
      } finally {
        await again.stop();
      }
      expect(await readFile(path.join(dir, 'PG_VERSION'), 'utf8')).toMatch(/^\d+/);
    }, 60_000);
  });
});
