/** The gateway's admin reports (`api:admin`): event metrics, the audit log and the event bus statistics. */
import { gatewayJson } from './http.ts';

interface EventMetrics {
  metrics: Record<string, Record<string, unknown>>;
  computed: Record<string, number>;
  timestamp?: string;
}

export type AuditEntry = { timestamp: string; event_type: string; event_id?: string; session_id: string | null } & Record<string, unknown>;

export interface AuditFilters {
  sessionId: string;
  eventType: string;
  limit: number;
}

/** The audit log's entry types (the runtime's enum). */
export const AUDIT_EVENT_TYPES = ['agent_switched', 'hitl_decision_made', 'agent_error', 'tool_execution_failed', 'tool_approval_required'];

export function eventMetrics(): Promise<EventMetrics> {
  return gatewayJson('/api/v1/events/metrics');
}

export function eventStats(): Promise<Record<string, unknown>> {
  return gatewayJson('/api/v1/events/stats');
}

export function auditLog(filters: AuditFilters): Promise<{ audit_log: AuditEntry[]; count?: number }> {
  const query = new URLSearchParams({ limit: String(filters.limit) });
  if (filters.sessionId.trim()) query.set('session_id', filters.sessionId.trim());
  if (filters.eventType) query.set('event_type', filters.eventType);
  return gatewayJson(`/api/v1/events/audit-log?${query}`);
}
