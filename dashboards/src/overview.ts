/** Platform overview: RED (rate, errors, duration) per service from `http_server_request_duration_seconds`. */
import { RowBuilder } from '@grafana/grafana-foundation-sdk/dashboard';
import type { Dashboard } from '@grafana/grafana-foundation-sdk/dashboard';
import { codelabDashboard, finish, latency, serviceVariable, timeseries, UNITS } from './lib.ts';
import * as q from './queries/overview.ts';

export const uid = 'codelab-overview';

export function overviewDashboard(): Dashboard {
  return finish(
    codelabDashboard(
      uid,
      'CodeLab / Overview',
      'Rate, error ratio and latency of every CodeLab service (gateway, runtime, llm-proxy, auth), per service and route.',
      ['overview'],
    )
      .withVariable(serviceVariable())
      .withRow(new RowBuilder('Per service'))
      .withPanel(
        timeseries({
          title: 'Request rate',
          description:
            'HTTP requests per second answered by each service (streaming responses excluded: they are in http_server_stream_duration_seconds).',
          unit: UNITS.reqps,
          queries: [{ expr: q.requestRateByService(), legend: '{{service}}' }],
          w: 8,
        }),
      )
      .withPanel(
        timeseries({
          title: 'Error ratio (5xx)',
          description:
            'Share of HTTP requests answered with a 5xx status, per service. 4xx answers are the caller’s errors and are not counted.',
          unit: UNITS.percentUnit,
          queries: [{ expr: q.errorRatioByService(), legend: '{{service}}' }],
          min: 0,
          w: 8,
        }),
      )
      .withPanel(
        timeseries({
          title: 'Requests by status code',
          description: 'HTTP requests per second per service and status code.',
          unit: UNITS.reqps,
          queries: [{ expr: q.requestRateByStatus(), legend: '{{service}} {{status_code}}' }],
          w: 8,
        }),
      )
      .withPanel(
        latency({
          title: 'Latency p50',
          description: 'Median HTTP request latency per service. Exemplars (dots) open the trace of a request in Tempo.',
          queries: [{ expr: q.latencyByService(0.5), legend: '{{service}} p50' }],
          w: 8,
        }),
      )
      .withPanel(
        latency({
          title: 'Latency p95',
          description: '95th percentile of HTTP request latency per service. Exemplars (dots) open the trace of a request in Tempo.',
          queries: [{ expr: q.latencyByService(0.95), legend: '{{service}} p95' }],
          w: 8,
        }),
      )
      .withPanel(
        latency({
          title: 'Latency p99',
          description: '99th percentile of HTTP request latency per service. Exemplars (dots) open the trace of a request in Tempo.',
          queries: [{ expr: q.latencyByService(0.99), legend: '{{service}} p99' }],
          w: 8,
        }),
      )
      .withRow(new RowBuilder('Per route'))
      .withPanel(
        timeseries({
          title: 'Busiest routes',
          description: 'The ten routes (templates) with the most requests per second.',
          unit: UNITS.reqps,
          queries: [{ expr: q.topRoutes(), legend: '{{service}} {{method}} {{route}}' }],
        }),
      )
      .withPanel(
        latency({
          title: 'Latency p95 by route',
          description: '95th percentile of HTTP request latency per service and route template.',
          queries: [{ expr: q.latencyP95ByRoute(), legend: '{{service}} {{route}}' }],
        }),
      )
      .withRow(new RowBuilder('Calls between services'))
      .withPanel(
        timeseries({
          title: 'Outbound call rate',
          description:
            'Calls per second from a service to another service or to the LLM upstream, by caller, peer and status (`error` when no response arrived).',
          unit: UNITS.reqps,
          queries: [{ expr: q.outboundRate(), legend: '{{service}} → {{peer}} {{status_code}}' }],
        }),
      )
      .withPanel(
        latency({
          title: 'Outbound latency p95',
          description: '95th percentile of outbound call latency until the response headers, by caller and peer.',
          queries: [{ expr: q.outboundLatencyP95(), legend: '{{service}} → {{peer}}' }],
        }),
      ),
  );
}
