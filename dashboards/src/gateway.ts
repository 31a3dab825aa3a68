/** Gateway and WebSocket: connections, frames, closes, turns as the IDE sees them, JWT verification and JWKS. */
import { RowBuilder, type Dashboard } from '@grafana/grafana-foundation-sdk/dashboard';
import { codelabDashboard, finish, latency, stat, timeseries, UNITS } from './lib.ts';
import * as q from './queries/gateway.ts';

export const uid = 'codelab-gateway';

export function gatewayDashboard(): Dashboard {
  return finish(
    codelabDashboard(
      uid,
      'CodeLab / Gateway',
      'The edge of the platform: WebSocket connections and frames, conversation turns as the IDE sees them, bearer token verification and the JWKS cache.',
      ['gateway'],
    )
      .withRow(new RowBuilder('WebSocket'))
      .withPanel(
        timeseries({
          title: 'Open WebSocket connections',
          description: 'IDE WebSocket connections open on the gateway.',
          unit: UNITS.count,
          queries: [{ expr: q.wsConnections(), legend: 'connections' }],
          min: 0,
          w: 8,
        }),
      )
      .withPanel(
        timeseries({
          title: 'Frames by type and direction',
          description:
            'WebSocket frames per second, in (from the IDE) and out (to the IDE), by protocol frame type (`invalid`, `binary` or `other` for frames outside the protocol).',
          unit: UNITS.perSecond,
          queries: [{ expr: q.wsFramesByType(), legend: '{{direction}} {{type}}' }],
          w: 8,
        }),
      )
      .withPanel(
        timeseries({
          title: 'Closes by code',
          description:
            'WebSocket connections closed per second by close code: 1000 normal, 1001 going away, 1006 abnormal (no close frame), 1009 frame too large, 4008 slow reader, 4401 unauthorized, 4403 session of another user.',
          unit: UNITS.perSecond,
          queries: [{ expr: q.wsClosesByCode(), legend: '{{code}}' }],
          w: 8,
        }),
      )
      .withPanel(
        timeseries({
          title: 'Slow-reader drops',
          description:
            'Connections closed with 4008 per second because more than GATEWAY__WS_MAX_BUFFERED_BYTES waited to be sent (alert GatewayWebSocketSlowReaderDrops).',
          unit: UNITS.perSecond,
          queries: [{ expr: q.wsSlowReaderDrops(), legend: '{{instance}}' }],
          w: 8,
        }),
      )
      .withPanel(
        latency({
          title: 'Connection lifetime',
          description: 'How long WebSocket connections stay open (p50 and p95), from http_server_stream_duration_seconds of the gateway.',
          queries: [
            { expr: q.wsConnectionDuration(0.5), legend: 'p50' },
            { expr: q.wsConnectionDuration(0.95), legend: 'p95' },
          ],
        }),
      )
      .withPanel(
        timeseries({
          title: 'Sessions denied (4403)',
          description:
            'WebSocket connections closed per second with 4403 because the session belongs to another user. A steady rate suggests a client bug or session-id probing.',
          unit: UNITS.perSecond,
          queries: [{ expr: q.wsSessionDenied(), legend: 'denied' }],
        }),
      )
      .withRow(new RowBuilder('Turns'))
      .withPanel(
        latency({
          title: 'Turn time to first token',
          description:
            'Time from a user_message frame to the first token frame sent back, as the IDE sees it (p50, p95, p99). Exemplars open the turn’s trace.',
          queries: [
            { expr: q.turnTimeToFirstToken(0.5), legend: 'p50' },
            { expr: q.turnTimeToFirstToken(0.95), legend: 'p95' },
            { expr: q.turnTimeToFirstToken(0.99), legend: 'p99' },
          ],
          w: 8,
        }),
      )
      .withPanel(
        latency({
          title: 'Turn duration p95 by outcome',
          description: '95th percentile of the time from an inbound frame to the final frame of its turn, over all turns and by outcome.',
          queries: [
            { expr: q.turnDuration(0.95), legend: 'all' },
            { expr: q.turnDurationByOutcome(0.95), legend: '{{outcome}}' },
          ],
          w: 8,
        }),
      )
      .withPanel(
        timeseries({
          title: 'Turns by outcome',
          description: 'Turns finished per second, by outcome.',
          unit: UNITS.perSecond,
          queries: [{ expr: q.turnsByOutcome(), legend: '{{outcome}}' }],
          w: 8,
        }),
      )
      .withRow(new RowBuilder('REST API'))
      .withPanel(
        timeseries({
          title: 'REST API requests by status',
          description: 'Requests per second to the REST API (/api/v1/…, what the REST SLOs cover), by status code.',
          unit: UNITS.reqps,
          queries: [{ expr: q.restRequestsByStatus(), legend: '{{status_code}}' }],
          w: 8,
        }),
      )
      .withPanel(
        timeseries({
          title: 'REST API error ratio (5xx)',
          description: 'Share of REST API requests answered with a 5xx status (SLO rest-api-availability).',
          unit: UNITS.percentUnit,
          queries: [{ expr: q.restErrorRatio(), legend: '5xx' }],
          min: 0,
          w: 8,
        }),
      )
      .withPanel(
        latency({
          title: 'REST API latency',
          description:
            'REST API request latency (p50, p95, p99), from the request to the response sent (SLO rest-api-latency: 250 ms). Exemplars open the request’s trace.',
          queries: [
            { expr: q.restLatency(0.5), legend: 'p50' },
            { expr: q.restLatency(0.95), legend: 'p95' },
            { expr: q.restLatency(0.99), legend: 'p99' },
          ],
          w: 8,
        }),
      )
      .withRow(new RowBuilder('Authentication'))
      .withPanel(
        timeseries({
          title: 'JWT verifications by outcome',
          description:
            'Bearer token verifications per second by outcome (ok, missing, invalid, expired, not_yet_valid, unknown_kid, wrong_type, revoked, insufficient_scope, jwks_unavailable).',
          unit: UNITS.perSecond,
          queries: [{ expr: q.jwtVerificationsByOutcome(), legend: '{{outcome}}' }],
          w: 8,
        }),
      )
      .withPanel(
        timeseries({
          title: 'JWKS refreshes',
          description: 'Fetches of the auth service’s JWKS per second, by reason (initial, expired, unknown_kid) and outcome.',
          unit: UNITS.perSecond,
          queries: [{ expr: q.jwksRefreshes(), legend: '{{reason}} {{outcome}}' }],
          w: 8,
        }),
      )
      .withPanel(
        timeseries({
          title: 'Revocation polls',
          description:
            'Polls of the auth service’s revoked token families per second, by outcome. Errors mean revoked logins may stay usable until their access tokens expire.',
          unit: UNITS.perSecond,
          queries: [{ expr: q.revocationPolls(), legend: '{{outcome}}' }],
          w: 8,
        }),
      )
      .withPanel(
        stat({
          title: 'Cached JWKS keys',
          description: 'Signing keys in the gateway’s cached JWKS (two during a key rotation).',
          unit: UNITS.count,
          queries: [{ expr: q.jwksKeys(), legend: 'keys' }],
        }),
      )
      .withPanel(
        stat({
          title: 'Revoked token families',
          description: 'Token families (logins) the gateway currently refuses.',
          unit: UNITS.count,
          queries: [{ expr: q.revokedFamilies(), legend: 'families' }],
        }),
      )
      .withPanel(
        latency({
          title: 'Calls to auth and runtime p95',
          description: '95th percentile latency of the gateway’s calls to the auth service and the runtime, by peer and route.',
          queries: [{ expr: q.outboundLatencyP95(), legend: '{{peer}} {{route}}' }],
        }),
      ),
  );
}
