/**
 * The driver's metrics: HDR-histogram percentiles within 0.1 % of the exact ones, k6's aggregates
 * per type, per-request breakdowns, and the time buckets the report charts.
 */
import { describe, expect, it } from 'vitest';
import { Registry } from '../driver/metrics.ts';

describe('metrics registry', () => {
  it('keeps trend percentiles within 0.1 % of the exact ones, and exact count, min, max and avg', () => {
    const r = new Registry([{ name: 'd', type: 'trend', unit: 'ms' }]);
    // a skewed distribution: mostly fast, a slow tail
    const values: number[] = [];
    let seed = 7;
    const rnd = (): number => (seed = (seed * 48271) % 2147483647) / 2147483647;
    for (let i = 0; i < 20_000; i++) values.push(i % 50 === 0 ? 800 + rnd() * 4000 : 2 + rnd() * 40);
    for (const v of values) r.add('d', v);
    const sorted = [...values].sort((a, b) => a - b);
    const exact = (p: number): number => sorted[Math.ceil((p / 100) * sorted.length) - 1]!;
    const s = r.summary('d');
    expect(s.count).toBe(20_000);
    for (const [p, got] of [
      [50, s.p50],
      [90, s.p90],
      [95, s.p95],
      [99, s.p99],
    ] as const)
      expect(Math.abs(got! - exact(p)) / exact(p)).toBeLessThan(0.001);
    expect(s.min).toBeCloseTo(sorted[0]!, 3);
    expect(s.max).toBeCloseTo(sorted.at(-1)!, 3);
    expect(s.avg).toBeCloseTo(values.reduce((a, b) => a + b, 0) / values.length, 2);
  });

  it('summarizes rates, counters and gauges like k6, with rates per second of the run', () => {
    let now = 0;
    const r = new Registry(
      [
        { name: 'f', type: 'rate' },
        { name: 'c', type: 'counter' },
        { name: 'g', type: 'gauge' },
        { name: 't', type: 'trend' },
      ],
      { now: () => now },
    );
    r.add('f', true);
    r.add('f', false);
    r.add('f', 0);
    r.add('f', 1);
    r.add('c', 3);
    r.add('c', 2);
    r.add('g', 4);
    r.add('g', 1);
    now = 5000;
    expect(r.summary('f')).toMatchObject({ type: 'rate', count: 4, rate: 0.8, value: 0.5, passes: 2, fails: 2 });
    expect(r.summary('c')).toMatchObject({ type: 'counter', count: 5, rate: 1, value: 5 });
    expect(r.summary('g')).toMatchObject({ type: 'gauge', value: 1, min: 1, max: 4 });
    expect(r.summary('t')).toMatchObject({ type: 'trend', count: 0, p95: null, avg: null });
    expect(() => r.add('nope', 1)).toThrow(/undefined metric/);
    expect(() => r.define({ name: 'f', type: 'trend' })).toThrow(/already a rate/);
  });

  it('breaks a metric down by a tag into sub-metrics', () => {
    const r = new Registry([{ name: 'http_req_duration', type: 'trend', unit: 'ms' }]);
    r.breakdown('http_req_duration', 'name');
    r.add('http_req_duration', 10, { name: 'a', status: '200' });
    r.add('http_req_duration', 30, { name: 'a', status: '500' });
    r.add('http_req_duration', 100, { name: 'b' });
    r.add('http_req_duration', 1);
    const all = r.summaries();
    expect(Object.keys(all)).toEqual(['http_req_duration', 'http_req_duration{name:a}', 'http_req_duration{name:b}']);
    expect(all.http_req_duration!.count).toBe(4);
    expect(all['http_req_duration{name:a}']).toMatchObject({ count: 2, min: 10, max: 30, avg: 20 });
  });

  it('puts every sample in its time bucket, with exact per-bucket percentiles', () => {
    let now = 1000;
    const r = new Registry(
      [
        { name: 't', type: 'trend', unit: 'ms' },
        { name: 'r', type: 'rate' },
        { name: 'c', type: 'counter' },
      ],
      { now: () => now, bucketSeconds: 1 },
    );
    r.start();
    for (let s = 0; s < 5; s++) {
      for (let i = 1; i <= 100; i++) {
        now = 1000 + s * 1000 + i * 9;
        r.add('t', i * (s + 1));
        r.add('r', i <= s);
        if (s !== 2) r.add('c', 1);
      }
    }
    const tl = r.timeline(6);
    expect(tl.t).toEqual([0, 1, 2, 3, 4, 5]);
    expect(tl.metrics.t!.map((b) => b?.count ?? 0)).toEqual([100, 100, 100, 100, 100, 0]);
    expect(tl.metrics.t![1]).toMatchObject({ p50: 101, max: 200 }); // 2, 4, … 200
    expect(tl.metrics.t![4]!.p99).toBeCloseTo(495.05, 5);
    expect(tl.metrics.r!.map((b) => b?.passes ?? null)).toEqual([0, 1, 2, 3, 4, null]);
    expect(tl.metrics.c!.map((b) => b?.value ?? null)).toEqual([100, 100, null, 100, 100, null]);
    expect(tl.metrics.t![5]).toBeNull();
  });
});
