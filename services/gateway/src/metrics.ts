/**
 * Gateway metrics: WebSocket connections, frames by direction and type, close codes, queued frames,
 * heartbeats, resumes and cancels, turns as the client sees them, JWT checks.
 */
import { OPERATION_DURATION_BUCKETS, TTFT_BUCKETS, type ServiceMetrics } from '@codelab/service-kit';
import { INBOUND_FRAME_TYPES, OUTBOUND_FRAME_TYPES, WS_CLOSE } from '@codelab/protocol';

// Frame type label values: the protocol's types, plus `invalid` (unparseable), `binary` and `oversize`
// (over GATEWAY__WS_MAX_MESSAGE_BYTES); anything else is `other`.
const FRAME_TYPES = new Set<string>([...INBOUND_FRAME_TYPES, ...OUTBOUND_FRAME_TYPES, 'invalid', 'binary', 'oversize']);
const CLOSE_CODES = new Set<number>([...Object.values(WS_CLOSE), 1005, 1006]);

export function createGatewayMetrics(m: ServiceMetrics) {
  const messages = m.counter({
    name: 'gateway_ws_messages_total',
    help: 'WebSocket frames by direction (in, out) and frame type',
    labelNames: ['direction', 'type'],
  });
  const closes = m.counter({ name: 'gateway_ws_closes_total', help: 'WebSocket connections closed, by close code', labelNames: ['code'] });
  return {
    connections: m.gauge({ name: 'gateway_ws_connections', help: 'Open WebSocket connections' }),
    frame: (direction: 'in' | 'out', type: unknown): void => {
      messages.inc({ direction, type: typeof type === 'string' && FRAME_TYPES.has(type) ? type : 'other' });
    },
    closed: (code: number): void => closes.inc({ code: CLOSE_CODES.has(code) ? String(code) : 'other' }),
    timeToFirstToken: m.histogram({
      name: 'gateway_turn_time_to_first_token_seconds',
      help: 'Time from an inbound turn frame (user_message, tool_result, hitl_decision) to the first token frame sent back, as the client sees it',
      buckets: TTFT_BUCKETS,
      enableExemplars: true,
    }),
    turnDuration: m.histogram({
      name: 'gateway_turn_duration_seconds',
      help: 'Time from an inbound frame to the final frame of its turn, by outcome (ok, cancelled, error, agent_error, interrupted: the runtime died or its stream broke, client_gone)',
      labelNames: ['outcome'],
      buckets: OPERATION_DURATION_BUCKETS,
    }),
    jwtVerifications: m.counter({
      name: 'gateway_jwt_verifications_total',
      help: 'Bearer token verifications by outcome (ok, missing, invalid, expired, not_yet_valid, unknown_kid, wrong_type, revoked, insufficient_scope, jwks_unavailable)',
      labelNames: ['outcome'],
    }),
    jwksRefreshes: m.counter({
      name: 'gateway_jwks_refreshes_total',
      help: 'Fetches of the auth service JWKS by reason (initial, expired, unknown_kid) and outcome',
      labelNames: ['reason', 'outcome'],
    }),
    jwksKeys: m.gauge({ name: 'gateway_jwks_keys', help: 'Signing keys in the cached JWKS' }),
    revocationPolls: m.counter({
      name: 'gateway_token_revocation_polls_total',
      help: 'Polls of the revoked token families by outcome',
      labelNames: ['outcome'],
    }),
    revokedFamilies: m.gauge({ name: 'gateway_token_revoked_families', help: 'Token families (logins) currently revoked' }),
    slowReaderDrops: m.counter({
      name: 'gateway_ws_slow_reader_drops_total',
      help: 'WebSocket connections closed (4008) because the client read too slowly and the send buffer passed its limit',
    }),
    queuedFrames: m.gauge({
      name: 'gateway_ws_queued_frames',
      help: 'Inbound frames waiting behind a running turn, over every connection',
    }),
    framesQueued: m.counter({
      name: 'gateway_ws_frames_queued_total',
      help: 'Inbound frames that had to wait behind a running turn (or a replay) on their connection',
    }),
    queueFull: m.counter({
      name: 'gateway_ws_queue_full_total',
      help: 'Inbound frames refused (GW_ERR_WS_QUEUE_FULL) because GATEWAY__WS_MAX_QUEUED_FRAMES already waited on their connection',
    }),
    deadPeers: m.counter({
      name: 'gateway_ws_dead_peers_total',
      help: 'WebSocket connections terminated because the client answered no protocol ping within GATEWAY__WS_CLOSE_TIMEOUT',
    }),
    resumes: m.counter({
      name: 'gateway_ws_resumes_total',
      help: 'Replays of missed frames (source: url for ?last_seq=, frame for a resume frame, turn for the gateway following the frame log after a turn stream or a replay of a running turn broke, gap for frames missing before a turn stream) by outcome (ok, followed: a replay that stopped mid-turn and was followed to the end of the turn, not_found, skipped, failed, client_gone)',
      labelNames: ['source', 'outcome'],
    }),
    resumedFrames: m.counter({ name: 'gateway_ws_resumed_frames_total', help: 'Frames sent to clients by replays (resume)' }),
    cancels: m.counter({
      name: 'gateway_ws_cancels_total',
      help: 'cancel frames by outcome (cancelled: answered cancel_ack, nothing_running, failed)',
      labelNames: ['outcome'],
    }),
    approvalsResent: m.counter({
      name: 'gateway_ws_approvals_resent_total',
      help: 'Pending tool approvals re-sent as tool_call frames when a client connects',
    }),
    wsSessionDenied: m.counter({
      name: 'gateway_ws_session_denied_total',
      help: 'WebSocket connections closed with 4403 because the session belongs to another user',
    }),
  };
}

export type GatewayMetrics = ReturnType<typeof createGatewayMetrics>;
