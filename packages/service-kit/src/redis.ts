/**
 * Redis through ioredis, for the services that are configured with one. Commands fail fast while
 * Redis is down (no unbounded offline queue), and reconnects are attempted in the background.
 */
import { Redis } from 'ioredis';
import type { Logger } from 'pino';

export function openRedis(url: string, logger: Logger): Redis {
  const redis = new Redis(url, {
    lazyConnect: false,
    maxRetriesPerRequest: 1,
    enableOfflineQueue: false,
    connectTimeout: 2000,
    retryStrategy: (times) => Math.min(times * 200, 2000),
  });
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

export async function pingRedis(redis: Redis): Promise<void> {
  const answer = await redis.ping();
  if (answer !== 'PONG') throw new Error(`unexpected PING answer ${answer}`);
}
