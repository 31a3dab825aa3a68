/** The gateway → runtime internal contract (upstream §4). */
import type { InboundFrame } from './ws-frames.ts';

/**
 * Who the gateway is calling for (the JWT `sub`), on every gateway → runtime call. Trusted only
 * because the internal key authenticates the gateway; absent when authentication is off.
 */
export const CALLER_HEADER = 'x-codelab-user';

/** Session ids the gateway and the runtime accept (and the database column holds). */
export const SESSION_ID_PATTERN = '^[A-Za-z0-9._:-]{1,128}$';

export interface AgentStreamRequest {
  session_id: string;
  /** The IDE frame, as received (validated by the gateway). */
  message: InboundFrame;
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
