import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '@codelab/service-kit/testing';
import { buildApp } from '../src/app.ts';
import { findClient } from '../src/clients.ts';
import { findUserByLogin } from '../src/users.ts';
import { buildTestApp, openTestDatabase, tempDir, testConfig, TEST_MASTER_KEY, type TestApp } from './helpers.ts';

describe('buildApp', () => {
  describe('as assembled', () => {
    let testApp: TestApp;
    beforeAll(async () => {
      testApp = await buildTestApp();
    });
    afterAll(() => testApp.close());

    it('names the service and its version on GET /', async () => {
      const res = await testApp.service.app.inject({ method: 'GET', url: '/' });
      expect(res.statusCode).toBe(200);
      expect(res.json()).toEqual({ service: 'CodeLab Auth Service', version: '0.1.0' });
    });

    it('is ready when the database answers', async () => {
      const res = await testApp.service.app.inject({ method: 'GET', url: '/ready' });
      expect(res.statusCode).toBe(200);
      expect(res.json()).toEqual({ status: 'ready', service: 'auth', version: '0.1.0', checks: { postgres: 'ok' } });
    });

    it('seeds the admin user and the default client at start', async () => {
      // Which suite created `admin` first (and so its password) is not known in the shared database.
      const db = await openTestDatabase();
      try {
        expect(await findUserByLogin(db, 'admin')).toMatchObject({
          username: 'admin',
          email: 'admin@codelab.local',
          isActive: true,
          isVerified: true,
        });
        expect(await findClient(db, 'codelab-flutter-app')).toMatchObject({ isActive: true, isConfidential: false });
      } finally {
        await db.close();
      }
    });
  });

  it('reports Redis in readiness when configured to (AUTH_SERVICE__LIMITS_REQUIRE_REDIS), and only then', async () => {
    // Nothing listens on port 1: the check must fail, naming Redis, without failing the start.
    const lenient = await buildTestApp({ AUTH_SERVICE__REDIS_URL: 'redis://127.0.0.1:1/0' });
    try {
      const res = await lenient.service.app.inject({ method: 'GET', url: '/ready' });
      expect(res.statusCode).toBe(200);
    } finally {
      await lenient.close();
    }
    const testApp = await buildTestApp({ AUTH_SERVICE__REDIS_URL: 'redis://127.0.0.1:1/0', AUTH_SERVICE__LIMITS_REQUIRE_REDIS: 'true' });
    try {
      const res = await testApp.service.app.inject({ method: 'GET', url: '/ready' });
      expect(res.statusCode).toBe(503);
      expect(res.json()).toMatchObject({
        status: 'not_ready',
        checks: { postgres: 'ok', redis: expect.stringMatching(/^error: /) },
        failed: ['redis'],
      });
    } finally {
      await testApp.close();
    }
  });

  it('runs on its own embedded database when no URL is set, with the configured pool size', async () => {
    const tmp = await tempDir();
    try {
      const config = testConfig(tmp.dir, { AUTH_SERVICE__DB_URL: '', AUTH_SERVICE__DB_POOL_SIZE: '3' });
      expect(config.dbUrl).toBeUndefined();
      const { app } = await buildApp(config, { logger: silentLogger() });
      try {
        const token = await app.inject({
          method: 'POST',
          url: '/oauth/token',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          payload: new URLSearchParams({
            grant_type: 'password',
            client_id: 'codelab-flutter-app',
            username: 'admin',
            password: TEST_MASTER_KEY,
          }).toString(),
        });
        expect(token.statusCode).toBe(200);
        const metrics = await app.inject({ method: 'GET', url: '/metrics' });
        // The kit's pool-size gauge.
        expect(metrics.body).toMatch(/^db_client_connections_max\{[^}]*service="auth"[^}]*\} 3$/m);
      } finally {
        await app.close();
      }
    } finally {
      await tmp.remove();
    }
  }, 120_000); // the embedded engine (WebAssembly) starts slowly on a busy machine

  it('fails to start, naming the reason, when a dependency cannot be set up', async () => {
    const tmp = await tempDir();
    try {
      const config = testConfig(tmp.dir, { AUTH_SERVICE__ENVIRONMENT: 'production' });
      await expect(buildApp(config, { logger: silentLogger() })).rejects.toThrow('signing keys not found');
    } finally {
      await tmp.remove();
    }
  });
});
