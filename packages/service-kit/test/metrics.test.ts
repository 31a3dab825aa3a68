import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import {
  DB_DURATION_BUCKETS,
  fineBuckets,
  HTTP_DURATION_BUCKETS,
  OPERATION_DURATION_BUCKETS,
  ServiceMetrics,
  TPOT_BUCKETS,
  TTFT_BUCKETS,
} from '../src/metrics.ts';
import { missingProgram } from '@codelab/service-kit/testing';
import { find, types, value } from './prom-text.ts';

const OPENMETRICS = 'application/openmetrics-text; version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1';
const PROM_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';
const OM_CONTENT_TYPE = 'application/openmetrics-text; version=1.0.0; charset=utf-8';
const EXEMPLAR = { trace_id: '4bf92f3577b34da6a3ce929d0e0e4736', span_id: '00f067aa0ba902b7' };
const GET_X = { service: 'svc', method: 'GET', route: '/x', status_code: '200' };

/** PromQL's histogram_quantile over one classic histogram: linear inside the bucket holding rank q·count. */
function histogramQuantile(q: number, bounds: readonly number[], cumulative: readonly number[]): number {
  const total = cumulative.at(-1)!;
  const rank = q * total;
  const i = cumulative.findIndex((c) => c >= rank);
  if (i >= bounds.length) return bounds.at(-1)!; // in +Inf: the highest finite bound
  const below = i === 0 ? 0 : cumulative[i - 1]!;
  const lower = i === 0 ? 0 : bounds[i - 1]!;
  return lower + (bounds[i]! - lower) * ((rank - below) / (cumulative[i]! - below));
}

/** erf, Abramowitz and Stegun 7.1.26 (|error| < 1.5e-7). */
function erf(x: number): number {
  const t = 1 / (1 + 0.3275911 * Math.abs(x));
  const y = 1 - ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * Math.exp(-x * x);
  return x >= 0 ? y : -y;
}

interface Distribution {
  name: string;
  cdf(x: number): number;
  quantile(q: number): number;
}
/** Log-normal with median `median` and log-spread `sigma` (p99/p50 = e^(2.33σ)). */
function logNormal(median: number, sigma: number): Distribution {
  const cdf = (x: number): number => (x <= 0 ? 0 : 0.5 * (1 + erf(Math.log(x / median) / (sigma * Math.SQRT2))));
  const quantile = (q: number): number => {
    let [lo, hi] = [Math.log(median) - 10 * sigma, Math.log(median) + 10 * sigma];
    for (let k = 0; k < 100; k++) {
      const mid = (lo + hi) / 2;
      if (cdf(Math.exp(mid)) < q) lo = mid;
      else hi = mid;
    }
    return Math.exp((lo + hi) / 2);
  };
  return { name: `log-normal median ${median.toPrecision(3)} s σ ${sigma}`, cdf, quantile };
}
/** A fixed floor plus an exponential draw: the mock LLM's `exponential` profile behind the platform's own time. */
function shiftedExponential(floor: number, mean: number): Distribution {
  return {
    name: `${floor.toPrecision(3)} s + exponential mean ${mean.toPrecision(3)} s`,
    cdf: (x) => (x <= floor ? 0 : 1 - Math.exp(-(x - floor) / mean)),
    quantile: (q) => floor - mean * Math.log(1 - q),
  };
}

/**
 * Where each histogram's observations fall (mock and real), the largest step its buckets take there,
 * and the narrowest spread (σ of a log-normal) it must read right.
 */
const TEN = { maxStep: 4 / 3, sigmas: [0.35, 0.5, 0.8, 1] };
const TWENTY = { maxStep: 1.15, sigmas: [0.2, 0.3, 0.5, 0.8, 1] };
const LATENCY_BUCKETS = [
  { name: 'HTTP_DURATION_BUCKETS', buckets: HTTP_DURATION_BUCKETS, from: 0.001, to: 1, ...TEN },
  { name: 'TTFT_BUCKETS', buckets: TTFT_BUCKETS, from: 0.05, to: 10, ...TWENTY },
  { name: 'OPERATION_DURATION_BUCKETS', buckets: OPERATION_DURATION_BUCKETS, from: 0.05, to: 60, ...TEN },
  { name: 'TPOT_BUCKETS', buckets: TPOT_BUCKETS, from: 0.005, to: 0.25, ...TEN },
  { name: 'DB_DURATION_BUCKETS', buckets: DB_DURATION_BUCKETS, from: 0.0005, to: 0.1, ...TEN },
];

describe('metrics', () => {
  describe('HTTP_DURATION_BUCKETS', () => {
    it('hold the OpenTelemetry advised buckets for http.server.request.duration', () => {
      expect(HTTP_DURATION_BUCKETS).toEqual(
        expect.arrayContaining([0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10]),
      );
    });

    it('are the buckets of the server and client request histograms', async () => {
      const m = new ServiceMetrics('svc');
      ServiceMetrics.observe(m.httpDuration, GET_X, 0.2, undefined);
      ServiceMetrics.observe(m.clientDuration, { ...GET_X, peer: 'runtime' }, 0.2, undefined);
      const { body } = await m.render(undefined);
      const le = (name: string) => find(body, name).map((s) => s.labels.le);
      const expected = [...HTTP_DURATION_BUCKETS.map(String), '+Inf'];
      expect(le('http_server_request_duration_seconds_bucket')).toEqual(expected);
      expect(le('http_client_request_duration_seconds_bucket')).toEqual(expected);
    });
  });

  describe('fineBuckets', () => {
    it('steps ten times a decade, by at most 4/3, both ends included', () => {
      expect(fineBuckets(0.1, 1)).toEqual([0.1, 0.125, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.75, 1]);
      expect(fineBuckets(0.002, 0.01)).toEqual([0.002, 0.0025, 0.003, 0.004, 0.005, 0.006, 0.0075, 0.01]);
    });

    it('steps twenty times a decade (R20) when asked', () => {
      expect(fineBuckets(1, 10, 20)).toEqual([
        1, 1.12, 1.25, 1.4, 1.6, 1.8, 2, 2.24, 2.5, 2.8, 3.15, 3.55, 4, 4.5, 5, 5.6, 6.3, 7.1, 8, 9, 10,
      ]);
    });
  });

  describe.each(LATENCY_BUCKETS)('$name', ({ buckets, from, to, maxStep, sigmas }) => {
    it(`rise, and step by at most ${maxStep.toFixed(2)}× from ${from} s to ${to} s, where the observations fall`, () => {
      for (let i = 1; i < buckets.length; i++) expect(buckets[i]!, String(buckets[i - 1])).toBeGreaterThan(buckets[i - 1]!);
      const fine = buckets.filter((b) => b >= from && b <= to);
      expect(fine[0]).toBe(from);
      expect(fine.at(-1)).toBe(to);
      for (let i = 1; i < fine.length; i++)
        expect(fine[i]! / fine[i - 1]!, `${fine[i - 1]} → ${fine[i]}`).toBeLessThanOrEqual(maxStep + 1e-9);
    });

    it(`read p50, p95 and p99 within 10% of the truth for latencies inside that range, log-normal from σ ${sigmas[0]} or exponential`, () => {
      const distributions: Distribution[] = [];
      for (let median = from; median <= to; median *= 1.1) {
        for (const sigma of sigmas) {
          const d = logNormal(median, sigma);
          if (d.quantile(0.99) <= to) distributions.push(d);
        }
        for (const spread of [0.5, 1, 3]) {
          const d = shiftedExponential(median, median * spread);
          if (d.quantile(0.99) <= to) distributions.push(d);
        }
      }
      expect(distributions.length).toBeGreaterThan(50);
      const off: string[] = [];
      for (const d of distributions) {
        const cumulative = [...buckets.map((b) => d.cdf(b)), 1];
        for (const q of [0.5, 0.95, 0.99]) {
          const ratio = histogramQuantile(q, buckets, cumulative) / d.quantile(q);
          if (Math.abs(ratio - 1) > 0.1) off.push(`${d.name}: p${q * 100} reads ${ratio.toFixed(3)}× the truth`);
        }
      }
      expect(off).toEqual([]);
    });
  });

  describe('ServiceMetrics.render', () => {
    it('renders the Prometheus text format by default', async () => {
      const m = new ServiceMetrics('svc');
      ServiceMetrics.observe(m.httpDuration, GET_X, 0.07, EXEMPLAR);
      for (const accept of [undefined, '', 'text/plain', '*/*']) {
        const { contentType, body } = await m.render(accept);
        expect(contentType).toBe(PROM_CONTENT_TYPE);
        expect(body).not.toContain('# EOF');
        expect(body).not.toContain('trace_id');
        expect(value(body, 'http_server_request_duration_seconds_bucket', { ...GET_X, le: '0.075' })).toBe(1);
        expect(value(body, 'http_server_request_duration_seconds_count', GET_X)).toBe(1);
      }
    });

    it('renders OpenMetrics with trace-id exemplars when the scraper asks for it', async () => {
      const m = new ServiceMetrics('svc');
      ServiceMetrics.observe(m.httpDuration, GET_X, 0.07, EXEMPLAR);
      const { contentType, body } = await m.render(OPENMETRICS);
      expect(contentType).toBe(OM_CONTENT_TYPE);
      expect(body.endsWith('\n# EOF\n')).toBe(true);
      const buckets = find(body, 'http_server_request_duration_seconds_bucket', GET_X);
      // 0.07 s falls in (0.06, 0.075]: that bucket and every one above count it
      expect(buckets.map((s) => [s.labels.le, s.value])).toEqual([
        ...HTTP_DURATION_BUCKETS.map((le) => [String(le), le >= 0.075 ? 1 : 0]),
        ['+Inf', 1],
      ]);
      // The exemplar sits on the bucket the observation fell in, and only there.
      expect(buckets.filter((s) => s.exemplar).map((s) => [s.labels.le, s.exemplar])).toEqual([
        ['0.075', { labels: EXEMPLAR, value: 0.07 }],
      ]);
    });

    it('keeps `_total` on counters in Prometheus text, before and after OpenMetrics renders', async () => {
      const m = new ServiceMetrics('svc');
      m.counter({ name: 'jobs_done_total', help: 'Jobs done' }).inc(3);
      m.counter({ name: 'jobs_failed', help: 'Jobs failed' }).inc(2);

      const expectOpenMetrics = (body: string) => {
        expect(types(body).get('jobs_done')).toBe('counter');
        expect(types(body).get('jobs_failed')).toBe('counter');
        expect(value(body, 'jobs_done_total')).toBe(3);
        expect(value(body, 'jobs_failed_total')).toBe(2);
      };
      const expectPrometheus = (body: string) => {
        expect(types(body).get('jobs_done_total')).toBe('counter');
        expect(types(body).get('jobs_failed_total')).toBe('counter');
        expect(types(body).has('jobs_done')).toBe(false);
        expect(value(body, 'jobs_done_total')).toBe(3);
        expect(value(body, 'jobs_failed_total')).toBe(2);
        expect(find(body, 'jobs_done')).toEqual([]);
      };

      expectPrometheus((await m.render(undefined)).body);
      expectOpenMetrics((await m.render(OPENMETRICS)).body);
      expectPrometheus((await m.render(undefined)).body);
      expectOpenMetrics((await m.render(OPENMETRICS)).body);
      expectPrometheus((await m.render('text/plain')).body);
    });

    it('keeps each rendering consistent when renders of both formats overlap', async () => {
      const m = new ServiceMetrics('svc');
      m.counter({ name: 'jobs_done_total', help: 'Jobs done' }).inc();
      const renders = await Promise.all([m.render(OPENMETRICS), m.render(undefined), m.render(OPENMETRICS), m.render(undefined)]);
      expect(renders.map((r) => [r.contentType, types(r.body).get('jobs_done_total') ?? types(r.body).get('jobs_done')])).toEqual([
        [OM_CONTENT_TYPE, 'counter'],
        [PROM_CONTENT_TYPE, 'counter'],
        [OM_CONTENT_TYPE, 'counter'],
        [PROM_CONTENT_TYPE, 'counter'],
      ]);
      expect(types(renders[1]!.body).has('jobs_done')).toBe(false);
      expect(types(renders[3]!.body).has('jobs_done')).toBe(false);
      expect(types(renders[0]!.body).has('jobs_done_total')).toBe(false);
    });

    it('includes the default process metrics but not the `_total` gauges promtool rejects', async () => {
      const { body } = await new ServiceMetrics('svc').render(undefined);
      const t = types(body);
      expect(t.get('process_cpu_seconds_total')).toBe('counter');
      expect(t.get('nodejs_eventloop_lag_seconds')).toBe('gauge');
      expect(t.get('nodejs_active_handles')).toBe('gauge');
      expect(t.has('nodejs_active_handles_total')).toBe(false);
      expect(t.has('nodejs_active_requests_total')).toBe(false);
      expect(t.has('nodejs_active_resources_total')).toBe(false);
    });

    it.skipIf(missingProgram('promtool', 'prometheus'))(
      'passes `promtool check metrics` with a counter, a gauge, an exemplar histogram and the default metrics',
      async () => {
        const m = new ServiceMetrics('svc');
        m.counter({ name: 'svc_jobs_total', help: 'Jobs', labelNames: ['kind'] }).inc({ kind: 'a' });
        m.gauge({ name: 'svc_queue_depth', help: 'Queue depth' }).set(4);
        const h = m.histogram({
          name: 'svc_step_duration_seconds',
          help: 'Step duration',
          labelNames: ['step'],
          buckets: [0.1, 1],
          enableExemplars: true,
        });
        ServiceMetrics.observe(h, { step: 'parse' }, 0.05, EXEMPLAR);
        ServiceMetrics.observe(m.httpDuration, GET_X, 0.07, EXEMPLAR);
        // An OpenMetrics render first, as a Prometheus scrape would do, must not spoil the next text one.
        await m.render(OPENMETRICS);
        const { body } = await m.render(undefined);
        expect(value(body, 'svc_jobs_total', { kind: 'a' })).toBe(1);
        expect(value(body, 'svc_queue_depth')).toBe(4);
        const check = spawnSync('promtool', ['check', 'metrics'], { input: body, encoding: 'utf8', timeout: 10_000 });
        expect({ status: check.status, stdout: check.stdout, stderr: check.stderr }).toEqual({ status: 0, stdout: '', stderr: '' });
      },
    );
  });

  describe('ServiceMetrics.observe', () => {
    it('records an exemplar on a histogram with exemplars enabled', async () => {
      const m = new ServiceMetrics('svc');
      const h = m.histogram({ name: 't_ex_seconds', help: 'h', labelNames: ['k'], buckets: [0.1, 1], enableExemplars: true });
      ServiceMetrics.observe(h, { k: 'a' }, 0.5, EXEMPLAR);
      const { body } = await m.render(OPENMETRICS);
      expect(find(body, 't_ex_seconds_bucket', { k: 'a' }).map((s) => [s.labels.le, s.value, s.exemplar])).toEqual([
        ['0.1', 0, undefined],
        ['1', 1, { labels: EXEMPLAR, value: 0.5 }],
        ['+Inf', 1, undefined],
      ]);
      expect(value(body, 't_ex_seconds_sum', { k: 'a' })).toBe(0.5);
    });

    it('counts an observation without exemplar on a histogram with exemplars enabled', async () => {
      const m = new ServiceMetrics('svc');
      const h = m.histogram({ name: 't_ex_seconds', help: 'h', labelNames: ['k'], buckets: [0.1, 1], enableExemplars: true });
      ServiceMetrics.observe(h, { k: 'a' }, 0.05, undefined);
      ServiceMetrics.observe(h, { k: 'a' }, 2, undefined);
      const { body } = await m.render(OPENMETRICS);
      expect(find(body, 't_ex_seconds_bucket', { k: 'a' }).map((s) => [s.labels.le, s.value, s.exemplar])).toEqual([
        ['0.1', 1, undefined],
        ['1', 1, undefined],
        ['+Inf', 2, undefined],
      ]);
      expect(value(body, 't_ex_seconds_count', { k: 'a' })).toBe(2);
    });

    it('observes a histogram without exemplars, ignoring an exemplar given', async () => {
      const m = new ServiceMetrics('svc');
      const h = m.histogram({ name: 't_plain_seconds', help: 'h', labelNames: ['k'], buckets: [0.1, 1] });
      ServiceMetrics.observe(h, { k: 'a' }, 0.05, EXEMPLAR);
      ServiceMetrics.observe(h, { k: 'a' }, 0.5, undefined);
      const { body } = await m.render(OPENMETRICS);
      expect(find(body, 't_plain_seconds_bucket', { k: 'a' }).map((s) => [s.labels.le, s.value, s.exemplar])).toEqual([
        ['0.1', 1, undefined],
        ['1', 2, undefined],
        ['+Inf', 2, undefined],
      ]);
      expect(value(body, 't_plain_seconds_sum', { k: 'a' })).toBe(0.55);
    });
  });

  describe('ServiceMetrics', () => {
    it('creates the kit histograms with their labels and no observations', async () => {
      const m = new ServiceMetrics('svc');
      expect(m.service).toBe('svc');
      const { body } = await m.render(undefined);
      const t = types(body);
      expect(t.get('http_server_request_duration_seconds')).toBe('histogram');
      expect(t.get('http_server_stream_duration_seconds')).toBe('histogram');
      expect(t.get('http_client_request_duration_seconds')).toBe('histogram');
      expect(find(body, 'http_server_request_duration_seconds_count')).toEqual([]);
    });

    it('keeps two services apart (one registry each)', async () => {
      const a = new ServiceMetrics('a');
      const b = new ServiceMetrics('b');
      a.counter({ name: 'same_name_total', help: 'h' }).inc(5);
      b.counter({ name: 'same_name_total', help: 'h' }).inc(1);
      expect(value((await a.render(undefined)).body, 'same_name_total')).toBe(5);
      expect(value((await b.render(undefined)).body, 'same_name_total')).toBe(1);
    });
  });
});
