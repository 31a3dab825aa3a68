import { createHash } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, inject, it } from 'vitest';
import { ServiceMetrics } from '@codelab/service-kit';
import { missingServer, silentLogger } from '@codelab/service-kit/testing';
import { createLimiterStore, type LimiterStore } from '../../src/limits/limiter-store.ts';
import { createLoginGuard, normalizeUsername, type LoginGuard, type LoginGuardOptions } from '../../src/limits/login-guard.ts';
import { listKeys, ManualClock, metricValue, sleep, useRedisStores } from './helpers.ts';

const IP = '203.0.113.10';
const OTHER_IP = '198.51.100.20';

interface Harness {
  store: LimiterStore;
  guard(opts?: Omit<LoginGuardOptions, 'store'>): LoginGuard;
  /** Lets time pass: the manual clock in memory, real time on Redis. */
  advance(ms: number): Promise<void>;
}

async function fail(guard: LoginGuard, times: number, username: string, ip = IP): Promise<void> {
  for (let i = 0; i < times; i++) await guard.recordFailure(username, ip);
}

/** The rules, identical on both backends. */
function guardBehaviour(harness: () => Harness): void {
  it('locks a username after exactly usernameThreshold failures, not before', async () => {
    const { guard } = harness();
    const g = guard();
    for (let i = 1; i <= 4; i++) {
      expect(await g.recordFailure('alice', IP)).toEqual({ lockouts: [], status: { locked: false } });
      expect(await g.check('alice', IP)).toEqual({ locked: false });
    }
    const fifth = await g.recordFailure('alice', IP);
    expect(fifth.lockouts).toEqual(['username']);
    const status = await g.check('alice', IP);
    expect(status).toMatchObject({ locked: true, scope: 'username' });
    expect(status.locked && status.retryAfterSeconds).toBeGreaterThanOrEqual(899);
    expect(status.locked && status.retryAfterSeconds).toBeLessThanOrEqual(900);
    // The same answer whichever address asks: the lock is the username's.
    expect(await g.check('alice', OTHER_IP)).toMatchObject({ locked: true, scope: 'username' });
  });

  it('counts every spelling of a username together (trim, NFKC, case)', async () => {
    const g = harness().guard();
    for (const spelling of ['Alice', ' alice ', 'ALICE', '\u00a0alice', 'ａｌｉｃｅ']) await g.recordFailure(spelling, IP);
    expect(await g.check('alice', IP)).toMatchObject({ locked: true, scope: 'username' });
  });

  it("does not lock another username with one user's failures", async () => {
    const g = harness().guard();
    await fail(g, 5, 'alice');
    expect(await g.check('alice', IP)).toMatchObject({ locked: true });
    expect(await g.check('bob', IP)).toEqual({ locked: false });
    expect(await g.check('bob', OTHER_IP)).toEqual({ locked: false });
  });

  it('locks an IP after ipThreshold failures over different usernames, for every username, and no other IP', async () => {
    const g = harness().guard();
    for (let i = 0; i < 9; i++) await g.recordFailure(`user-${i}`, IP);
    expect(await g.check('someone-else', IP)).toEqual({ locked: false });
    expect((await g.recordFailure('user-9', IP)).lockouts).toEqual(['ip']);
    expect(await g.check('someone-else', IP)).toMatchObject({ locked: true, scope: 'ip' });
    expect(await g.check('someone-else', OTHER_IP)).toEqual({ locked: false });
  });

  it('counts IPv6 clients per /64', async () => {
    const g = harness().guard({ ipThreshold: 2 });
    await g.recordFailure('a', '2001:db8:1:2::1');
    await g.recordFailure('b', '2001:db8:1:2:ffff::2');
    expect(await g.check('c', '2001:db8:1:2::99')).toMatchObject({ locked: true, scope: 'ip' });
    expect(await g.check('c', '2001:db8:1:3::1')).toEqual({ locked: false });
  });

  it("clears the username's failures on success", async () => {
    const g = harness().guard({ ipThreshold: 100 });
    await fail(g, 4, 'alice');
    await g.recordSuccess('Alice', IP);
    await fail(g, 4, 'alice');
    expect(await g.check('alice', IP)).toEqual({ locked: false });
    expect((await g.recordFailure('alice', IP)).lockouts).toEqual(['username']);
  });

  it("does not clear the IP's failures on success", async () => {
    const g = harness().guard({ ipThreshold: 3 });
    await g.recordFailure('victim-1', IP);
    await g.recordFailure('victim-2', IP);
    await g.recordSuccess('known-account', IP);
    expect((await g.recordFailure('victim-3', IP)).lockouts).toEqual(['ip']);
    expect(await g.check('known-account', IP)).toMatchObject({ locked: true, scope: 'ip' });
  });

  it('counts failures in a sliding window: old ones leave it, any window holding the threshold locks', async () => {
    const h = harness();
    const g = h.guard({ usernameThreshold: 3, windowSeconds: 2 });
    await g.recordFailure('alice', IP); // t = 0
    await h.advance(1200);
    await g.recordFailure('alice', IP); // t = 1.2 s
    await h.advance(1000);
    // t = 2.2 s: the first failure has left the window, two remain.
    expect((await g.recordFailure('alice', IP)).lockouts).toEqual([]);
    expect(await g.check('alice', IP)).toEqual({ locked: false });
    await h.advance(200);
    // t = 2.4 s: three within 2 s (a fixed window restarted at 2 s would hold two).
    expect((await g.recordFailure('alice', IP)).lockouts).toEqual(['username']);
  });

  it('holds a lock for lockoutSeconds from the failure that reached the threshold', async () => {
    const h = harness();
    const g = h.guard({ usernameThreshold: 2, lockoutSeconds: 1 });
    await fail(g, 2, 'alice');
    await h.advance(500);
    expect(await g.check('alice', IP)).toEqual({ locked: true, scope: 'username', retryAfterSeconds: 1 });
    await h.advance(600);
    expect(await g.check('alice', IP)).toEqual({ locked: false });
  });

  it('does not extend a running lock with further failures', async () => {
    const h = harness();
    const g = h.guard({ usernameThreshold: 2, lockoutSeconds: 1 });
    await fail(g, 2, 'alice');
    await h.advance(600);
    expect((await g.recordFailure('alice', IP)).lockouts).toEqual([]);
    await h.advance(500);
    expect(await g.check('alice', IP)).toEqual({ locked: false });
  });

  it('reports the lock that runs longer when both scopes are locked', async () => {
    const h = harness();
    const g = h.guard({ usernameThreshold: 2, ipThreshold: 3, lockoutSeconds: 60 });
    await fail(g, 2, 'alice');
    await h.advance(600);
    expect((await g.recordFailure('bob', IP)).lockouts).toEqual(['ip']);
    expect(await g.check('alice', IP)).toMatchObject({ locked: true, scope: 'ip', retryAfterSeconds: 60 });
    expect(await g.check('alice', OTHER_IP)).toMatchObject({ locked: true, scope: 'username', retryAfterSeconds: 60 });
  });

  it('counts each lockout begun in auth_lockouts_total{scope}', async () => {
    const h = harness();
    const g = h.guard({ usernameThreshold: 2, ipThreshold: 4 });
    await fail(g, 3, 'alice');
    expect(await metricValue(h.store.metrics.lockouts, { scope: 'username' })).toBe(1);
    expect(await metricValue(h.store.metrics.lockouts, { scope: 'ip' })).toBe(0);
    await g.recordFailure('bob', IP);
    expect(await metricValue(h.store.metrics.lockouts, { scope: 'ip' })).toBe(1);
  });
}

describe('login-guard', () => {
  describe('normalizeUsername', () => {
    it('trims, applies NFKC and lower-cases', () => {
      expect(normalizeUsername('  Ａｄｍｉｎ\u3000')).toBe('admin');
      expect(normalizeUsername('ÉLODIE')).toBe('élodie');
      expect(normalizeUsername('e\u0301')).toBe('\u00e9');
    });
  });

  describe('createLoginGuard', () => {
    it('rejects thresholds and durations that are not positive integers', () => {
      const store = createLimiterStore({ logger: silentLogger(), metrics: new ServiceMetrics('auth') });
      expect(() => createLoginGuard({ store, usernameThreshold: 0 })).toThrow(/usernameThreshold/);
      expect(() => createLoginGuard({ store, ipThreshold: 2.5 })).toThrow(/ipThreshold/);
      expect(() => createLoginGuard({ store, windowSeconds: -1 })).toThrow(/windowSeconds/);
      expect(() => createLoginGuard({ store, lockoutSeconds: Number.NaN })).toThrow(/lockoutSeconds/);
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

    guardBehaviour(() => ({
      store,
      guard: (opts = {}) => createLoginGuard({ store, ...opts }),
      advance: async (ms) => clock.advance(ms),
    }));

    it('counts down retryAfterSeconds as the lock runs', async () => {
      const g = createLoginGuard({ store });
      await fail(g, 5, 'alice');
      expect(await g.check('alice', IP)).toEqual({ locked: true, scope: 'username', retryAfterSeconds: 900 });
      clock.advance(300_000);
      expect(await g.check('alice', IP)).toEqual({ locked: true, scope: 'username', retryAfterSeconds: 600 });
      clock.advance(599_001);
      expect(await g.check('alice', IP)).toEqual({ locked: true, scope: 'username', retryAfterSeconds: 1 });
      clock.advance(999);
      expect(await g.check('alice', IP)).toEqual({ locked: false });
    });

    it('relocks at the next failure when a lock shorter than the window ends with the window still full', async () => {
      const g = createLoginGuard({ store, usernameThreshold: 3, windowSeconds: 900, lockoutSeconds: 60 });
      await fail(g, 3, 'alice');
      clock.advance(61_000);
      expect(await g.check('alice', IP)).toEqual({ locked: false });
      expect((await g.recordFailure('alice', IP)).lockouts).toEqual(['username']);
    });

    it('answers from memory, with the memory backend shown', async () => {
      expect(store.backend()).toBe('memory');
      expect(store.redisHealthy()).toBe(true);
      expect(await metricValue(store.metrics.backend, { backend: 'memory' })).toBe(1);
      expect(await metricValue(store.metrics.backend, { backend: 'redis' })).toBe(0);
    });
  });

  describe.skipIf(missingServer('Redis', 'TEST_REDIS_URL', inject('redisUrl')))('on Redis', () => {
    const onRedis = useRedisStores();
    const newStore = onRedis.newStore;

    guardBehaviour(() => {
      const store = newStore();
      return { store, guard: (opts = {}) => createLoginGuard({ store, ...opts }), advance: sleep };
    });

    it('shares counts between instances: failures on one lock on another', async () => {
      const one = createLoginGuard({ store: newStore() });
      const otherStore = newStore();
      const other = createLoginGuard({ store: otherStore });
      await fail(one, 3, 'alice');
      await fail(other, 1, 'alice');
      expect(await other.check('alice', IP)).toEqual({ locked: false });
      expect((await other.recordFailure('alice', IP)).lockouts).toEqual(['username']);
      expect(await one.check('alice', IP)).toMatchObject({ locked: true, scope: 'username' });
    });

    it('keys usernames by their SHA-256, never the name, and lets every key expire', async () => {
      const g = createLoginGuard({ store: newStore(), usernameThreshold: 2 });
      await fail(g, 2, 'Alice.Secret');
      const keys = await listKeys(onRedis.redis(), onRedis.prefix());
      const hash = createHash('sha256').update('alice.secret').digest('hex');
      expect(keys).toEqual([`${onRedis.prefix()}bf:ip:${IP}`, `${onRedis.prefix()}bf:u:${hash}`, `${onRedis.prefix()}bf:u:${hash}:lock`]);
      expect(keys.join(' ')).not.toMatch(/alice/i);
      for (const key of keys) {
        const ttl = await onRedis.redis().pttl(key);
        expect(ttl, key).toBeGreaterThan(0);
        expect(ttl, key).toBeLessThanOrEqual(900_000);
      }
    });
  });
});
