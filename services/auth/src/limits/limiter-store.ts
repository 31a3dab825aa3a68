/**
 * Where the lockout and rate-limit counters live: Redis, shared by every instance, or, while Redis
 * is unreachable (or not configured), this instance's memory with the same algorithm. The login
 * guard and the rate limiters share one store, so an outage is detected, logged and counted once.
 *
 * - Every Redis call is bounded by `commandTimeoutMs` (the kit's client already refuses commands at
 *   once while disconnected; the timeout covers a Redis that accepts but does not answer), so a
 *   sick Redis costs a login at most that much, once: the first failure switches to memory, and
 *   later calls no longer wait for Redis.
 * - The switch is logged once per outage (warn) and once on recovery (info), counted in
 *   `auth_limiter_redis_errors_total`, and shown by `auth_limiter_backend{backend}`.
 * - While in memory, Redis is probed (PING) every `probeIntervalMs` and as soon as the client
 *   reconnects; the first answer switches back. Counts made in memory are not copied to Redis (nor
 *   Redis counts to memory): each side keeps its own windows, which expire on their own. The memory
 *   state is kept across outages, so a second outage within a window still sees the first one's
 *   counts; it is bounded by `maxMemoryKeys` (least recently used evicted).
 * - A Redis that answers with an error (a bug rather than an outage) is handled the same way.
 */
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { ServiceMetrics } from '@codelab/service-kit';
import { limitsMetrics, type LimiterBackend, type LimitsMetrics } from './limits-metrics.ts';
import { MemoryWindows } from './memory-windows.ts';

export interface LimiterStoreOptions {
  /** The service's client (the kit's openRedis). Null or absent: per-instance memory only. */
  redis?: Redis | null | undefined;
  logger: Logger;
  metrics: ServiceMetrics;
  /** Prefix of every Redis key (and memory key). Default `auth:`. */
  keyPrefix?: string;
  /** Bound on each Redis call, ms. Default 250. */
  commandTimeoutMs?: number;
  /** Most keys held in memory, least recently used evicted first. Default 100 000. */
  maxMemoryKeys?: number;
  /** Interval of the recovery probe while Redis is down, ms. Default 1000. */
  probeIntervalMs?: number;
  /** Clock of the memory path, ms since the epoch (tests). Redis uses its own clock. */
  now?: () => number;
}

export interface LimiterStore {
  readonly keyPrefix: string;
  readonly memory: MemoryWindows;
  readonly metrics: LimitsMetrics;
  now(): number;
  /**
   * `onRedis` when Redis is in use (bounded by the command timeout), else `onMemory`; a failure or
   * timeout of `onRedis` switches the store to memory and answers from `onMemory`.
   */
  run<T>(onRedis: (redis: Redis) => Promise<T>, onMemory: () => T): Promise<T>;
  /** The backend answering now. */
  backend(): LimiterBackend;
  /** False only while a configured Redis is unreachable (for a readiness check, when wanted). */
  redisHealthy(): boolean;
  /** Stops the recovery probe and detaches from the client (which the caller closes). */
  close(): void;
}

const LIMITER_STORE_DEFAULTS = {
  keyPrefix: 'auth:',
  commandTimeoutMs: 250,
  maxMemoryKeys: 100_000,
  probeIntervalMs: 1000,
} as const;

const CONNECTING = new Set(['wait', 'connecting', 'connect']);

export function createLimiterStore(opts: LimiterStoreOptions): LimiterStore {
  const { logger } = opts;
  const redis = opts.redis ?? null;
  const keyPrefix = opts.keyPrefix ?? LIMITER_STORE_DEFAULTS.keyPrefix;
  const commandTimeoutMs = positive('commandTimeoutMs', opts.commandTimeoutMs ?? LIMITER_STORE_DEFAULTS.commandTimeoutMs);
  const probeIntervalMs = positive('probeIntervalMs', opts.probeIntervalMs ?? LIMITER_STORE_DEFAULTS.probeIntervalMs);
  const now = opts.now ?? Date.now;
  const memory = new MemoryWindows(opts.maxMemoryKeys ?? LIMITER_STORE_DEFAULTS.maxMemoryKeys);
  const metrics = limitsMetrics(opts.metrics);

  let usingRedis = redis !== null;
  let probeTimer: NodeJS.Timeout | undefined;
  let probing = false;
  let closed = false;

  const showBackend = (): void => {
    metrics.backend.set({ backend: 'redis' }, usingRedis ? 1 : 0);
    metrics.backend.set({ backend: 'memory' }, usingRedis ? 0 : 1);
  };
  showBackend();

  function switchToMemory(err: unknown): void {
    metrics.redisErrors.inc();
    if (!usingRedis || closed) return;
    usingRedis = false;
    showBackend();
    logger.warn(
      { err: { message: err instanceof Error ? err.message : String(err) } },
      'limits: Redis unreachable, lockouts and rate limits now counted per instance in memory',
    );
    probeTimer = setInterval(() => void probe(), probeIntervalMs);
    probeTimer.unref();
  }

  function switchToRedis(): void {
    if (usingRedis || closed) return;
    usingRedis = true;
    clearInterval(probeTimer);
    probeTimer = undefined;
    showBackend();
    logger.info('limits: Redis reachable again, lockouts and rate limits counted in Redis');
  }

  async function probe(): Promise<void> {
    if (!redis || usingRedis || probing || closed || redis.status !== 'ready') return;
    probing = true;
    try {
      await withTimeout(redis.ping(), commandTimeoutMs);
      switchToRedis();
    } catch {
      metrics.redisErrors.inc();
    } finally {
      probing = false;
    }
  }
  const onReady = (): void => void probe();
  redis?.on('ready', onReady);

  /** Waits (bounded by the caller's timeout) for the first connection; refuses while reconnecting. */
  async function ready(client: Redis): Promise<void> {
    if (client.status === 'ready') return;
    if (!CONNECTING.has(client.status)) throw new Error(`Redis connection is ${client.status}`);
    await new Promise<void>((resolve, reject) => {
      const done = (err?: Error): void => {
        client.off('ready', done);
        client.off('error', done);
        if (err) reject(err);
        else resolve();
      };
      client.once('ready', done);
      client.once('error', done);
    });
  }

  return {
    keyPrefix,
    memory,
    metrics,
    now,
    async run(onRedis, onMemory) {
      if (!redis || !usingRedis) return onMemory();
      try {
        return await withTimeout(
          ready(redis).then(() => onRedis(redis)),
          commandTimeoutMs,
        );
      } catch (err) {
        switchToMemory(err);
        return onMemory();
      }
    },
    backend: () => (usingRedis ? 'redis' : 'memory'),
    redisHealthy: () => redis === null || usingRedis,
    close() {
      closed = true;
      clearInterval(probeTimer);
      redis?.off('ready', onReady);
    },
  };
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`Redis did not answer within ${ms} ms`)), ms);
  });
  // A late answer (or failure) of the abandoned call must not surface as an unhandled rejection.
  promise.catch(() => undefined);
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function positive(name: string, value: number): number {
  if (!Number.isFinite(value) || value <= 0) throw new RangeError(`${name} must be a positive number`);
  return value;
}
