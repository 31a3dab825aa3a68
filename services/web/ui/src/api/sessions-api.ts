/** The gateway's sessions API: list, create, history, pending approvals (shapes as the runtime answers). */
import { gatewayJson } from './http.ts';

interface SessionSummary {
  /** The runtime answers `id`; upstream clients knew `session_id`: either may come. */
  id?: string;
  session_id?: string;
  title?: string | null;
  created_at?: string;
  last_activity?: string;
  message_count?: number;
  is_active?: boolean;
  current_agent?: string | null;
}

interface SessionPage {
  sessions: SessionSummary[];
  total?: number;
  limit?: number;
  offset?: number;
}

interface HistoryToolCall {
  id: string;
  type?: string;
  function?: { name?: string; arguments?: unknown };
}

interface HistoryMessage {
  role: 'user' | 'assistant' | 'system' | 'tool';
  content: string | null;
  name?: string;
  tool_call_id?: string;
  tool_calls?: HistoryToolCall[] | null;
  seq?: number;
  created_at?: string;
}

interface AgentSwitchRecord {
  from_agent: string | null;
  to_agent: string;
  reason?: string | null;
  switched_at?: string;
  confidence?: string | number | null;
}

export interface SessionHistory {
  session_id?: string;
  messages: HistoryMessage[];
  agent_history?: AgentSwitchRecord[];
  current_agent?: string | null;
}

export interface PendingApproval {
  call_id: string;
  tool_name: string;
  arguments: Record<string, unknown>;
  reason?: string | null;
  created_at?: string;
  expires_at?: string | null;
}

export const sessionIdOf = (s: SessionSummary): string => s.session_id ?? s.id ?? '';

export function listSessions(offset: number, limit: number): Promise<SessionPage> {
  return gatewayJson(`/api/v1/sessions?limit=${limit}&offset=${offset}&active_only=false`);
}

export function createSession(): Promise<SessionSummary> {
  return gatewayJson('/api/v1/sessions', { method: 'POST', body: {} });
}

export function sessionHistory(id: string): Promise<SessionHistory> {
  return gatewayJson(`/api/v1/sessions/${encodeURIComponent(id)}/history`);
}

export function pendingApprovals(id: string): Promise<{ pending_approvals: PendingApproval[]; count?: number }> {
  return gatewayJson(`/api/v1/sessions/${encodeURIComponent(id)}/pending-approvals`);
}
