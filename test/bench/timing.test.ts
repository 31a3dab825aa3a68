import { describe, expect, it } from 'vitest';
import { median, pct } from '../../scripts/bench/timing.ts';

describe('bench statistics', () => {
  it('the median is the middle value, or the mean of the middle two: two rounds count alike', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([0.3, -0.1])).toBeCloseTo(0.1);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(median([7])).toBe(7);
    expect(median([])).toBeNaN();
  });

  it('a percentile is the nearest rank, whatever the order given', () => {
    const xs = [5, 1, 4, 2, 3, 10, 9, 8, 7, 6];
    expect(pct(xs, 50)).toBe(5);
    expect(pct(xs, 99)).toBe(10);
    expect(pct(xs, 0)).toBe(1);
    expect(xs[0]).toBe(5); // not sorted in place
  });
});
