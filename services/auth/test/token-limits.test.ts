/**
 * The token endpoint's defences through the real route: username and address lockouts that never
 * reveal whether a user exists, X-Forwarded-For believed only from trusted proxies, the per-address
 * rate limit, their audit rows, and logins that keep working when Redis stops mid-test.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ChildProcess } from 'node:child_process';
import type { FastifyInstance } from 'fastify';
import type { Database } from '@codelab/service-kit';
import { freePort, missingProgram } from '@codelab/service-kit/testing';
import { killProcess, startRedisServer } from './limits/helpers.ts';
import { auditRowsOfClient, buildTestApp, newClient, newUser, openTestDatabase, PASSWORD, uniqueName, type TestApp } from './helpers.ts';

const login = (app: FastifyInstance, clientId: string, username: string, password: string, opts: { ip?: string; xff?: string } = {}) =>
  app.inject({
    method: 'POST',
    url: '/oauth/token',
    remoteAddress: opts.ip ?? '10.1.2.3',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...(opts.xff ? { 'x-forwarded-for': opts.xff } : {}) },
    payload: new URLSearchParams({ grant_type: 'password', client_id: clientId, username, password }).toString(),
  });

describe('token endpoint defences', () => {
  let db: Database;
  beforeAll(async () => {
    db = await openTestDatabase();
  });
  afterAll(() => db.close());

  describe('username lockout', () => {
    let t: TestApp;
    beforeAll(async () => {
      t = await buildTestApp({ AUTH_SERVICE__BRUTE_FORCE_THRESHOLD: '5', AUTH_SERVICE__BRUTE_FORCE_IP_THRESHOLD: '1000' });
    });
    afterAll(() => t.close());

    it('locks a username after 5 failures, even the right password, without locking anyone else', async () => {
      const client = await newClient(db, { confidential: false });
      const victim = await newUser(db);
      const bystander = await newUser(db);
      for (let i = 0; i < 5; i++) expect((await login(t.service.app, client.clientId, victim.username, 'wrong')).statusCode).toBe(401);
      const locked = await login(t.service.app, client.clientId, victim.username, PASSWORD);
      expect(locked.statusCode).toBe(429);
      expect(locked.json()).toEqual({
        error: 'invalid_grant',
        error_description: expect.stringMatching(/^Too many failed attempts\. Try again in \d+ seconds\.$/),
      });
      expect(Number(locked.headers['retry-after'])).toBeGreaterThan(800);
      // the lock is per normalized username: case and spaces do not escape it
      expect((await login(t.service.app, client.clientId, ` ${victim.username.toUpperCase()} `, PASSWORD)).statusCode).toBe(429);
      expect((await login(t.service.app, client.clientId, bystander.username, PASSWORD)).statusCode).toBe(200);
      const rows = await auditRowsOfClient(db, client.clientId);
      expect(rows.filter((r) => r.event_type === 'lockout')).toHaveLength(1);
    });

    it('answers a username that does not exist exactly like one that does', async () => {
      const client = await newClient(db, { confidential: false });
      const ghost = uniqueName('ghost');
      const real = await newUser(db);
      const answers = async (username: string) => {
        const out: [number, unknown][] = [];
        for (let i = 0; i < 6; i++) {
          const res = await login(t.service.app, client.clientId, username, 'wrong');
          out.push([res.statusCode, res.json().error]);
        }
        return out;
      };
      expect(await answers(ghost)).toEqual(await answers(real.username));
    });
  });

  describe('address lockout and trusted proxies', () => {
    let direct: TestApp;
    let proxied: TestApp;
    beforeAll(async () => {
      direct = await buildTestApp({ AUTH_SERVICE__BRUTE_FORCE_IP_THRESHOLD: '10' });
      proxied = await buildTestApp({ AUTH_SERVICE__BRUTE_FORCE_IP_THRESHOLD: '10', AUTH_SERVICE__TRUSTED_PROXIES: '10.9.0.0/16' });
    });
    afterAll(async () => {
      await direct.close();
      await proxied.close();
    });

    it('locks an address after 10 failures over different usernames; a spoofed X-Forwarded-For from an untrusted peer changes nothing', async () => {
      const client = await newClient(db, { confidential: false });
      for (let i = 0; i < 10; i++) {
        const res = await login(direct.service.app, client.clientId, uniqueName('guess'), 'wrong', {
          ip: '10.5.5.5',
          xff: `203.0.113.${i}`,
        });
        expect(res.statusCode).toBe(401);
      }
      const user = await newUser(db);
      const res = await login(direct.service.app, client.clientId, user.username, PASSWORD, { ip: '10.5.5.5', xff: '198.51.100.77' });
      expect(res.statusCode).toBe(429);
      expect(res.json().error_description).toMatch(/from this IP/);
      expect((await login(direct.service.app, client.clientId, user.username, PASSWORD, { ip: '10.5.5.6' })).statusCode).toBe(200);
    });

    it('believes X-Forwarded-For from a trusted proxy: clients behind it are counted apart', async () => {
      const client = await newClient(db, { confidential: false });
      for (let i = 0; i < 10; i++)
        await login(proxied.service.app, client.clientId, uniqueName('guess'), 'wrong', { ip: '10.9.0.1', xff: '198.51.100.1' });
      const user = await newUser(db);
      expect(
        (await login(proxied.service.app, client.clientId, user.username, PASSWORD, { ip: '10.9.0.1', xff: '198.51.100.1' })).statusCode,
      ).toBe(429);
      expect(
        (await login(proxied.service.app, client.clientId, user.username, PASSWORD, { ip: '10.9.0.1', xff: '198.51.100.2' })).statusCode,
      ).toBe(200);
      // the rightmost untrusted hop counts: a client cannot prepend an address of its choice
      expect(
        (await login(proxied.service.app, client.clientId, user.username, PASSWORD, { ip: '10.9.0.1', xff: '198.51.100.2, 198.51.100.1' }))
          .statusCode,
      ).toBe(429);
    });
  });

  describe('rate limit per address', () => {
    it('answers 429 rate_limit_exceeded with Retry-After past the limit, and audits it once', async () => {
      const t = await buildTestApp({
        AUTH_SERVICE__ENABLE_RATE_LIMITING: 'true',
        AUTH_SERVICE__RATE_LIMIT_PER_IP: '3',
        AUTH_SERVICE__RATE_LIMIT_WINDOW: '60',
      });
      try {
        const client = await newClient(db, { confidential: false });
        const user = await newUser(db);
        for (let i = 0; i < 3; i++)
          expect((await login(t.service.app, client.clientId, user.username, PASSWORD, { ip: '10.7.7.7' })).statusCode).toBe(200);
        for (let i = 0; i < 2; i++) {
          const res = await login(t.service.app, client.clientId, user.username, PASSWORD, { ip: '10.7.7.7' });
          expect(res.statusCode).toBe(429);
          expect(res.json()).toMatchObject({ error: 'rate_limit_exceeded' });
          expect(Number(res.headers['retry-after'])).toBeGreaterThan(0);
          expect(res.headers['x-ratelimit-limit']).toBe('3');
          expect(res.headers['cache-control']).toBe('no-store');
        }
        expect((await login(t.service.app, client.clientId, user.username, PASSWORD, { ip: '10.7.7.8' })).statusCode).toBe(200);
        const rows = await auditRowsOfClient(db, client.clientId);
        expect(rows.filter((r) => r.event_type === 'rate_limited')).toHaveLength(1);
        const metrics = await t.service.app.inject({ method: 'GET', url: '/metrics' });
        expect(metrics.body).toMatch(/^auth_rate_limited_total\{endpoint="token"\} 2$/m);
        expect(metrics.body).toMatch(/^auth_token_requests_total\{grant_type="password",outcome="rate_limit_exceeded"\} 2$/m);
      } finally {
        await t.close();
      }
    });
  });

  describe.skipIf(missingProgram('redis-server', 'redis-server'))('Redis stopped mid-test', () => {
    let redis: ChildProcess;
    let port: number;
    // biome-ignore lint/suspicious/noDuplicateTestHooks: the hooks of this describe.skipIf(…)(…) block, which the rule does not see as a block
    beforeAll(async () => {
      port = await freePort();
      redis = await startRedisServer(port);
    });
    // biome-ignore lint/suspicious/noDuplicateTestHooks: the hooks of this describe.skipIf(…)(…) block, which the rule does not see as a block
    afterAll(() => killProcess(redis));

    it('keeps answering logins and enforcing locks from per-instance memory, and says so in metrics', async () => {
      const t = await buildTestApp({ AUTH_SERVICE__REDIS_URL: `redis://127.0.0.1:${port}/0`, AUTH_SERVICE__BRUTE_FORCE_THRESHOLD: '3' });
      try {
        const client = await newClient(db, { confidential: false });
        const user = await newUser(db);
        const other = await newUser(db);
        expect((await login(t.service.app, client.clientId, user.username, PASSWORD)).statusCode).toBe(200);
        expect((await t.service.app.inject({ method: 'GET', url: '/metrics' })).body).toMatch(
          /^auth_limiter_backend\{backend="redis"\} 1$/m,
        );
        await killProcess(redis);
        const started = Date.now();
        expect((await login(t.service.app, client.clientId, user.username, PASSWORD)).statusCode).toBe(200);
        expect(Date.now() - started).toBeLessThan(1500); // no hang on a dead Redis
        for (let i = 0; i < 3; i++) expect((await login(t.service.app, client.clientId, other.username, 'wrong')).statusCode).toBe(401);
        expect((await login(t.service.app, client.clientId, other.username, PASSWORD)).statusCode).toBe(429);
        const metrics = (await t.service.app.inject({ method: 'GET', url: '/metrics' })).body;
        expect(metrics).toMatch(/^auth_limiter_backend\{backend="memory"\} 1$/m);
        expect(metrics).toMatch(/^auth_limiter_redis_errors_total [1-9]/m);
        expect((await t.service.app.inject({ method: 'GET', url: '/ready' })).statusCode).toBe(200); // not required by default
      } finally {
        await t.close();
      }
    });
  });
});
