/** PromQL of the gateway dashboard: WebSocket connections and frames, turns as the IDE sees them, JWT checks. */
import { quantile, sumRate } from '../lib.ts';

/** Open WebSocket connections. */
export function wsConnections(): string {
  return 'sum(gateway_ws_connections)';
}

/** WebSocket frames per second by direction and frame type. */
export function wsFramesByType(): string {
  return sumRate('gateway_ws_messages_total', ['direction', 'type']);
}

/** WebSocket closes per second by close code. */
export function wsClosesByCode(): string {
  return sumRate('gateway_ws_closes_total', ['code']);
}

/** Slow-reader drops (close 4008) per second, by gateway instance. */
export function wsSlowReaderDrops(): string {
  return sumRate('gateway_ws_slow_reader_drops_total', ['instance']);
}

/** The q-quantile of a WebSocket connection's lifetime. */
export function wsConnectionDuration(q: number): string {
  return quantile(q, 'http_server_stream_duration_seconds', [], 'service="gateway"');
}

/** WebSocket connections refused per second because the session belongs to another user (4403). */
export function wsSessionDenied(): string {
  return 'sum(rate(gateway_ws_session_denied_total[$__rate_interval]))';
}

/** The q-quantile of the time from a user message to its first token, as the IDE sees it. */
export function turnTimeToFirstToken(q: number): string {
  return quantile(q, 'gateway_turn_time_to_first_token_seconds', []);
}

/** The q-quantile of turn duration by outcome. */
export function turnDurationByOutcome(q: number): string {
  return quantile(q, 'gateway_turn_duration_seconds', ['outcome']);
}

/** The q-quantile of turn duration over every outcome (what the IDE sees). */
export function turnDuration(q: number): string {
  return quantile(q, 'gateway_turn_duration_seconds', []);
}

/** Turns finished per second by outcome. */
export function turnsByOutcome(): string {
  return sumRate('gateway_turn_duration_seconds_count', ['outcome']);
}

/** The gateway's REST API: the routes of the REST SLOs of alerts/slos.yaml (WebSocket upgrades are streams, counted apart). */
const REST_API = 'service="gateway", route=~"/api/v1/.+"';
const HTTP = 'http_server_request_duration_seconds';

/** REST API requests per second by status code. */
export function restRequestsByStatus(): string {
  return sumRate(`${HTTP}_count`, ['status_code'], REST_API);
}

/** Share of REST API requests answered with a 5xx (0 when there are none). */
export function restErrorRatio(): string {
  const all = `sum(rate(${HTTP}_count{${REST_API}}[$__rate_interval]))`;
  return `(sum(rate(${HTTP}_count{${REST_API}, status_code=~"5.."}[$__rate_interval])) or ${all} * 0) / ${all}`;
}

/** The q-quantile of REST API latency. */
export function restLatency(q: number): string {
  return quantile(q, HTTP, [], REST_API);
}

/** Bearer token verifications per second by outcome. */
export function jwtVerificationsByOutcome(): string {
  return sumRate('gateway_jwt_verifications_total', ['outcome']);
}

/** JWKS fetches per second by reason and outcome. */
export function jwksRefreshes(): string {
  return sumRate('gateway_jwks_refreshes_total', ['reason', 'outcome']);
}

/** Signing keys in the gateway's cached JWKS. */
export function jwksKeys(): string {
  return 'max(gateway_jwks_keys)';
}

/** Polls of the revoked token families per second by outcome. */
export function revocationPolls(): string {
  return sumRate('gateway_token_revocation_polls_total', ['outcome']);
}

/** Token families currently revoked. */
export function revokedFamilies(): string {
  return 'max(gateway_token_revoked_families)';
}

/** p95 latency of the gateway's calls to auth and the runtime, by peer. */
export function outboundLatencyP95(): string {
  return quantile(0.95, 'http_client_request_duration_seconds', ['peer', 'route'], 'service="gateway"');
}
