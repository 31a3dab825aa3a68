/** PromQL of the platform overview: RED per service from `http_server_request_duration_seconds`. */
import { matchVar, quantile, sumRate } from '../lib.ts';

const HTTP = 'http_server_request_duration_seconds';
const SERVICE = matchVar('service');

/** Requests per second by service. */
export function requestRateByService(): string {
  return sumRate(`${HTTP}_count`, ['service'], SERVICE);
}

/** Share of requests answered with a 5xx, by service (0 when there are none). */
export function errorRatioByService(): string {
  const errors = sumRate(`${HTTP}_count`, ['service'], `${SERVICE}, status_code=~"5.."`);
  const all = sumRate(`${HTTP}_count`, ['service'], SERVICE);
  return `(${errors} or ${all} * 0) / ${all}`;
}

/** The q-quantile of request latency by service. */
export function latencyByService(q: number): string {
  return quantile(q, HTTP, ['service'], SERVICE);
}

/** Requests per second by service and status code. */
export function requestRateByStatus(): string {
  return sumRate(`${HTTP}_count`, ['service', 'status_code'], SERVICE);
}

/** The ten busiest routes (requests per second). */
export function topRoutes(): string {
  return `topk(10, ${sumRate(`${HTTP}_count`, ['service', 'method', 'route'], SERVICE)})`;
}

/** p95 latency by service and route. */
export function latencyP95ByRoute(): string {
  return quantile(0.95, HTTP, ['service', 'route'], SERVICE);
}

/** Outbound calls per second to other services and upstreams, by caller, peer and status. */
export function outboundRate(): string {
  return sumRate('http_client_request_duration_seconds_count', ['service', 'peer', 'status_code'], SERVICE);
}

/** p95 latency of outbound calls, by caller and peer. */
export function outboundLatencyP95(): string {
  return quantile(0.95, 'http_client_request_duration_seconds', ['service', 'peer'], SERVICE);
}
