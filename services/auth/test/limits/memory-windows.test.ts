import { describe, expect, it } from 'vitest';
import { MemoryWindows } from '../../src/limits/memory-windows.ts';

describe('memory-windows', () => {
  describe('MemoryWindows', () => {
    it('rejects a key cap that is not a positive integer', () => {
      expect(() => new MemoryWindows(0)).toThrow(/maxKeys/);
    });

    it('counts events in a sliding window and keeps at most maxEntries of the newest', () => {
      const m = new MemoryWindows(10);
      expect(m.add('k', 1000, 500, 3)).toEqual({ added: true, count: 1, oldest: 1000 });
      m.add('k', 1100, 500, 3);
      m.add('k', 1200, 500, 3);
      expect(m.add('k', 1300, 500, 3)).toEqual({ added: true, count: 3, oldest: 1100 });
      // 1100 and 1200 are more than 500 ms old at 1700: only 1300 and the new one remain.
      expect(m.add('k', 1700, 500, 3)).toEqual({ added: true, count: 2, oldest: 1300 });
    });

    it('adds only below `onlyBelow`', () => {
      const m = new MemoryWindows(10);
      m.add('k', 0, 1000, 2, 2);
      m.add('k', 1, 1000, 2, 2);
      expect(m.add('k', 2, 1000, 2, 2)).toEqual({ added: false, count: 2, oldest: 0 });
    });

    it('sets a lock only when none runs, and extends one to hold a mirrored lock', () => {
      const m = new MemoryWindows(10);
      expect(m.lock('k', 0, 1000)).toBe(true);
      expect(m.lock('k', 500, 1500)).toBe(false);
      expect(m.lockRemaining('k', 500)).toBe(500);
      m.holdLock('k', 500, 2000);
      expect(m.lockRemaining('k', 500)).toBe(1500);
      m.holdLock('k', 500, 600);
      expect(m.lockRemaining('k', 500)).toBe(1500);
      expect(m.lockRemaining('k', 2000)).toBe(0);
      expect(m.lock('k', 2000, 2500)).toBe(true);
    });

    it('clears events but not the lock', () => {
      const m = new MemoryWindows(10);
      m.add('k', 0, 1000, 5);
      m.lock('k', 0, 1000);
      m.clearEvents('k');
      expect(m.add('k', 1, 1000, 5).count).toBe(1);
      expect(m.lockRemaining('k', 1)).toBe(999);
    });

    it('evicts the least recently used key beyond maxKeys', () => {
      const m = new MemoryWindows(3);
      for (const k of ['a', 'b', 'c']) m.add(k, 0, 10_000, 5);
      m.add('a', 1, 10_000, 5); // a is now the most recently used
      m.add('d', 2, 10_000, 5); // evicts b
      expect(m.size).toBe(3);
      expect(m.add('b', 3, 10_000, 5).count).toBe(1);
      expect(m.add('a', 4, 10_000, 5).count).toBe(3);
    });

    it('drops keys whose window and lock have passed', () => {
      const m = new MemoryWindows(10);
      m.add('k', 0, 1000, 5);
      m.lock('k', 0, 3000);
      expect(m.lockRemaining('k', 2999)).toBe(1);
      expect(m.lockRemaining('k', 3000)).toBe(0);
      expect(m.size).toBe(0);
    });
  });
});
