import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { HTTP_DURATION_BUCKETS, ServiceMetrics } from '@codelab/service-kit/metrics';
import { missingProgram } from '@codelab/service-kit/testing';
import { find, types, value } from './prom-text.ts';

const OPENMETRICS = 'application/openmetrics-text; version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1';
const PROM_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';
const OM_CONTENT_TYPE = 'application/openmetrics-text; version=1.0.0; charset=utf-8';
const EXEMPLAR = { trace_id: '4bf92f3577b34da6a3ce929d0e0e4736', span_id: '00f067aa0ba902b7' };
const GET_X = { service: 'svc', method: 'GET', route: '/x', status_code: '200' };

describe('metrics', () => {
  describe('HTTP_DURATION_BUCKETS', () => {
    it('are the OpenTelemetry advised buckets for http.server.request.duration', () => {
      expect(HTTP_DURATION_BUCKETS).toEqual([0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10]);
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
      expect(buckets.map((s) => [s.labels.le, s.value])).toEqual([
        ['0.005', 0],
        ['0.01', 0],
        ['0.025', 0],
        ['0.05', 0],
        ['0.075', 1],
        ['0.1', 1],
        ['0.25', 1],
        ['0.5', 1],
        ['0.75', 1],
        ['1', 1],
        ['2.5', 1],
        ['5', 1],
        ['7.5', 1],
        ['10', 1],
        ['+Inf', 1],
      ]);
      // The exemplar sits on the bucket the observation fell in, and only there.
      expect(buckets.filter((s) => s.exemplar).map((s) => [s.labels.le, s.exemplar])).toEqual([['0.075', { labels: EXEMPLAR, value: 0.07 }]]);
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

    it.skipIf(missingProgram('promtool', 'prometheus'))('passes `promtool check metrics` with a counter, a gauge, an exemplar histogram and the default metrics', async () => {
      const m = new ServiceMetrics('svc');
      m.counter({ name: 'svc_jobs_total', help: 'Jobs', labelNames: ['kind'] }).inc({ kind: 'a' });
      m.gauge({ name: 'svc_queue_depth', help: 'Queue depth' }).set(4);
      const h = m.histogram({ name: 'svc_step_duration_seconds', help: 'Step duration', labelNames: ['step'], buckets: [0.1, 1], enableExemplars: true });
      ServiceMetrics.observe(h, { step: 'parse' }, 0.05, EXEMPLAR);
      ServiceMetrics.observe(m.httpDuration, GET_X, 0.07, EXEMPLAR);
      // An OpenMetrics render first, as a Prometheus scrape would do, must not spoil the next text one.
      await m.render(OPENMETRICS);
      const { body } = await m.render(undefined);
      expect(value(body, 'svc_jobs_total', { kind: 'a' })).toBe(1);
      expect(value(body, 'svc_queue_depth')).toBe(4);
      const check = spawnSync('promtool', ['check', 'metrics'], { input: body, encoding: 'utf8', timeout: 10_000 });
      expect({ status: check.status, stdout: check.stdout, stderr: check.stderr }).toEqual({ status: 0, stdout: '', stderr: '' });
    });
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
