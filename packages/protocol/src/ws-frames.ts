/**
 * WebSocket frames between IDE clients and the gateway, compatible with the upstream CodeLab AI
 * Service (see shared/reference/upstream-protocol.md §2). Outbound frames omit null fields.
 */

export const INBOUND_FRAME_TYPES = ['user_message', 'tool_result', 'switch_agent', 'hitl_decision', 'cancel', 'ping', 'resume'] as const;
export type InboundFrameType = (typeof INBOUND_FRAME_TYPES)[number];
/** Inbound frames that are turns: the gateway forwards them to the runtime, in order. */
export const TURN_FRAME_TYPES = ['user_message', 'tool_result', 'switch_agent', 'hitl_decision'] as const;
/** Inbound frames the gateway answers at once, even while a turn runs: cancel, ping, resume. */
export const CONTROL_FRAME_TYPES = ['cancel', 'ping', 'resume'] as const;

/** Optional W3C trace context a client may put on any frame to join its own trace. */
export interface FrameTraceContext {
  traceparent?: string;
  tracestate?: string;
}

export interface UserMessageFrame extends FrameTraceContext {
  type: 'user_message';
  content: string;
  /** Upstream requires it; we default it to "user". */
  role?: 'user' | 'assistant' | 'system' | 'tool';
  agent_type?: string;
}

export interface ToolResultFrame extends FrameTraceContext {
  type: 'tool_result';
  call_id: string;
  result?: unknown;
  error?: string;
}

export interface SwitchAgentFrame extends FrameTraceContext {
  type: 'switch_agent';
  agent_type: string;
  content?: string;
  reason?: string;
}

export interface HitlDecisionFrame extends FrameTraceContext {
  type: 'hitl_decision';
  call_id: string;
  decision: 'approve' | 'edit' | 'reject';
  modified_arguments?: Record<string, unknown>;
  feedback?: string;
}

/**
 * Stops the turn running on this session: answered `cancel_ack` (a control answer, no seq) on the
 * connection that sent it, or an `error` GW_ERR_NOTHING_TO_CANCEL; the turn's own final frame
 * (`assistant_message`, `metadata.cancelled`) goes to every connection following the turn.
 */
export interface CancelFrame extends FrameTraceContext {
  type: 'cancel';
}

/** Application-level heartbeat: answered at once with `pong` (echoing `timestamp`). */
export interface PingFrame extends FrameTraceContext {
  type: 'ping';
  timestamp?: unknown;
}

/** Asks for the frames after `last_seq` (also `?last_seq=` on the WebSocket URL). */
export interface ResumeFrame extends FrameTraceContext {
  type: 'resume';
  last_seq: number;
}

export type TurnFrame = UserMessageFrame | ToolResultFrame | SwitchAgentFrame | HitlDecisionFrame;
export type ControlFrame = CancelFrame | PingFrame | ResumeFrame;
export type InboundFrame = TurnFrame | ControlFrame;

/**
 * Frames out. Turn frames (assistant_message, tool_call, agent_switched, session_info, and the
 * runtime's error) carry `seq`, and each turn ends with exactly one of them with `is_final: true`.
 * Control answers (pong, cancel_ack, and an error answering a control frame) carry neither `seq`
 * nor `is_final: true`: they end no turn. A gateway error standing for a turn frame the gateway
 * could not run (a bad frame, a full queue, the runtime refusing it or out of reach) has no `seq`
 * but `is_final: true`: it is that frame's answer.
 */
export const OUTBOUND_FRAME_TYPES = [
  'assistant_message',
  'tool_call',
  'agent_switched',
  'error',
  'done',
  'session_info',
  'pong',
  'cancel_ack',
] as const;
export type OutboundFrameType = (typeof OUTBOUND_FRAME_TYPES)[number];

/**
 * A chunk of a turn: what the runtime streams as SSE `data:` and the gateway sends to the IDE.
 * Upstream's StreamChunk fields; absent means null.
 */
export interface StreamChunk {
  type: OutboundFrameType;
  content?: string;
  token?: string;
  is_final?: boolean;
  call_id?: string;
  tool_name?: string;
  arguments?: Record<string, unknown>;
  requires_approval?: boolean;
  /** Upstream runtime errors carry the text here; gateway errors in `content`. We send both. */
  error?: string;
  /** Stable error code (ours; upstream has none). */
  code?: string;
  metadata?: Record<string, unknown>;
  /**
   * The frame's number in its session (every frame of a turn has one, increasing across turns):
   * a client that reconnects with the last one it saw gets what it missed.
   */
  seq?: number;
  /** session_info: the session's real id (for a `new_…` path id). */
  session_id?: string;
  /** agent_switched: also at top level (upstream has them only in `metadata`). */
  from_agent?: string;
  to_agent?: string;
  reason?: string;
  confidence?: string;
}

/**
 * Response header of the runtime's turn stream: the session's frame number before the turn's
 * first frame. A gateway whose stream breaks follows the frame log from there (or from the last
 * frame it relayed) to give its client the turn's final frame.
 */
export const FRAME_SEQ_HEADER = 'x-codelab-frame-seq';

/** Drops null and undefined fields (upstream clients expect absent rather than null). */
export function withoutNulls<T extends object>(chunk: T): T {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(chunk)) if (v !== null && v !== undefined) out[k] = v;
  return out as T;
}

/** WebSocket close codes the gateway uses. */
export const WS_CLOSE = {
  NORMAL: 1000,
  GOING_AWAY: 1001,
  MESSAGE_TOO_BIG: 1009,
  INTERNAL_ERROR: 1011,
  /** The client reads too slowly: more than GATEWAY__WS_MAX_BUFFERED_BYTES wait to be sent. */
  SLOW_READER: 4008,
  UNAUTHORIZED: 4401,
  FORBIDDEN: 4403,
} as const;
