/**
 * PGlite is an optional dependency (images are built with `npm ci --omit=dev --omit=optional` and
 * always use PostgreSQL). A service started without a database URL where it is not installed ends
 * with one sentence naming the variable to set, not a module resolution failure. The missing
 * packages are simulated with a resolve hook that refuses them, as Node does when they are absent.
 */
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { TEST_INTERNAL_KEY } from '../src/testing.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

const WITHOUT_PGLITE = `import { registerHooks } from 'node:module';
registerHooks({
  resolve(specifier, context, next) {
    if (specifier === '@electric-sql/pglite' || specifier.startsWith('@electric-sql/pglite-socket')) {
      throw Object.assign(new Error(\`Cannot find package '\${specifier}'\`), { code: 'ERR_MODULE_NOT_FOUND' });
    }
    return next(specifier, context);
  },
});
`;

describe('without the embedded engine installed', () => {
  it('a service without a database URL exits 1 naming the variable to set', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'codelab-no-pglite-'));
    try {
      const hook = path.join(dir, 'without-pglite.mjs');
      await writeFile(hook, WITHOUT_PGLITE);
      const run = spawnSync(process.execPath, ['--import', hook, 'services/runtime/src/main.ts'], {
        cwd: ROOT,
        encoding: 'utf8',
        timeout: 30_000,
        env: {
          PATH: process.env.PATH ?? '',
          HOME: process.env.HOME ?? '/tmp',
          NO_COLOR: '1',
          CODELAB_DATA_DIR: dir,
          AGENT_RUNTIME__PORT: '0',
          AGENT_RUNTIME__INTERNAL_API_KEY: TEST_INTERNAL_KEY,
        },
      });
      expect(run.status, run.stderr).toBe(1);
      expect(run.stderr).toContain(
        'runtime: failed to start: Error: no database URL (AGENT_RUNTIME__DB_URL) and the embedded PostgreSQL engine is not installed',
      );
      expect(run.stderr).toContain('npm ci --omit=optional');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
