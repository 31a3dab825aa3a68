/**
 * Test doubles for the limits suites: a manual clock, unique key prefixes (suites share one Redis),
 * metric readings, a redis-server of our own to stop and start, and key clean-up.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import type { Redis } from 'ioredis';
import type { Counter, Gauge } from 'prom-client';
import { afterAll, afterEach, beforeAll, beforeEach, expect, inject } from 'vitest';
import { ServiceMetrics, openRedis } from '@codelab/service-kit';
import { silentLogger } from '@codelab/service-kit/testing';
import { createLimiterStore, type LimiterStore } from '../../src/limits/index.ts';

export class ManualClock {
  ms: number;

  constructor(ms = Date.UTC(2025, 0, 1)) {
    this.ms = ms;
  }
  readonly now = (): number => this.ms;
  advance(ms: number): void {
    this.ms += ms;
  }
}

/** A key prefix no other test uses. */
function uniquePrefix(): string {
  return `test:limits:${randomBytes(6).toString('hex')}:`;
}

export async function metricValue(metric: Counter<string> | Gauge<string>, labels: Record<string, string> = {}): Promise<number> {
  const { values } = await metric.get();
  const found = values.find((v) => Object.entries(labels).every(([k, val]) => v.labels[k] === val));
  return found?.value ?? 0;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls `check` every 25 ms until it holds, or throws after `timeoutMs`. */
export async function waitFor(what: string, check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(25);
  }
}

/** Deletes every key under `prefix` (SCAN, never KEYS on a shared server). */
async function deleteKeys(redis: Redis, prefix: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500);
    cursor = next;
    if (keys.length > 0) await redis.del(...keys);
  } while (cursor !== '0');
}

/** Keys under `prefix`. */
export async function listKeys(redis: Redis, prefix: string): Promise<string[]> {
  const found: string[] = [];
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500);
    cursor = next;
    found.push(...keys);
  } while (cursor !== '0');
  return found.sort();
}

/** A throw-away redis-server on loopback (no persistence), resolved once it accepts connections. */
export async function startRedisServer(port: number): Promise<ChildProcess> {
  const child = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'no'],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let output = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => fail(new Error(`redis-server did not start on port ${port}: ${output}`)), 10_000);
    function fail(err: Error): void {
      clearTimeout(timer);
      child.kill('SIGKILL');
      reject(err);
    }
    child.stdout!.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      if (/Ready to accept connections/.test(output)) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.stderr!.on('data', (chunk: Buffer) => void (output += chunk.toString()));
    child.once('error', fail);
    child.once('exit', (code) => fail(new Error(`redis-server exited with ${code}: ${output}`)));
  });
  child.removeAllListeners('exit');
  return child;
}

/** Kills a child and resolves once it has exited. */
export async function killProcess(child: ChildProcess, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill(signal);
  await exited;
}

/**
 * For a describe block on the run's Redis: a shared client, a fresh key prefix per test, and
 * `newStore()`; after each test every store must have answered from Redis (a silent fall-back to
 * memory would pass the rules unseen), and the test's keys are deleted.
 */
export function useRedisStores(): { newStore(): LimiterStore; redis(): Redis; prefix(): string } {
  let redis: Redis;
  let prefix: string;
  let stores: LimiterStore[] = [];
  beforeAll(async () => {
    redis = openRedis(inject('redisUrl')!, silentLogger());
    if (redis.status !== 'ready') await once(redis, 'ready');
  });
  afterAll(() => redis.disconnect());
  beforeEach(() => {
    prefix = uniquePrefix();
    stores = [];
  });
  afterEach(async () => {
    for (const s of stores) {
      expect(s.backend()).toBe('redis');
      expect(await metricValue(s.metrics.redisErrors)).toBe(0);
      s.close();
    }
    await deleteKeys(redis, prefix);
  });
  return {
    newStore: () => {
      const s = createLimiterStore({ redis, logger: silentLogger(), metrics: new ServiceMetrics('auth'), keyPrefix: prefix });
      stores.push(s);
      return s;
    },
    redis: () => redis,
    prefix: () => prefix,
  };
}
