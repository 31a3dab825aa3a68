/** The seqs a connection delivered: one run per stream, so a replay skips exactly those. */
import { describe, expect, it } from 'vitest';
import { DeliveredSeqs } from '../../src/ws/delivered-seqs.ts';

describe('DeliveredSeqs', () => {
  it('covers each stream from its first to its last seq, and nothing between streams', () => {
    const d = new DeliveredSeqs();
    d.startRun();
    for (const seq of [10, 11, 13]) d.add(seq); // a gap inside one stream is still that stream's
    d.startRun();
    for (const seq of [20, 21]) d.add(seq);
    expect([9, 10, 12, 13, 14, 19, 20, 21, 22].filter((s) => d.has(s))).toEqual([10, 12, 13, 20, 21]);
  });

  it('keeps only the most recent runs', () => {
    const d = new DeliveredSeqs(2);
    for (const seq of [1, 5, 9]) {
      d.startRun();
      d.add(seq);
    }
    expect([1, 5, 9].map((s) => d.has(s))).toEqual([false, true, true]);
  });
});
