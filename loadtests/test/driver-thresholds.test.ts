/**
 * The driver's k6 thresholds: every expression form of thresholds.json parses, evaluates against
 * the metrics like k6 (percentiles, averages, rates, counts, every operator), refuses what k6
 * refuses, and an abortOnFail threshold stops a run only after its delayAbortEval.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { Registry, type MetricDef } from '../driver/metrics.ts';
import { BUILTIN_METRICS } from '../driver/run.ts';
import { SCENARIO_IMPLS } from '../driver/scenarios/index.ts';
import {
  abortingThreshold,
  bindThresholds,
  compare,
  evaluate,
  evaluateAll,
  parseExpression,
  parseThresholds,
  type ThresholdSpec,
} from '../driver/thresholds.ts';
import { DEFAULT_THRESHOLDS } from '../driver/options.ts';
import { SCENARIOS } from '../lib/profiles.ts';

const DEFS: MetricDef[] = [
  { name: 'lat', type: 'trend', unit: 'ms' },
  { name: 'failed', type: 'rate' },
  { name: 'dropped', type: 'counter' },
  { name: 'vus', type: 'gauge' },
];

function registry(): Registry {
  let now = 0;
  const r = new Registry(DEFS, { now: () => now });
  for (let i = 1; i <= 100; i++) r.add('lat', i); // 1 … 100 ms
  for (let i = 0; i < 200; i++) r.add('failed', i < 3); // 1.5 %
  r.add('dropped', 2);
  r.add('vus', 7);
  now = 10_000; // 10 s in
  return r;
}

describe('threshold expressions', () => {
  it.each([
    ['p(95)<250', { aggregation: 'p', percentile: 95, operator: '<', value: 250 }],
    ['p(99.9) <= 1e3', { aggregation: 'p', percentile: 99.9, operator: '<=', value: 1000 }],
    ['avg<200', { aggregation: 'avg', operator: '<', value: 200 }],
    ['med >= 0.5', { aggregation: 'med', operator: '>=', value: 0.5 }],
    ['min>1', { aggregation: 'min', operator: '>', value: 1 }],
    ['max!=3', { aggregation: 'max', operator: '!=', value: 3 }],
    ['rate<0.001', { aggregation: 'rate', operator: '<', value: 0.001 }],
    ['count==0', { aggregation: 'count', operator: '==', value: 0 }],
    ['count===0', { aggregation: 'count', operator: '==', value: 0 }],
    ['value>-1', { aggregation: 'value', operator: '>', value: -1 }],
  ])('parses %s', (src, want) => {
    expect(parseExpression(src)).toMatchObject({ source: src.trim(), ...want });
  });

  it.each(['p95<250', 'p(95) < ', 'rate', 'avg=<3', 'count=0', 'stddev<3', 'p(101)<3', ''])('refuses %j', (src) => {
    expect(() => parseExpression(src)).toThrow(/threshold expression|percentile/);
  });

  it('compares with every operator', () => {
    expect([
      compare(1, '<', 2),
      compare(2, '<', 2),
      compare(2, '<=', 2),
      compare(3, '>', 2),
      compare(2, '>=', 2),
      compare(0, '==', 0),
      compare(1, '!=', 0),
    ]).toEqual([true, false, true, true, true, true, true]);
  });

  it('reads the object form with abortOnFail and delayAbortEval', () => {
    const t = parseThresholds({ http_req_failed: ['rate<0.01', { threshold: 'rate<0.2', abortOnFail: true, delayAbortEval: '10s' }] });
    expect(t).toMatchObject([
      { metric: 'http_req_failed', source: 'rate<0.01', abortOnFail: false, delayAbortEval: 0 },
      { metric: 'http_req_failed', source: 'rate<0.2', abortOnFail: true, delayAbortEval: 10 },
    ]);
    expect(() => parseThresholds({ x: [{ abortOnFail: true } as unknown as ThresholdSpec] })).toThrow(/no "threshold"/);
  });
});

describe('threshold evaluation', () => {
  it('evaluates trends (percentiles, med, avg, min, max), rates, counters and gauges like k6', () => {
    const r = registry();
    const spec = {
      lat: ['p(95)<96', 'p(95)<95', 'p(50)<=51', 'med>49', 'avg==50.5', 'min==1', 'max<100'],
      failed: ['rate<0.02', 'rate<0.01'],
      dropped: ['count==0', 'count<3', 'rate<0.3'],
      vus: ['value==7'],
    };
    const t = parseThresholds(spec);
    bindThresholds(t, r);
    const got = evaluateAll(t, r).map((x) => [`${x.metric}: ${x.expression}`, x.passed]);
    expect(got).toEqual([
      ['lat: p(95)<96', true],
      ['lat: p(95)<95', false],
      ['lat: p(50)<=51', true],
      ['lat: med>49', true],
      ['lat: avg==50.5', true],
      ['lat: min==1', true],
      ['lat: max<100', false],
      ['failed: rate<0.02', true],
      ['failed: rate<0.01', false],
      ['dropped: count==0', false],
      ['dropped: count<3', true],
      ['dropped: rate<0.3', true], // 2 in 10 s
      ['vus: value==7', true],
    ]);
    const p95 = evaluate(t[0]!, r);
    expect(p95.actual).toBeCloseTo(95, 0);
    expect(p95.samples).toBe(100);
  });

  it('evaluates a metric without samples as 0, as k6 does, and says so', () => {
    const r = new Registry(DEFS);
    const [t] = parseThresholds({ lat: ['p(95)<100'] });
    expect(evaluate(t!, r)).toMatchObject({ passed: true, actual: 0, samples: 0 });
  });

  it('refuses a threshold on an unknown metric or with an aggregation its type lacks', () => {
    const r = registry();
    expect(() => bindThresholds(parseThresholds({ nope: ['rate<1'] }), r)).toThrow(/no metric nope/);
    expect(() => bindThresholds(parseThresholds({ lat: ['rate<1'] }), r)).toThrow(/lat is a trend, which has avg, min, max, med, p\(N\)/);
    expect(() => bindThresholds(parseThresholds({ failed: ['p(95)<1'] }), r)).toThrow(/failed is a rate/);
    expect(() => bindThresholds(parseThresholds({ dropped: ['avg<1'] }), r)).toThrow(/dropped is a counter/);
  });

  it('evaluates tag-scoped sub-metrics on the samples carrying the tags', () => {
    const r = new Registry(DEFS);
    const t = parseThresholds({ 'lat{name:slow}': ['p(99)<100'], 'lat{name:fast}': ['max<10'] });
    bindThresholds(t, r);
    r.add('lat', 5, { name: 'fast' });
    r.add('lat', 500, { name: 'slow', status: '200' });
    r.add('lat', 8, { name: 'fast' });
    expect(evaluateAll(t, r).map((x) => [x.metric, x.passed, x.samples])).toEqual([
      ['lat{name:slow}', false, 1],
      ['lat{name:fast}', true, 2],
    ]);
  });

  it('aborts on an abortOnFail threshold only once its delayAbortEval has passed', () => {
    const r = registry(); // failed rate 1.5 %
    const t = parseThresholds({ failed: ['rate<0.001', { threshold: 'rate<0.01', abortOnFail: true, delayAbortEval: '10s' }] });
    bindThresholds(t, r);
    expect(abortingThreshold(t, r, 5)).toBeUndefined(); // too early
    expect(abortingThreshold(t, r, 10)).toMatchObject({ metric: 'failed', expression: 'rate<0.01', passed: false, abortOnFail: true });
    const lenient = parseThresholds({ failed: [{ threshold: 'rate<0.2', abortOnFail: true }] });
    bindThresholds(lenient, r);
    expect(abortingThreshold(lenient, r, 10)).toBeUndefined(); // failing but not aborting ones never abort
  });

  it("binds every scenario's thresholds of generated/thresholds.json to the metrics the driver records", () => {
    const all = JSON.parse(readFileSync(DEFAULT_THRESHOLDS, 'utf8')) as Record<string, Record<string, ThresholdSpec[]>>;
    for (const sc of SCENARIOS) {
      const r = new Registry([...BUILTIN_METRICS, ...SCENARIO_IMPLS[sc].metrics]);
      const t = parseThresholds(all[sc]!);
      expect(t.length, sc).toBeGreaterThan(2);
      expect(() => bindThresholds(t, r), sc).not.toThrow();
      expect(
        t.some((x) => x.metric === 'dropped_iterations' && x.source === 'count==0'),
        sc,
      ).toBe(true);
    }
  });
});
