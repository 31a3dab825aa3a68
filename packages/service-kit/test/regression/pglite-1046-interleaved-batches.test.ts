/**
 * Regression: pglite-socket interleaved the extended-protocol messages of concurrent connections,
 * so parameterized queries failed with "unnamed prepared statement does not exist" or read another
 * client's parameters (electric-sql/pglite#1046). startEmbeddedPostgres keeps each batch together.
 */
import { describe, expect, it } from 'vitest';
import pg from 'pg';
import { startEmbeddedPostgres } from '../../src/db.ts';

describe('startEmbeddedPostgres', () => {
  it('answers hundreds of concurrent parameterized queries from several pools correctly', async () => {
    const embedded = await startEmbeddedPostgres(undefined, 12);
    const pools = [0, 1, 2].map(() => new pg.Pool({ connectionString: embedded.url, max: 4 }));
    const errors: string[] = [];
    for (const p of pools) p.on('error', (e) => errors.push(e.message));
    try {
      await pools[0]!.query('CREATE TABLE items (id int PRIMARY KEY, label text)');
      const results = await Promise.all(
        Array.from({ length: 450 }, async (_, i) => {
          const pool = pools[i % 3]!;
          if (i % 3 === 0) await pool.query('INSERT INTO items VALUES ($1, $2)', [i, `label-${i}`]);
          if (i % 7 === 0) {
            const client = await pool.connect();
            try {
              await client.query('BEGIN');
              await client.query('SELECT $1::int', [i]);
              await client.query('COMMIT');
            } finally {
              client.release();
            }
          }
          const { rows } = await pool.query<{ n: number; s: string }>('SELECT $1::int AS n, $2::text AS s', [i, `echo-${i}`]);
          return rows[0]!.n === i && rows[0]!.s === `echo-${i}`;
        }),
      );
      expect(results.filter((ok) => !ok)).toEqual([]);
      expect((await pools[1]!.query('SELECT count(*)::int AS n FROM items')).rows[0]).toEqual({ n: 150 });
      expect(errors).toEqual([]);
    } finally {
      for (const p of pools) await p.end();
      await embedded.stop();
    }
  }, 60_000);
});
