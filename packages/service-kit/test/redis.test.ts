import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { describe, expect, inject, it } from 'vitest';
import { openRedis, pingRedis } from '../src/redis.ts';
import { capturingLogger, freePort, missingServer, silentLogger } from '@codelab/service-kit/testing';

describe('redis', () => {
  describe.skipIf(missingServer('Redis', 'TEST_REDIS_URL', inject('redisUrl')))('against the test server', () => {
    describe('openRedis', () => {
      it('connects and runs commands', async () => {
        const redis = openRedis(inject('redisUrl')!, silentLogger());
        if (redis.status !== 'ready') await once(redis, 'ready');
        const key = `kit-test:${randomBytes(6).toString('hex')}`;
        try {
          expect(await redis.set(key, 'v1', 'EX', 30)).toBe('OK');
          expect(await redis.get(key)).toBe('v1');
          expect(await redis.del(key)).toBe(1);
        } finally {
          redis.disconnect();
        }
      });
    });

    describe('pingRedis', () => {
      it('resolves when Redis answers PONG', async () => {
        const redis = openRedis(inject('redisUrl')!, silentLogger());
        if (redis.status !== 'ready') await once(redis, 'ready');
        try {
          await expect(pingRedis(redis)).resolves.toBeUndefined();
        } finally {
          redis.disconnect();
        }
      });

      // Regression: without an offline queue, a probe right after start found a healthy Redis "down".
      it('resolves right after openRedis, while the client is still connecting', async () => {
        const redis = openRedis(inject('redisUrl')!, silentLogger());
        try {
          await expect(pingRedis(redis)).resolves.toBeUndefined();
        } finally {
          redis.disconnect();
        }
      });
    });
  });

  describe('pingRedis', () => {
    it('rejects at once, without crashing the process, when nothing listens', async () => {
      const port = await freePort();
      const { logger, lines } = capturingLogger();
      const redis = openRedis(`redis://127.0.0.1:${port}`, logger);
      try {
        const started = performance.now();
        await expect(pingRedis(redis)).rejects.toThrow(/enableOfflineQueue|Connection is closed|ECONNREFUSED/);
        expect(performance.now() - started).toBeLessThan(1000);
        // Let it fail to connect a few times (retries every 200 ms, 400 ms, …): the error events are
        // handled, and logged once.
        await new Promise((r) => setTimeout(r, 800));
        expect(redis.status).not.toBe('ready');
        const warnings = lines().filter((l) => l.msg === 'Redis unreachable');
        expect(warnings).toHaveLength(1);
        expect((warnings[0]!.err as { message: string }).message).toContain('ECONNREFUSED');
        await expect(pingRedis(redis)).rejects.toThrow();
      } finally {
        redis.disconnect();
      }
    });
  });
});
