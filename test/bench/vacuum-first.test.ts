/**
 * The benches clear the dead rows of earlier runs before they measure (`vacuumFirst`, as pgbench
 * does): on a server without autovacuum, a run's session updates would otherwise make the next run
 * dearer. Checked on a database of its own: dead rows made by updates are gone after it.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { scratchDatabase } from '@codelab/service-kit/testing';
import { vacuumFirst } from '../../scripts/bench/platform.ts';

describe('vacuumFirst', () => {
  let scratch: Awaited<ReturnType<typeof scratchDatabase>>;
  let db: pg.Client;
  beforeAll(async () => {
    scratch = await scratchDatabase(inject('databaseUrl'), 'vacuum');
    db = new pg.Client({ connectionString: scratch.url });
    await db.connect();
  });
  afterAll(async () => {
    await db?.end();
    await scratch?.drop();
  });

  const deadRows = async (table: string): Promise<number> => {
    await db.query('SELECT pg_stat_force_next_flush()').catch(() => undefined);
    const { rows } = await db.query<{ n: string }>('SELECT n_dead_tup AS n FROM pg_stat_user_tables WHERE relname = $1', [table]);
    return Number(rows[0]?.n ?? 0);
  };

  it('removes the dead rows updates left, and says whether the server vacuums by itself', async () => {
    const table = `t_${randomBytes(4).toString('hex')}`;
    await db.query(`CREATE TABLE ${table} (id int PRIMARY KEY, v int NOT NULL) WITH (autovacuum_enabled = false)`);
    await db.query(`INSERT INTO ${table} SELECT g, 0 FROM generate_series(1, 1000) g`);
    for (let i = 0; i < 3; i++) await db.query(`UPDATE ${table} SET v = v + 1`);
    await expect.poll(() => deadRows(table), { timeout: 30_000 }).toBeGreaterThanOrEqual(1000);

    const said = await vacuumFirst(scratch.url);
    expect(said).toMatch(/^vacuumed first in \d+\.\d s/);
    const { rows } = await db.query<{ autovacuum: string }>('SHOW autovacuum');
    expect(said.includes('the server runs without autovacuum')).toBe(rows[0]!.autovacuum === 'off');
    await expect.poll(() => deadRows(table), { timeout: 30_000 }).toBe(0);
    expect((await db.query(`SELECT count(*)::int AS n, sum(v)::int AS s FROM ${table}`)).rows[0]).toEqual({ n: 1000, s: 3000 });
  });
});
