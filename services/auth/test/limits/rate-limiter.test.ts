import { afterEach, beforeEach, describe, expect, inject, it } from 'vitest';
import { ServiceMetrics } from '@codelab/service-kit';
import { missingServer, silentLogger } from '@codelab/service-kit/testing';
import { createLimiterStore, type LimiterStore } from '../../src/limits/limiter-store.ts';
import { createRateLimiter, type RateLimiter } from '../../src/limits/rate-limiter.ts';
import { listKeys, ManualClock, metricValue, sleep, useRedisStores } from './helpers.ts';

interface Harness {
  store: LimiterStore;
  limiter(limit: number, windowSeconds: number, endpoint?: string): RateLimiter;
  advance(ms: number): Promise<void>;
}

function limiterBehaviour(harness: () => Harness): void {
  it('allows `limit` requests, counting remaining down, then refuses with retryAfterSeconds', async () => {
    const l = harness().limiter(3, 60);
    expect(await l.hit('203.0.113.1')).toEqual({ allowed: true, limit: 3, remaining: 2, retryAfterSeconds: 0, firstRefusal: false });
    expect(await l.hit('203.0.113.1')).toEqual({ allowed: true, limit: 3, remaining: 1, retryAfterSeconds: 0, firstRefusal: false });
    expect(await l.hit('203.0.113.1')).toEqual({ allowed: true, limit: 3, remaining: 0, retryAfterSeconds: 0, firstRefusal: false });
    const refused = await l.hit('203.0.113.1');
    expect(refused).toMatchObject({ allowed: false, limit: 3, remaining: 0, firstRefusal: true });
    expect(refused.retryAfterSeconds).toBeGreaterThanOrEqual(59);
    expect(refused.retryAfterSeconds).toBeLessThanOrEqual(60);
  });

  it('counts each key on its own', async () => {
    const l = harness().limiter(1, 60);
    expect((await l.hit('203.0.113.1')).allowed).toBe(true);
    expect((await l.hit('203.0.113.1')).allowed).toBe(false);
    expect((await l.hit('203.0.113.2')).allowed).toBe(true);
  });

  it('counts each endpoint on its own', async () => {
    const h = harness();
    const token = h.limiter(1, 60, 'token');
    const revoke = h.limiter(1, 60, 'revoke');
    expect((await token.hit('203.0.113.1')).allowed).toBe(true);
    expect((await revoke.hit('203.0.113.1')).allowed).toBe(true);
    expect((await token.hit('203.0.113.1')).allowed).toBe(false);
  });

  it('slides: a request is allowed again when the oldest counted one leaves the window, not before', async () => {
    const h = harness();
    const l = h.limiter(2, 2);
    await l.hit('k'); // t = 0
    await h.advance(1000);
    await l.hit('k'); // t = 1 s
    await h.advance(200);
    expect(await l.hit('k')).toEqual({ allowed: false, limit: 2, remaining: 0, retryAfterSeconds: 1, firstRefusal: true }); // 0.8 s to go
    await h.advance(900);
    // t = 2.1 s: the first request left; the second is still in the window.
    expect(await l.hit('k')).toEqual({ allowed: true, limit: 2, remaining: 0, retryAfterSeconds: 0, firstRefusal: false });
    expect((await l.hit('k')).allowed).toBe(false);
  });

  it('does not count refused requests, so hammering does not extend the wait', async () => {
    const h = harness();
    const l = h.limiter(1, 1);
    await l.hit('k');
    for (let i = 0; i < 5; i++) expect((await l.hit('k')).allowed).toBe(false);
    await h.advance(1100);
    expect((await l.hit('k')).allowed).toBe(true);
  });

  it('marks only the first refusal of a key within a window (the one to audit)', async () => {
    const h = harness();
    const l = h.limiter(1, 1);
    await l.hit('k');
    expect((await l.hit('k')).firstRefusal).toBe(true);
    expect((await l.hit('k')).firstRefusal).toBe(false);
    expect((await l.hit('other')).firstRefusal).toBe(false);
    expect((await l.hit('other')).firstRefusal).toBe(true);
    await h.advance(1100);
    expect(await l.hit('k')).toMatchObject({ allowed: true, firstRefusal: false });
    expect((await l.hit('k')).firstRefusal).toBe(true);
  });

  it('counts refusals in auth_rate_limited_total{endpoint}', async () => {
    const h = harness();
    const l = h.limiter(1, 60, 'token');
    expect(await metricValue(h.store.metrics.rateLimited, { endpoint: 'token' })).toBe(0);
    await l.hit('k');
    await l.hit('k');
    await l.hit('k');
    expect(await metricValue(h.store.metrics.rateLimited, { endpoint: 'token' })).toBe(2);
  });
}

describe('rate-limiter', () => {
  describe('createRateLimiter', () => {
    it('rejects a bad endpoint label, limit or window', () => {
      const store = createLimiterStore({ logger: silentLogger(), metrics: new ServiceMetrics('auth') });
      expect(() => createRateLimiter({ store, endpoint: '/oauth/token', limit: 5, windowSeconds: 60 })).toThrow(/endpoint/);
      expect(() => createRateLimiter({ store, endpoint: 'token', limit: 0, windowSeconds: 60 })).toThrow(/limit/);
      expect(() => createRateLimiter({ store, endpoint: 'token', limit: 1_000_000, windowSeconds: 60 })).toThrow(/limit/);
      expect(() => createRateLimiter({ store, endpoint: 'token', limit: 5, windowSeconds: 0.5 })).toThrow(/windowSeconds/);
    });
  });

  describe('in memory (no Redis configured)', () => {
    let clock: ManualClock;
    let store: LimiterStore;
    beforeEach(() => {
      clock = new ManualClock();
      store = createLimiterStore({ logger: silentLogger(), metrics: new ServiceMetrics('auth'), now: clock.now });
    });
    afterEach(() => store.close());

    limiterBehaviour(() => ({
      store,
      limiter: (limit, windowSeconds, endpoint = 'token') => createRateLimiter({ store, endpoint, limit, windowSeconds }),
      advance: async (ms) => clock.advance(ms),
    }));

    it('holds at most `limit` entries per key', async () => {
      const l = createRateLimiter({ store, endpoint: 'token', limit: 3, windowSeconds: 60 });
      for (let i = 0; i < 50; i++) await l.hit('k');
      clock.advance(59_999);
      expect((await l.hit('k')).allowed).toBe(false);
      clock.advance(1);
      expect(await l.hit('k')).toMatchObject({ allowed: true, remaining: 2 });
    });
  });

  describe.skipIf(missingServer('Redis', 'TEST_REDIS_URL', inject('redisUrl')))('on Redis', () => {
    const onRedis = useRedisStores();
    const newStore = onRedis.newStore;

    limiterBehaviour(() => {
      const store = newStore();
      return {
        store,
        limiter: (limit, windowSeconds, endpoint = 'token') => createRateLimiter({ store, endpoint, limit, windowSeconds }),
        advance: sleep,
      };
    });

    it('shares the count between instances, under one expiring key', async () => {
      const one = createRateLimiter({ store: newStore(), endpoint: 'token', limit: 2, windowSeconds: 60 });
      const other = createRateLimiter({ store: newStore(), endpoint: 'token', limit: 2, windowSeconds: 60 });
      expect((await one.hit('203.0.113.1')).allowed).toBe(true);
      expect((await other.hit('203.0.113.1')).allowed).toBe(true);
      expect((await one.hit('203.0.113.1')).allowed).toBe(false);
      expect(await listKeys(onRedis.redis(), onRedis.prefix())).toEqual([
        `${onRedis.prefix()}rl:token:203.0.113.1`,
        `${onRedis.prefix()}rl:token:203.0.113.1:refused`,
      ]);
      expect(await onRedis.redis().zcard(`${onRedis.prefix()}rl:token:203.0.113.1`)).toBe(2);
      expect(await onRedis.redis().pttl(`${onRedis.prefix()}rl:token:203.0.113.1`)).toBeGreaterThan(59_000);
    });

    it('stays exact under concurrent requests', async () => {
      const l = createRateLimiter({ store: newStore(), endpoint: 'token', limit: 10, windowSeconds: 60 });
      const results = await Promise.all(Array.from({ length: 40 }, () => l.hit('k')));
      expect(results.filter((r) => r.allowed)).toHaveLength(10);
      expect(
        results
          .filter((r) => r.allowed)
          .map((r) => r.remaining)
          .sort((a, b) => a - b),
      ).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    });
  });
});
