/**
 * The in-memory twin of the Redis scripts (scripts.ts): per key, a sliding-window log of event
 * times and an optional lock deadline, with the same rules, for one instance only.
 *
 * Memory is bounded twice: a key keeps at most `maxEntries` times (the newest; a threshold or limit
 * never needs more), and the map keeps at most `maxKeys` keys, least recently used evicted first (a
 * Map iterates in insertion order; every touch re-inserts). Eviction forgets a client's count, so
 * the cap must be far above the number of clients active in a window; it protects memory from an
 * attacker cycling addresses or usernames, who gains nothing from evicting others' counters that he
 * could not gain by using fresh names anyway.
 */
export class MemoryWindows {
  private readonly entries = new Map<string, { times: number[]; lockedUntil: number; expiresAt: number }>();

  readonly maxKeys: number;

  constructor(maxKeys: number) {
    this.maxKeys = maxKeys;
    if (!Number.isInteger(maxKeys) || maxKeys < 1) throw new RangeError('maxKeys must be a positive integer');
  }

  get size(): number {
    return this.entries.size;
  }

  /**
   * Adds an event at `now` unless the window already holds `onlyBelow` events; returns the count in
   * the window (after adding) and the oldest time in it.
   */
  add(
    key: string,
    now: number,
    windowMs: number,
    maxEntries: number,
    onlyBelow = Infinity,
  ): { added: boolean; count: number; oldest: number | undefined } {
    const entry = this.touch(key, now) ?? { times: [], lockedUntil: 0, expiresAt: 0 };
    const times = entry.times.filter((t) => t > now - windowMs);
    const added = times.length < onlyBelow;
    if (added) {
      times.push(now);
      if (times.length > maxEntries) times.splice(0, times.length - maxEntries);
      entry.expiresAt = Math.max(entry.expiresAt, now + windowMs);
    }
    entry.times = times;
    this.store(key, entry);
    return { added, count: times.length, oldest: times[0] };
  }

  /** Sets a lock until `until` unless one is already running; true when this call set it. */
  lock(key: string, now: number, until: number): boolean {
    const entry = this.touch(key, now) ?? { times: [], lockedUntil: 0, expiresAt: 0 };
    const set = entry.lockedUntil <= now;
    if (set) entry.lockedUntil = until;
    entry.expiresAt = Math.max(entry.expiresAt, entry.lockedUntil);
    this.store(key, entry);
    return set;
  }

  /** Extends a lock to at least `until` (mirroring one seen in Redis). */
  holdLock(key: string, now: number, until: number): void {
    const entry = this.touch(key, now) ?? { times: [], lockedUntil: 0, expiresAt: 0 };
    entry.lockedUntil = Math.max(entry.lockedUntil, until);
    entry.expiresAt = Math.max(entry.expiresAt, until);
    this.store(key, entry);
  }

  /** Milliseconds the key's lock still runs; 0 when unlocked. */
  lockRemaining(key: string, now: number): number {
    const entry = this.touch(key, now);
    return entry ? Math.max(0, entry.lockedUntil - now) : 0;
  }

  /** Forgets the key's events (not its lock). */
  clearEvents(key: string): void {
    const entry = this.entries.get(key);
    if (entry) entry.times = [];
  }

  private touch(key: string, now: number) {
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    this.entries.delete(key);
    if (entry.expiresAt <= now) return undefined;
    this.entries.set(key, entry);
    return entry;
  }

  private store(key: string, entry: { times: number[]; lockedUntil: number; expiresAt: number }): void {
    this.entries.delete(key);
    this.entries.set(key, entry);
    while (this.entries.size > this.maxKeys) {
      const oldest = this.entries.keys().next().value as string;
      this.entries.delete(oldest);
    }
  }
}
