/**
 * The Lua scripts behind the limits: each change is one EVAL, so concurrent requests on any number
 * of instances see a consistent count. Times are Redis's own clock (TIME), so instances with skewed
 * clocks share one window. Event logs are sorted sets scored by milliseconds and trimmed to the
 * newest N entries, so no key grows beyond its threshold or limit.
 *
 * Scripts run by SHA (EVALSHA) and are loaded with EVAL when Redis does not know them (NOSCRIPT,
 * e.g. after a restart). They touch several keys, so they need one Redis (or a primary), not Cluster.
 */
import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';

export interface LuaScript {
  readonly source: string;
  readonly sha: string;
}

function lua(source: string): LuaScript {
  return { source, sha: createHash('sha1').update(source).digest('hex') };
}

/** Redis < 5 refuses writes after TIME unless effects are replicated; later versions always do. */
const NOW = `
if redis.replicate_commands then redis.replicate_commands() end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
`;

/**
 * A failed login. KEYS: the event log, the lock key. ARGV: window ms, threshold, lockout ms, a
 * unique member suffix. Records the failure, and when the window holds `threshold` failures sets the
 * lock (NX: a running lock is never extended). Returns {count, 1 if this call set the lock, lock ms
 * left (or -2 when none)}.
 */
export const RECORD_FAILURE = lua(`${NOW}
local window = tonumber(ARGV[1])
local threshold = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
redis.call('ZADD', KEYS[1], now, now .. ':' .. ARGV[4])
redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -threshold - 1)
local count = redis.call('ZCARD', KEYS[1])
redis.call('PEXPIRE', KEYS[1], window)
local locked = 0
if count >= threshold and redis.call('SET', KEYS[2], '1', 'PX', ARGV[3], 'NX') then locked = 1 end
return {count, locked, redis.call('PTTL', KEYS[2])}
`);

/** KEYS: lock keys. Returns each one's PTTL (-2 when unlocked). */
export const LOCKS_REMAINING = lua(`
local left = {}
for i, key in ipairs(KEYS) do left[i] = redis.call('PTTL', key) end
return left
`);

/**
 * A rate-limited request. KEYS: the event log, the refusal marker. ARGV: window ms, limit, a unique
 * member suffix. Counts the request only when the window holds fewer than `limit` (refused requests
 * are not counted). Returns {1, remaining, 0, 0} or {0, 0, ms until the oldest request leaves the
 * window, 1 if this is the key's first refusal within a window (the marker, PX window, was unset)}.
 */
export const RATE_HIT = lua(`${NOW}
local window = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
if count < limit then
  redis.call('ZADD', KEYS[1], now, now .. ':' .. ARGV[3])
  redis.call('PEXPIRE', KEYS[1], window)
  return {1, limit - count - 1, 0, 0}
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local first = 0
if redis.call('SET', KEYS[2], '1', 'PX', window, 'NX') then first = 1 end
return {0, 0, tonumber(oldest[2]) + window - now, first}
`);

/** Runs a script by SHA, loading it when Redis answers NOSCRIPT. */
export async function runScript(
  redis: Redis,
  script: LuaScript,
  keys: readonly string[],
  args: readonly (string | number)[],
): Promise<unknown> {
  try {
    return await redis.evalsha(script.sha, keys.length, ...keys, ...args);
  } catch (err) {
    if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err;
    return redis.eval(script.source, keys.length, ...keys, ...args);
  }
}

/** A script's array answer as numbers (Redis integers arrive as numbers; guard anyway). */
export function numbers(reply: unknown, length: number): number[] {
  if (!Array.isArray(reply) || reply.length !== length) throw new Error(`unexpected script reply ${JSON.stringify(reply)}`);
  return reply.map((v) => {
    const n = Number(v);
    if (!Number.isFinite(n)) throw new Error(`unexpected script reply ${JSON.stringify(reply)}`);
    return n;
  });
}
