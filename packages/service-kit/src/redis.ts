/**
 * Redis through ioredis, for the services that are configured with one. Commands fail fast while
 * Redis is down (no unbounded offline queue), and reconnects are attempted in the background.
 * With tracing on, a command inside a sampled request or turn is a span (redis-spans.ts).
 */
import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { traceRedisCommands } from './redis-spans.ts';
import { tracingEnabled } from './tracing.ts';

export function openRedis(url: string, logger: Logger): Redis {
  const redis = new Redis(url, {
    lazyConnect: false,
    maxRetriesPerRequest: 1,
    enableOfflineQueue: false,
    connectTimeout: 2000,
    retryStrategy: (times) => Math.min(times * 200, 2000),
  });
  if (tracingEnabled()) traceRedisCommands(redis);
  let down = false;
  redis.on('error', (err) => {
    if (!down) logger.warn({ err: { message: err.message } }, 'Redis unreachable');
    down = true;
  });
  redis.on('ready', () => {
    if (down) logger.info('Redis reachable again');
    down = false;
  });
  return redis;
}

/**
 * Readiness: PING. Commands are refused while the client (re)connects (no offline queue), so a
 * probe first waits, bounded, for the connection attempt to end (ready, or an error).
 */
export async function pingRedis(redis: Redis, waitMs = 1500): Promise<void> {
  if (redis.status === 'connecting' || redis.status === 'connect' || redis.status === 'reconnecting' || redis.status === 'wait') {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, waitMs);
      function done(): void {
        clearTimeout(timer);
        redis.off('ready', done);
        redis.off('error', done);
        resolve();
      }
      redis.once('ready', done);
      redis.once('error', done);
    });
  }
  const answer = await redis.ping();
  if (answer !== 'PONG') throw new Error(`unexpected PING answer ${answer}`);
}
