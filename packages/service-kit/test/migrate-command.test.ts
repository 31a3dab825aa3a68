/**
 * The migration commands the Helm chart's Job runs (`node services/<service>/src/migrate.ts`):
 * on an empty database they apply every migration, run again they find nothing to do, and without
 * a URL they fail saying which setting is missing.
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startEmbeddedPostgres } from '../src/embedded-postgres.ts';
import { scratchDatabase } from '../src/testing.ts';

const ROOT = path.join(import.meta.dirname, '..', '..', '..');

async function run(service: 'auth' | 'runtime', env: Record<string, string>): Promise<{ code: number; lines: Record<string, unknown>[] }> {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(AUTH_SERVICE|AGENT_RUNTIME)__/.test(k)));
  const r = await promisify(execFile)(process.execPath, [path.join(ROOT, 'services', service, 'src', 'migrate.ts')], {
    env: { ...clean, ...env },
    timeout: 60_000,
  }).then(
    (x) => ({ code: 0, stdout: x.stdout }),
    (e: { code?: number; stdout?: string }) => ({ code: e.code ?? -1, stdout: e.stdout ?? '' }),
  );
  return {
    code: r.code,
    lines: r.stdout
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

describe('the migration commands', () => {
  let scratch: Awaited<ReturnType<typeof scratchDatabase>> | undefined;
  let url: string;
  let own: { stop(): Promise<void> } | undefined;
  beforeAll(async () => {
    // The embedded engine (PGlite) has one database whatever the name, where the other suites run
    // their migrations, before this test or while it runs. The test needs an empty one that stays
    // its own: on the embedded engine, an engine of its own (asking whether the shared one was still
    // empty raced with the suites migrating it: "applied 0").
    if (inject('databaseKind') === 'embedded') {
      const engine = await startEmbeddedPostgres(undefined, 4);
      own = engine;
      url = engine.url;
      return;
    }
    scratch = await scratchDatabase(inject('databaseUrl'), 'migrate');
    url = scratch.url;
  });
  afterAll(async () => {
    await own?.stop();
    await scratch?.drop();
  });

  it('apply every migration of a service to an empty database, then find nothing to do', async () => {
    for (const [service, setting] of [
      ['auth', 'AUTH_SERVICE__DB_URL'],
      ['runtime', 'AGENT_RUNTIME__DB_URL'],
    ] as const) {
      const first = await run(service, { [setting]: url });
      expect(first.code, JSON.stringify(first.lines)).toBe(0);
      const done = first.lines.at(-1)!;
      expect(done).toMatchObject({ service, command: 'migrate', level: 'info' });
      expect((done.applied as number[]).length).toBeGreaterThan(0);
      const again = await run(service, { [setting]: url });
      expect(again.code).toBe(0);
      expect(again.lines.at(-1)).toMatchObject({ applied: [], msg: 'the database is up to date' });
    }
    // the services' tables are there
    const db = new pg.Client({ connectionString: url });
    await db.connect();
    const { rows } = await db.query(`SELECT to_regclass('users') IS NOT NULL AS users, to_regclass('sessions') IS NOT NULL AS sessions`);
    await db.end();
    expect(rows[0]).toEqual({ users: true, sessions: true });
  });

  it('fail with exit code 1 naming the setting when there is no database URL', async () => {
    const r = await run('runtime', {});
    expect(r.code).toBe(1);
    expect(r.lines.at(-1)).toMatchObject({ level: 'error', setting: 'AGENT_RUNTIME__DB_URL' });
  });
});
