/** The gateway → runtime internal contract (upstream §4). */
import type { TurnFrame } from './ws-frames.ts';

/**
 * Who the gateway is calling for (the JWT `sub`), on every gateway → runtime call. Trusted only
 * because the internal key authenticates the gateway; absent when authentication is off.
 */
export const CALLER_HEADER = 'x-codelab-user';

/** Whom a call is made for: the JWT `sub` (the `CALLER_HEADER` value), or undefined when authentication is off. */
export type Caller = string | undefined;

/** Session ids the gateway and the runtime accept (and the database column holds). */
export const SESSION_ID_PATTERN = '^[A-Za-z0-9._:-]{1,128}$';

export interface AgentStreamRequest {
  /** Absent with `new_session`: the runtime creates the session and says its id in `session_info`. */
  session_id?: string;
  /** The path id was `new_…`: create a session for the caller (upstream's auto-session). */
  new_session?: boolean;
  /** The IDE frame, as received (validated by the gateway). */
  message: TurnFrame;
}

/**
 * Runtime endpoints beyond the stream (all behind the internal key and the caller header):
 * - `GET /sessions/:id/frames?after=<seq>`: SSE of the session's logged frames with a greater seq,
 *   then, while a turn runs, its live frames until the turn's final frame; then the stream ends.
 * - `POST /sessions/:id/cancel`: stops the session's running turn, on whichever instance runs it;
 *   answers `CancelResult`. The turn's own stream carries its final (cancelled) frame.
 */
export interface CancelResult {
  cancelled: boolean;
}

/** `GET /sessions/:id/access`: may the caller use this session id? */
export interface SessionAccess {
  exists: boolean;
  allowed: boolean;
}

export interface SessionSummary {
  id: string;
  title: string | null;
  message_count: number;
  last_activity: string;
  is_active: boolean;
  current_agent: string | null;
}

export interface HistoryMessage {
  role: 'user' | 'assistant' | 'system' | 'tool';
  content: string;
  name?: string;
  tool_call_id?: string;
  tool_calls?: unknown[];
  seq?: number;
  created_at?: string;
}

/**
 * An entry of `GET /sessions/:id/pending-approvals` (upstream §3): a tool call waiting for the
 * user's decision. The legacy aliases are upstream's too: call_id = request_id,
 * tool_name = subject, arguments = details.arguments.
 */
export interface PendingApproval {
  request_id: string;
  /** Upstream also knew `plan` approvals; this runtime asks only about tool calls. */
  request_type: 'tool' | 'plan';
  subject: string;
  details: { arguments: Record<string, unknown> };
  reason: string | null;
  created_at: string;
  call_id: string;
  tool_name: string;
  arguments: Record<string, unknown>;
  /** When the approval expires (the call is then rejected); null: never. */
  expires_at: string | null;
}

/** `GET /sessions/:id/pending-approvals`: oldest first. */
export interface PendingApprovalList {
  session_id: string;
  pending_approvals: PendingApproval[];
  count: number;
}

/**
 * The audit log's entry types (`GET /events/audit-log?event_type=`, upstream's AuditLogger) and
 * the runtime event each is read from (upstream's EventType values, reference §4.2).
 */
export const AUDIT_EVENT_TYPES = {
  agent_switched: 'agent.switched',
  hitl_decision_made: 'hitl.decision.made',
  agent_error: 'agent.error.occurred',
  tool_execution_failed: 'tool.execution.failed',
  tool_approval_required: 'tool.approval.required',
} as const;

export type AuditEventType = keyof typeof AUDIT_EVENT_TYPES;

/** The audit log's entry types, in order (a schema's `enum`). */
export const AUDIT_EVENT_TYPE_NAMES = Object.keys(AUDIT_EVENT_TYPES) as readonly AuditEventType[];
