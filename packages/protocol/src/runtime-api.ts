/** The gateway → runtime internal contract (upstream §4). */
import type { InboundFrame } from './ws-frames.ts';

export interface AgentStreamRequest {
  session_id: string;
  /** The IDE frame, as received (validated by the gateway). */
  message: InboundFrame;
  /** Who sent it (JWT `sub`), when the gateway authenticated the caller. */
  user_id?: string;
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
