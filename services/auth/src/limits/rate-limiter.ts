/**
 * A request rate limit: at most `limit` requests per key (a client IP, through `clientKey`) in any
 * sliding window of `windowSeconds`, counted in Redis by one atomic script (scripts.ts RATE_HIT) or,
 * while Redis is unreachable, in this instance's memory by the same rule (limiter-store.ts).
 *
 * A sliding-window log rather than upstream's fixed window (§3.8), which let a client send twice
 * the limit across a window boundary. Refused requests are not counted, so a client that keeps
 * hammering is let through again as soon as its oldest counted request leaves the window (that is
 * `retryAfterSeconds`), and no key ever holds more than `limit` entries. Unlike the login guard,
 * counts made in Redis are not shadowed in memory: an outage starts fresh windows, at worst one
 * extra window's worth of requests per instance.
 */
import { randomBytes } from 'node:crypto';
import type { LimiterStore } from './limiter-store.ts';
import { numbers, RATE_HIT, runScript } from './scripts.ts';

export interface RateLimiterOptions {
  store: LimiterStore;
  /** Bounded metric label and key namespace, chosen in code: `token`, `revoke`, … */
  endpoint: string;
  /** Requests allowed per window and key (1 … 100 000). */
  limit: number;
  /** Length of the sliding window, seconds. */
  windowSeconds: number;
}

interface RateLimitResult {
  allowed: boolean;
  /** The configured limit (for `X-RateLimit-Limit`). */
  limit: number;
  /** Requests left in the window after this one (for `X-RateLimit-Remaining`). */
  remaining: number;
  /** 0 when allowed; otherwise the seconds until a request is allowed again (`Retry-After`). */
  retryAfterSeconds: number;
  /**
   * True for the key's first refusal within a window, false otherwise: write the `rate_limited`
   * audit row for this one only, so a flood cannot turn into as many audit rows (the metric counts
   * every refusal).
   */
  firstRefusal: boolean;
}

export interface RateLimiter {
  /** Counts a request for `key` and says whether it may proceed. */
  hit(key: string): Promise<RateLimitResult>;
}

const MAX_LIMIT = 100_000;

export function createRateLimiter(opts: RateLimiterOptions): RateLimiter {
  const { store, endpoint, limit, windowSeconds } = opts;
  if (!/^[a-z][a-z0-9_]{0,31}$/.test(endpoint)) throw new TypeError(`endpoint '${endpoint}' must be a short snake_case name`);
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIMIT) throw new RangeError(`limit must be an integer from 1 to ${MAX_LIMIT}`);
  if (!Number.isInteger(windowSeconds) || windowSeconds < 1) throw new RangeError('windowSeconds must be a positive integer');
  const windowMs = windowSeconds * 1000;
  store.metrics.rateLimited.inc({ endpoint }, 0);

  return {
    async hit(key) {
      const redisKey = `${store.keyPrefix}rl:${endpoint}:${key}`;
      const refusedKey = `${redisKey}:refused`;
      const [allowed, remaining, waitMs, first] = await store.run(
        async (redis) =>
          numbers(await runScript(redis, RATE_HIT, [redisKey, refusedKey], [windowMs, limit, randomBytes(8).toString('hex')]), 4),
        () => {
          const now = store.now();
          const { added, count, oldest } = store.memory.add(redisKey, now, windowMs, limit, limit);
          if (added) return [1, limit - count, 0, 0];
          return [0, 0, (oldest ?? now) + windowMs - now, store.memory.lock(refusedKey, now, now + windowMs) ? 1 : 0];
        },
      );
      if (allowed !== 1) {
        store.metrics.rateLimited.inc({ endpoint });
        return {
          allowed: false,
          limit,
          remaining: 0,
          retryAfterSeconds: Math.max(1, Math.ceil(waitMs! / 1000)),
          firstRefusal: first === 1,
        };
      }
      return { allowed: true, limit, remaining: remaining!, retryAfterSeconds: 0, firstRefusal: false };
    },
  };
}
