/**
 * Brute-force defence of the password grant (issue 3 item 5; upstream §3.7 and its weaknesses in
 * §6 item 4): failed logins are counted per normalized username and per client IP in a sliding
 * window; reaching a threshold locks that username, or that IP, for `lockoutSeconds` from the
 * failure that reached it.
 *
 * - Usernames are normalized (trim, NFKC, lower-case) so `Admin` and `admin` share one counter, and
 *   keys carry only their SHA-256, never the name. A username that does not exist is counted like
 *   one that does: a lock, and its answer, never reveal whether an account exists.
 * - The IP scope counts the address the trusted-proxy resolver gives (client-ip.ts); IPv6 counts
 *   per /64 (`clientKey`).
 * - A success clears the username's failures, not its running lock (none can be running: the
 *   route checks first) and not the IP's failures: an attacker who knows one account's password
 *   must not be able to wipe the IP counter that limits his guesses at all the others. A legitimate
 *   user behind a shared address therefore shares that address's budget (10 failures per window by
 *   default), which is why the IP threshold is twice the username one.
 * - A failure while locked does not extend the lock (the route refuses locked attempts before
 *   checking the password, so it records none). When a lock ends while the window still holds
 *   `threshold` failures (a lockout shorter than the window), the next failure locks again at once.
 * - While Redis is unreachable the same rules run in this instance's memory (limiter-store.ts).
 *   Every change made in Redis is mirrored in memory (its counts and the locks Redis reports), so
 *   an outage does not unlock whom this instance saw locked, nor reset the counts it saw.
 */
import { createHash, randomBytes } from 'node:crypto';
import { clientKey } from './client-ip.ts';
import type { LimiterStore } from './limiter-store.ts';
import type { LockScope } from './limits-metrics.ts';
import { LOCKS_REMAINING, numbers, RECORD_FAILURE, runScript } from './scripts.ts';

export interface LoginGuardOptions {
  store: LimiterStore;
  /** Failures per username within the window that lock it. Default 5. */
  usernameThreshold?: number;
  /** Failures per client IP (IPv6: per /64) within the window that lock it. Default 10. */
  ipThreshold?: number;
  /** Length of the sliding window, seconds. Default 900. */
  windowSeconds?: number;
  /** Length of a lock, from the failure that reached the threshold, seconds. Default 900. */
  lockoutSeconds?: number;
}

type LockStatus = { locked: false } | { locked: true; scope: LockScope; retryAfterSeconds: number };

interface FailureOutcome {
  /** The scopes whose lock began with this failure: audit a `lockout` event for each. */
  lockouts: LockScope[];
  /** The state after this failure. */
  status: LockStatus;
}

export interface LoginGuard {
  /** Whether a login for this username from this IP is refused now. */
  check(username: string, ip: string): Promise<LockStatus>;
  /** Counts a failed login (bad password, unknown user, inactive user, …) for both scopes. */
  recordFailure(username: string, ip: string): Promise<FailureOutcome>;
  /** Clears the username's failures. `ip` is accepted for symmetry and deliberately unused. */
  recordSuccess(username: string, ip: string): Promise<void>;
}

const LOGIN_GUARD_DEFAULTS = {
  usernameThreshold: 5,
  ipThreshold: 10,
  windowSeconds: 900,
  lockoutSeconds: 900,
} as const;

/** The form of a username that counters use: trimmed, NFKC, lower-case. */
export function normalizeUsername(username: string): string {
  return username.trim().normalize('NFKC').toLowerCase().trim();
}

type ScopeResult = { lockedNow: boolean; remaining: number };
type FailureAnswer = { fromRedis: true; replies: number[][] } | { fromRedis: false; results: ScopeResult[] };

interface Scope {
  scope: LockScope;
  events: string;
  lock: string;
  threshold: number;
}

export function createLoginGuard(opts: LoginGuardOptions): LoginGuard {
  const { store } = opts;
  const { memory } = store;
  const usernameThreshold = count('usernameThreshold', opts.usernameThreshold ?? LOGIN_GUARD_DEFAULTS.usernameThreshold);
  const ipThreshold = count('ipThreshold', opts.ipThreshold ?? LOGIN_GUARD_DEFAULTS.ipThreshold);
  const windowMs = count('windowSeconds', opts.windowSeconds ?? LOGIN_GUARD_DEFAULTS.windowSeconds) * 1000;
  const lockoutMs = count('lockoutSeconds', opts.lockoutSeconds ?? LOGIN_GUARD_DEFAULTS.lockoutSeconds) * 1000;

  const usernameEvents = (username: string): string =>
    `${store.keyPrefix}bf:u:${createHash('sha256').update(normalizeUsername(username)).digest('hex')}`;
  const scopes = (username: string, ip: string): [Scope, Scope] => {
    const u = usernameEvents(username);
    const i = `${store.keyPrefix}bf:ip:${clientKey(ip)}`;
    return [
      { scope: 'username', events: u, lock: `${u}:lock`, threshold: usernameThreshold },
      { scope: 'ip', events: i, lock: `${i}:lock`, threshold: ipThreshold },
    ];
  };

  /** The longer of the running locks (a client must wait for both); username on a tie. */
  const status = (remaining: readonly [number, number]): LockStatus => {
    const [u, i] = remaining;
    if (u <= 0 && i <= 0) return { locked: false };
    const [scope, ms]: [LockScope, number] = u >= i ? ['username', u] : ['ip', i];
    return { locked: true, scope, retryAfterSeconds: Math.max(1, Math.ceil(ms / 1000)) };
  };

  /** Mirrors locks Redis reports into memory, so an outage keeps them. */
  const mirrorLocks = (pair: readonly Scope[], remaining: readonly number[]): void => {
    const now = store.now();
    pair.forEach((s, i) => {
      if (remaining[i]! > 0) memory.holdLock(s.lock, now, now + remaining[i]!);
    });
  };

  return {
    async check(username, ip) {
      const pair = scopes(username, ip);
      const remaining = await store.run(
        async (redis) => {
          const left = numbers(
            await runScript(
              redis,
              LOCKS_REMAINING,
              pair.map((s) => s.lock),
              [],
            ),
            2,
          );
          mirrorLocks(pair, left);
          return left;
        },
        () => pair.map((s) => memory.lockRemaining(s.lock, store.now())),
      );
      return status([remaining[0]!, remaining[1]!]);
    },

    async recordFailure(username, ip) {
      const pair = scopes(username, ip);
      const memoryFailure = (s: Scope): ScopeResult => {
        const now = store.now();
        const { count: n } = memory.add(s.events, now, windowMs, s.threshold);
        const lockedNow = n >= s.threshold && memory.lock(s.lock, now, now + lockoutMs);
        return { lockedNow, remaining: memory.lockRemaining(s.lock, now) };
      };
      const answer = await store.run<FailureAnswer>(
        async (redis) => {
          const member = randomBytes(8).toString('hex');
          const replies = await Promise.all(
            pair.map(async (s) =>
              numbers(await runScript(redis, RECORD_FAILURE, [s.events, s.lock], [windowMs, s.threshold, lockoutMs, member]), 3),
            ),
          );
          return { fromRedis: true, replies };
        },
        () => ({ fromRedis: false, results: pair.map(memoryFailure) }),
      );
      let results: ScopeResult[] = answer.fromRedis ? [] : answer.results;
      if (answer.fromRedis) {
        // Shadowed in memory (after the call, so a timed-out call answered from memory is not
        // counted twice): the counts, without memory locks of their own, and Redis's locks.
        const now = store.now();
        for (const s of pair) memory.add(s.events, now, windowMs, s.threshold);
        mirrorLocks(
          pair,
          answer.replies.map((r) => r[2]!),
        );
        results = answer.replies.map(([, lockedNow, remaining]) => ({ lockedNow: lockedNow === 1, remaining: Math.max(0, remaining!) }));
      }
      const lockouts = pair.filter((_, i) => results[i]!.lockedNow).map((s) => s.scope);
      for (const scope of lockouts) store.metrics.lockouts.inc({ scope });
      return { lockouts, status: status([results[0]!.remaining, results[1]!.remaining]) };
    },

    async recordSuccess(username) {
      const events = usernameEvents(username);
      memory.clearEvents(events);
      await store.run(
        async (redis) => void (await redis.del(events)),
        () => undefined,
      );
    },
  };
}

function count(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 1) throw new RangeError(`${name} must be a positive integer`);
  return value;
}
