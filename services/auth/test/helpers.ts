import { afterAll, beforeAll } from 'vitest';
/**
 * Test doubles for the auth suites: the config and app against the run's database (shared by every
 * suite, so never assumed empty), a migrated database handle, unique names, users and clients of
 * their own, and OAuth requests.
 */
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { inject } from 'vitest';
import { migrate, openDatabase, type Database, ServiceMetrics, type Service } from '@codelab/service-kit';
import { silentLogger, TEST_INTERNAL_KEY } from '@codelab/service-kit/testing';
import { buildApp } from '../src/app.ts';
import { createClient, type GrantType } from '../src/clients.ts';
import { readAuthConfig, type AuthConfig } from '../src/config.ts';
import { hashPassword } from '../src/passwords.ts';
import { createUser, type User } from '../src/users.ts';

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
    // Suites send many requests, and many wrong passwords, from 127.0.0.1: the defences have their
    // own tests (limits/, token-limits.test.ts); here they must not lock the address.
    AUTH_SERVICE__ENABLE_RATE_LIMITING: 'false',
    AUTH_SERVICE__BRUTE_FORCE_IP_THRESHOLD: '10000',
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

export interface TestSuite {
  /** The app under test, built before the suite and closed after it. */
  readonly testApp: TestApp;
  readonly app: FastifyInstance;
  /** The run's database with the auth schema, for arranging and inspecting rows. */
  readonly db: Database;
}

/** For a describe block: builds the app and opens the database before it, closes both after it. */
export function useTestApp(env: Record<string, string> = {}): TestSuite {
  let testApp: TestApp | undefined;
  let db: Database | undefined;
  beforeAll(async () => {
    testApp = await buildTestApp(env);
    db = await openTestDatabase();
  });
  afterAll(async () => {
    await db?.close();
    await testApp?.close();
  });
  return {
    get testApp() {
      return testApp!;
    },
    get app() {
      return testApp!.service.app;
    },
    get db() {
      return db!;
    },
  };
}

/** A handle on the run's database with the auth schema applied (for arranging and inspecting rows). */
export async function openTestDatabase(): Promise<Database> {
  const logger = silentLogger();
  const db = await openDatabase({
    service: 'auth-test',
    url: inject('databaseUrl'),
    poolMax: 2,
    logger,
    metrics: new ServiceMetrics('auth-test'),
  });
  await migrate(db, 'auth', MIGRATIONS_DIR, logger);
  return db;
}

export const PASSWORD = 'Correct-Horse-9';
/** The seeded public client. */
export const PUBLIC_CLIENT_ID = 'codelab-flutter-app';

export async function newUser(db: Database, opts: { isActive?: boolean; isAdmin?: boolean } = {}): Promise<User> {
  const username = uniqueName('User');
  const user = await createUser(db, { username, email: `${username}@example.test`, password: PASSWORD, ...opts });
  return user!;
}

export interface TestClient {
  clientId: string;
  /** Set for confidential clients. */
  secret: string | undefined;
}

/** A client of the test's own: confidential (with a secret) unless `confidential: false`. */
export async function newClient(
  db: Database,
  opts: {
    confidential?: boolean;
    scopes?: string[];
    grants?: GrantType[];
    accessTokenLifetime?: number;
    refreshTokenLifetime?: number;
    isActive?: boolean;
  } = {},
): Promise<TestClient> {
  const clientId = uniqueName(opts.confidential === false ? 'public' : 'confidential');
  const secret = opts.confidential === false ? undefined : `secret-${randomUUID()}`;
  await createClient(db, {
    clientId,
    name: clientId,
    allowedScopes: opts.scopes ?? ['api:read', 'api:write'],
    allowedGrantTypes: opts.grants ?? ['password', 'refresh_token', 'client_credentials'],
    ...(opts.accessTokenLifetime !== undefined ? { accessTokenLifetime: opts.accessTokenLifetime } : {}),
    ...(opts.refreshTokenLifetime !== undefined ? { refreshTokenLifetime: opts.refreshTokenLifetime } : {}),
    ...(opts.isActive !== undefined ? { isActive: opts.isActive } : {}),
    ...(secret !== undefined ? { secretHash: await hashPassword(secret) } : {}),
  });
  return { clientId, secret };
}

/** RFC 6749 §2.3.1: id and secret form-url-encoded, then base64. */
export function basicAuth(clientId: string, secret: string): string {
  const encode = (s: string) => encodeURIComponent(s).replace(/%20/g, '+');
  return `Basic ${Buffer.from(`${encode(clientId)}:${encode(secret)}`).toString('base64')}`;
}

/** POSTs a form to an OAuth endpoint of the app. */
export function postForm(
  app: FastifyInstance,
  url: string,
  form: Record<string, string>,
  headers: Record<string, string> = {},
): Promise<LightMyRequestResponse> {
  return app.inject({
    method: 'POST',
    url,
    headers: { 'content-type': 'application/x-www-form-urlencoded', 'user-agent': 'vitest-agent', ...headers },
    payload: new URLSearchParams(form).toString(),
  });
}

export interface TokenBody {
  access_token: string;
  refresh_token?: string;
  token_type: string;
  expires_in: number;
  scope: string;
}

export interface AuditRow {
  event_type: string;
  success: boolean;
  user_id: string | null;
  client_id: string | null;
  ip_address: string | null;
  user_agent: string | null;
  event_data: Record<string, unknown> | null;
  error_message: string | null;
}

/** Audit rows of a client (every test client is its own), oldest first. */
export async function auditRowsOfClient(db: Database, clientId: string): Promise<AuditRow[]> {
  const { rows } = await db.query<AuditRow>(
    `SELECT event_type, success, user_id, client_id, ip_address, user_agent, event_data, error_message
       FROM audit_logs WHERE client_id = $1 ORDER BY created_at, id`,
    [clientId],
  );
  return rows;
}
