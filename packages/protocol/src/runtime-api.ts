/** The gateway → runtime internal contract (upstream §4). */
import type { TurnFrame } from './ws-frames.ts';

/**
 * Who the gateway is calling for (the JWT `sub`), on every gateway → runtime call. Trusted only
 * because the internal key authenticates the gateway; absent when authentication is off.
 */
export const CALLER_HEADER = 'x-codelab-user';

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
