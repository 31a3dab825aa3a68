/**
 * Test doubles for the auth suites: the config and app against the run's database (shared by every
 * suite, so never assumed empty), a migrated database handle, and unique names.
 */
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { inject } from 'vitest';
import { migrate, openDatabase, type Database } from '@codelab/service-kit/db';
import { ServiceMetrics } from '@codelab/service-kit/metrics';
import type { Service } from '@codelab/service-kit/service';
import { silentLogger, TEST_INTERNAL_KEY } from '@codelab/service-kit/testing';
import { buildApp } from '../src/app.ts';
import { readAuthConfig, type AuthConfig } from '../src/config.ts';

export const TEST_MASTER_KEY = 'test-master-key-do-not-use';
const MIGRATIONS_DIR = fileURLToPath(new URL('../src/migrations', import.meta.url));

/** A unique lower-case name (usernames, client ids) so suites sharing the database never collide. */
export function uniqueName(prefix: string): string {
  return `${prefix}-${randomUUID().slice(0, 8)}`;
}

export async function tempDir(): Promise<{ dir: string; remove: () => Promise<void> }> {
  const dir = await mkdtemp(path.join(tmpdir(), 'codelab-auth-test-'));
  return { dir, remove: () => rm(dir, { recursive: true, force: true }) };
}

export function testConfig(dataDir: string, env: Record<string, string> = {}): AuthConfig {
  return readAuthConfig({
    AUTH_SERVICE__INTERNAL_API_KEY: TEST_INTERNAL_KEY,
    AUTH_SERVICE__DB_URL: inject('databaseUrl'),
    AUTH_SERVICE__MASTER_KEY: TEST_MASTER_KEY,
    AUTH_SERVICE__DB_POOL_SIZE: '3',
    CODELAB_DATA_DIR: dataDir,
    ...env,
  });
}

export interface TestApp {
  service: Service;
  config: AuthConfig;
  close(): Promise<void>;
}

export async function buildTestApp(env: Record<string, string> = {}): Promise<TestApp> {
  const tmp = await tempDir();
  const config = testConfig(tmp.dir, env);
  const service = await buildApp(config, { logger: silentLogger() });
  return {
    service,
    config,
    close: async () => {
      await service.app.close();
      await tmp.remove();
    },
  };
}

/** A handle on the run's database with the auth schema applied (for arranging and inspecting rows). */
export async function openTestDatabase(): Promise<Database> {
  const logger = silentLogger();
  const db = await openDatabase({ service: 'auth-test', url: inject('databaseUrl'), poolMax: 2, logger, metrics: new ServiceMetrics('auth-test') });
  await migrate(db, 'auth', MIGRATIONS_DIR, logger);
  return db;
}
