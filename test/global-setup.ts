/**
 * Test databases: with TEST_DATABASE_URL / TEST_REDIS_URL set (CI sets them to its real servers),
 * every suite uses those servers; without them an embedded PostgreSQL (PGlite over the wire
 * protocol) serves the whole run and Redis-only suites skip, naming what to install. Under CI=true
 * a missing server fails the run instead.
 */
import type {} from 'vitest';
import type { TestProject } from 'vitest/node';
import pg from 'pg';
import { Redis } from 'ioredis';
import { startEmbeddedPostgres } from '@codelab/service-kit';

declare module 'vitest' {
  export interface ProvidedContext {
    databaseUrl: string;
    databaseKind: 'server' | 'embedded';
    redisUrl: string | null;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const ci = process.env.CI === 'true';
  let stop = async (): Promise<void> => undefined;
  let url = process.env.TEST_DATABASE_URL?.trim();
  if (url) {
    const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000 });
    try {
      await client.connect();
      await client.query('SELECT 1');
    } catch (err) {
      throw new Error(`TEST_DATABASE_URL=${url} is set but unreachable: ${(err as Error).message}`);
    } finally {
      await client.end().catch(() => undefined);
    }
    project.provide('databaseKind', 'server');
  } else {
    if (ci) throw new Error('CI=true but TEST_DATABASE_URL is not set: CI must run the database suites against a real PostgreSQL');
    const embedded = await startEmbeddedPostgres(undefined, 80);
    url = embedded.url;
    stop = embedded.stop;
    project.provide('databaseKind', 'embedded');
  }
  project.provide('databaseUrl', url);

  const redisUrl = process.env.TEST_REDIS_URL?.trim() || null;
  if (redisUrl) {
    const redis = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 0, connectTimeout: 3000 });
    try {
      await redis.connect();
      await redis.ping();
    } catch (err) {
      throw new Error(`TEST_REDIS_URL=${redisUrl} is set but unreachable: ${(err as Error).message}`);
    } finally {
      redis.disconnect();
    }
  } else if (ci) {
    throw new Error('CI=true but TEST_REDIS_URL is not set: CI must run the Redis suites against a real Redis');
  }
  project.provide('redisUrl', redisUrl);
  return stop;
}
