/**
 * The histories kept between a session's turns (history-cache.ts): bounded by their estimated
 * size, the least recently used session goes first, a history larger than the budget is not kept.
 */
import { describe, expect, it } from 'vitest';
import type { HistoryRow } from '../../src/store/sessions.ts';
import { HistoryCache, rowBytes } from '../../src/turn/history-cache.ts';

const row = (seq: number, content = 'x'.repeat(800)): HistoryRow => ({
  id: `m${seq}`,
  seq,
  role: seq % 2 ? 'user' : 'assistant',
  content,
  name: null,
  tool_call_id: null,
  tool_calls: null,
  token_count: null,
  created_at: new Date(0),
  edits: null,
});
const rows = (n: number) => Array.from({ length: n }, (_, i) => row(i + 1));

/** A gauge that remembers its last value. */
const gauge = () => {
  const g = { value: -1, set: (v: number) => void (g.value = v) };
  return g;
};

describe('HistoryCache', () => {
  it('gives back what it kept, and nothing for a session it does not know', () => {
    const cache = new HistoryCache(1 << 20);
    const kept = rows(3);
    cache.keep('s1', kept, kept);
    expect(cache.get('s1')).toBe(kept);
    expect(cache.get('s2')).toEqual([]);
    expect(cache.bytes).toBe(3 * rowBytes(kept[0]!));
  });

  it('counts a longer history of the same session by what was added', () => {
    const bytes = gauge();
    const sessions = gauge();
    const cache = new HistoryCache(1 << 20, { bytes, sessions });
    const first = rows(2);
    cache.keep('s1', first, first);
    const next = [...first, row(3, 'short')];
    cache.keep('s1', next, next.slice(2));
    expect(cache.bytes).toBe(2 * rowBytes(first[0]!) + rowBytes(next[2]!));
    expect([bytes.value, sessions.value]).toEqual([cache.bytes, 1]);
    cache.forget('s1');
    expect([cache.bytes, cache.sessions, bytes.value, sessions.value]).toEqual([0, 0, 0, 0]);
  });

  it('lets the least recently used sessions go when over budget', () => {
    const one = rowBytes(row(1));
    const cache = new HistoryCache(5 * one); // five rows
    for (const id of ['a', 'b']) cache.keep(id, rows(2), rows(2));
    cache.get('a'); // a is used: b is now the oldest
    cache.keep('c', rows(2), rows(2));
    expect(cache.get('b')).toEqual([]);
    expect(cache.get('a')).toHaveLength(2);
    expect(cache.get('c')).toHaveLength(2);
    expect(cache.bytes).toBe(4 * one);
  });

  it('keeps no history larger than its whole budget, and nothing with a budget of 0', () => {
    const cache = new HistoryCache(3 * rowBytes(row(1)));
    cache.keep('small', rows(1), rows(1));
    cache.keep('big', rows(4), rows(4));
    expect(cache.get('big')).toEqual([]);
    expect(cache.get('small')).toHaveLength(1); // not pushed out by one that could never fit
    const off = new HistoryCache(0);
    off.keep('s', rows(1), rows(1));
    expect([off.get('s'), off.bytes]).toEqual([[], 0]);
  });

  it("estimates a row by its text and its tool calls' arguments", () => {
    const plain = rowBytes(row(1, ''));
    const call = { id: 'c', type: 'function', function: { name: 'read_file', arguments: 'y'.repeat(1000) } };
    expect(rowBytes(row(1, 'z'.repeat(500)))).toBe(plain + 500);
    expect(rowBytes({ ...row(1, ''), tool_calls: [call] })).toBeGreaterThan(plain + 1000);
  });

  it('refuses a budget that is not a number of bytes', () => {
    expect(() => new HistoryCache(Number.NaN)).toThrow(/maxBytes/);
    expect(() => new HistoryCache(-1)).toThrow(/maxBytes/);
  });
});
