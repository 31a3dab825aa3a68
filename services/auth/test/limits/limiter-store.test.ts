import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import type { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ServiceMetrics, openRedis } from '@codelab/service-kit';
import { capturingLogger, freePort, missingProgram, silentLogger } from '@codelab/service-kit/testing';
import { createLimiterStore, type LimiterStore } from '../../src/limits/limiter-store.ts';
import { createLoginGuard } from '../../src/limits/login-guard.ts';
import { createRateLimiter } from '../../src/limits/rate-limiter.ts';
import { killProcess, listKeys, metricValue, startRedisServer, waitFor } from './helpers.ts';

const IP = '203.0.113.10';
const DOWN = 'limits: Redis unreachable, lockouts and rate limits now counted per instance in memory';
const UP = 'limits: Redis reachable again, lockouts and rate limits counted in Redis';

async function timed<T>(work: Promise<T>): Promise<{ value: T; ms: number }> {
  const started = performance.now();
  const value = await work;
  return { value, ms: performance.now() - started };
}

describe('limiter-store', () => {
  describe('createLimiterStore', () => {
    it('rejects a timeout or probe interval that is not positive', () => {
      const base = { logger: silentLogger(), metrics: new ServiceMetrics('auth') };
      expect(() => createLimiterStore({ ...base, commandTimeoutMs: 0 })).toThrow(/commandTimeoutMs/);
      expect(() => createLimiterStore({ ...base, probeIntervalMs: -5 })).toThrow(/probeIntervalMs/);
    });

    it('shares one set of metrics between stores on one registry', () => {
      const metrics = new ServiceMetrics('auth');
      const a = createLimiterStore({ logger: silentLogger(), metrics });
      const b = createLimiterStore({ logger: silentLogger(), metrics });
      expect(b.metrics).toBe(a.metrics);
      expect(() => createRateLimiter({ store: b, endpoint: 'token', limit: 1, windowSeconds: 1 })).not.toThrow();
    });
  });

  describe('metrics', () => {
    it('puts the limits series, with bounded labels only, in the scrape', async () => {
      const metrics = new ServiceMetrics('auth');
      const store = createLimiterStore({ logger: silentLogger(), metrics });
      const guard = createLoginGuard({ store, usernameThreshold: 1 });
      const limiter = createRateLimiter({ store, endpoint: 'token', limit: 1, windowSeconds: 60 });
      await guard.recordFailure('alice@example.test', IP);
      await limiter.hit(IP);
      await limiter.hit(IP);
      const { body } = await metrics.render(undefined);
      expect(body).toContain('auth_lockouts_total{scope="username"} 1');
      expect(body).toContain('auth_lockouts_total{scope="ip"} 0');
      expect(body).toContain('auth_rate_limited_total{endpoint="token"} 1');
      expect(body).toContain('auth_limiter_backend{backend="memory"} 1');
      expect(body).toContain('auth_limiter_backend{backend="redis"} 0');
      expect(body).toContain('auth_limiter_redis_errors_total 0');
      expect(body).not.toContain('alice');
      expect(body).not.toContain(IP);
    });
  });

  describe('with a Redis that never answered', () => {
    it('answers from memory at once, warns once and reports not healthy', async () => {
      const { logger, lines } = capturingLogger();
      const redis = openRedis(`redis://127.0.0.1:${await freePort()}`, silentLogger());
      const store = createLimiterStore({ redis, logger, metrics: new ServiceMetrics('auth') });
      try {
        const guard = createLoginGuard({ store, usernameThreshold: 2 });
        const first = await timed(guard.recordFailure('alice', IP));
        expect(first.ms).toBeLessThan(400);
        expect((await guard.recordFailure('alice', IP)).lockouts).toEqual(['username']);
        expect(await guard.check('alice', IP)).toMatchObject({ locked: true, scope: 'username' });
        expect(store.backend()).toBe('memory');
        expect(store.redisHealthy()).toBe(false);
        expect(lines().filter((l) => l.msg === DOWN)).toHaveLength(1);
        expect(lines().find((l) => l.msg === DOWN)?.level).toBe(40);
        expect(await metricValue(store.metrics.redisErrors)).toBeGreaterThanOrEqual(1);
        expect(await metricValue(store.metrics.backend, { backend: 'memory' })).toBe(1);
        expect(await metricValue(store.metrics.backend, { backend: 'redis' })).toBe(0);
      } finally {
        store.close();
        redis.disconnect();
      }
    });
  });

  describe.skipIf(missingProgram('redis-server', 'redis-server'))('with a redis-server of its own', () => {
    let port: number;
    let server: ChildProcess;
    let redis: Redis;
    let store: LimiterStore;
    let log: ReturnType<typeof capturingLogger>;
    const count = (msg: string): number => log.lines().filter((l) => l.msg === msg).length;

    beforeEach(async () => {
      port = await freePort();
      server = await startRedisServer(port);
      log = capturingLogger();
      redis = openRedis(`redis://127.0.0.1:${port}`, silentLogger());
      if (redis.status !== 'ready') await once(redis, 'ready');
      store = createLimiterStore({ redis, logger: log.logger, metrics: new ServiceMetrics('auth'), probeIntervalMs: 100 });
    });
    afterEach(async () => {
      store.close();
      redis.disconnect();
      if (server.exitCode === null && server.signalCode === null) server.kill('SIGCONT');
      await killProcess(server);
    });

    it('keeps locking from memory when Redis is killed mid-test, and goes back to Redis when it returns', async () => {
      const guard = createLoginGuard({ store, usernameThreshold: 3, ipThreshold: 100 });
      const limiter = createRateLimiter({ store, endpoint: 'token', limit: 2, windowSeconds: 60 });

      // Redis in use: alice locked there by this instance's failures, carol by another instance's.
      for (let i = 0; i < 3; i++) await guard.recordFailure('alice', IP);
      const aliceLock = (await listKeys(redis, 'auth:bf:u:')).find((k) => k.endsWith(':lock'));
      expect(await redis.pttl(aliceLock!)).toBeGreaterThan(890_000);
      const otherStore = createLimiterStore({ redis, logger: silentLogger(), metrics: new ServiceMetrics('auth') });
      const other = createLoginGuard({ store: otherStore, usernameThreshold: 3, ipThreshold: 100 });
      for (let i = 0; i < 3; i++) await other.recordFailure('carol', '198.51.100.20');
      otherStore.close();
      expect(await guard.check('carol', IP)).toMatchObject({ locked: true, scope: 'username' });
      expect(store.backend()).toBe('redis');
      expect(await metricValue(store.metrics.backend, { backend: 'redis' })).toBe(1);

      await killProcess(server);

      // Every call answers, quickly, from memory.
      const check = await timed(guard.check('alice', IP));
      expect(check.ms).toBeLessThan(400);
      // The locks this instance saw in Redis (set by its failures, or found by its checks) hold.
      expect(check.value).toMatchObject({ locked: true, scope: 'username' });
      expect(await guard.check('carol', IP)).toMatchObject({ locked: true, scope: 'username' });
      expect(store.backend()).toBe('memory');
      expect(store.redisHealthy()).toBe(false);
      expect(await metricValue(store.metrics.backend, { backend: 'memory' })).toBe(1);
      expect(await metricValue(store.metrics.backend, { backend: 'redis' })).toBe(0);
      expect(await metricValue(store.metrics.redisErrors)).toBeGreaterThanOrEqual(1);

      // The threshold is enforced in memory: bob locks at his third failure, not before.
      expect((await guard.recordFailure('bob', IP)).lockouts).toEqual([]);
      expect((await guard.recordFailure('bob', IP)).lockouts).toEqual([]);
      expect(await guard.check('bob', IP)).toEqual({ locked: false });
      const third = await timed(guard.recordFailure('bob', IP));
      expect(third.value.lockouts).toEqual(['username']);
      expect(third.ms).toBeLessThan(50);
      expect(await guard.check('bob', IP)).toMatchObject({ locked: true, scope: 'username' });
      expect(await metricValue(store.metrics.lockouts, { scope: 'username' })).toBe(2);
      // So is the rate limit.
      expect((await limiter.hit(IP)).allowed).toBe(true);
      expect((await limiter.hit(IP)).allowed).toBe(true);
      expect((await limiter.hit(IP)).allowed).toBe(false);

      // One warning for the whole outage, however many calls and reconnect attempts.
      await new Promise((r) => setTimeout(r, 700));
      await guard.check('erin', IP);
      expect(count(DOWN)).toBe(1);
      expect(count(UP)).toBe(0);

      server = await startRedisServer(port);
      await waitFor('the store to use Redis again', () => store.backend() === 'redis');
      expect(store.redisHealthy()).toBe(true);
      expect(count(UP)).toBe(1);
      expect(count(DOWN)).toBe(1);
      expect(await metricValue(store.metrics.backend, { backend: 'redis' })).toBe(1);
      expect(await metricValue(store.metrics.backend, { backend: 'memory' })).toBe(0);

      // Back on Redis (a fresh server: nothing persisted, and memory counts are not copied over).
      expect(await guard.check('bob', IP)).toEqual({ locked: false });
      await guard.recordFailure('dave', IP);
      expect((await listKeys(redis, 'auth:bf:')).length).toBe(2);
      expect(store.backend()).toBe('redis');
    });

    it('bounds each call by the command timeout when Redis hangs, and recovers when it resumes', async () => {
      const guard = createLoginGuard({ store, usernameThreshold: 2 });
      await guard.recordFailure('alice', IP);
      expect(store.backend()).toBe('redis');

      server.kill('SIGSTOP');
      // Calls in flight when Redis stalls all time out; the outage is still logged once.
      const [stalled] = await Promise.all([timed(guard.recordFailure('alice', IP)), ...['b', 'c', 'd'].map((u) => guard.check(u, IP))]);
      expect(stalled!.ms).toBeGreaterThanOrEqual(240);
      expect(stalled!.ms).toBeLessThan(450);
      // Answered from memory, whose shadow of the first failure makes this the second.
      expect(stalled!.value.lockouts).toEqual(['username']);
      expect(store.backend()).toBe('memory');
      // Later calls no longer wait for Redis.
      const next = await timed(guard.check('alice', IP));
      expect(next.ms).toBeLessThan(50);
      expect(next.value).toMatchObject({ locked: true });
      expect(count(DOWN)).toBe(1);
      expect(log.lines().find((l) => l.msg === DOWN)?.err).toMatchObject({ message: 'Redis did not answer within 250 ms' });

      server.kill('SIGCONT');
      await waitFor('the store to use Redis again', () => store.backend() === 'redis');
      expect(count(UP)).toBe(1);
      // Redis kept its data: with the failure recorded before the stall, alice is locked there.
      const after = await guard.recordFailure('alice', IP);
      expect(after.status).toMatchObject({ locked: true, scope: 'username' });
      expect(store.backend()).toBe('redis');
    });
  });
});
