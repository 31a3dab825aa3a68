/**
 * The catalog of durable events: upstream's event types (reference §4.2) and their categories, the
 * `data` the metrics and the audit log read from them, and the audit log's entry types (the
 * protocol's `AUDIT_EVENT_TYPES`, each read from one of these event types).
 */
import { AUDIT_EVENT_TYPES, type AuditEventType } from '@codelab/protocol';

/** Upstream's `EventType` values (reference §4.2). */
export const EVENT_TYPES = [
  'agent.switched',
  'agent.processing.started',
  'agent.processing.completed',
  'agent.error.occurred',
  'session.created',
  'session.updated',
  'session.deleted',
  'session.message.added',
  'tool.execution.requested',
  'tool.execution.started',
  'tool.execution.completed',
  'tool.execution.failed',
  'tool.approval.required',
  'hitl.approval.requested',
  'hitl.decision.made',
  'hitl.timeout.occurred',
  'approval.requested',
  'approval.approved',
  'approval.rejected',
  'system.startup',
  'system.shutdown',
  'llm.request.started',
  'llm.request.completed',
  'llm.request.failed',
] as const;

export type EventType = (typeof EVENT_TYPES)[number];
export const CATEGORIES = ['agent', 'session', 'tool', 'hitl', 'approval', 'system', 'metrics'] as const;
export type EventCategory = (typeof CATEGORIES)[number];

/**
 * The `data` of the events the metrics and the audit log read: these keys are what
 * `/events/metrics` groups by, so they are required. Other events take any object.
 */
export interface KnownEventData {
  'agent.switched': {
    from_agent: string | null;
    to_agent: string;
    reason: string | null;
    confidence: string | null;
    source?: 'routing' | 'user' | 'agent';
  };
  'agent.processing.completed': { agent: string; duration_ms: number; success: boolean };
  'agent.error.occurred': { agent: string; error_message: string; error_type: string };
  'tool.execution.requested': { tool_name: string; arguments: unknown; call_id: string; agent: string };
  'tool.execution.completed': { tool_name: string; call_id: string };
  'tool.execution.failed': { tool_name: string; call_id: string; error: string };
  'tool.approval.required': { tool_name: string; arguments: unknown; call_id: string; reason: string | null };
  /** decision in any case; counted as APPROVE, EDIT or REJECT. */
  'hitl.decision.made': { tool_name: string; call_id: string; decision: string };
}

export type EventData<T extends EventType> = (T extends keyof KnownEventData ? KnownEventData[T] : unknown) & Record<string, unknown>;

/** Upstream's category of an event type (`tool.approval.required` is a hitl event). */
export function categoryOf(type: EventType): EventCategory {
  if (type === 'tool.approval.required') return 'hitl';
  if (type.startsWith('llm.')) return 'metrics';
  const prefix = type.slice(0, type.indexOf('.'));
  return (CATEGORIES as readonly string[]).includes(prefix) ? (prefix as EventCategory) : 'system';
}

/** The audit log's entry types and the events they come from (upstream's AuditLogger): the protocol's. */
export { AUDIT_EVENT_TYPES, type AuditEventType };
/** Each entry type is read from one of our event types (checked here, where EVENT_TYPES lives). */
const AUDIT_SOURCES: Readonly<Record<AuditEventType, EventType>> = AUDIT_EVENT_TYPES;
const AUDIT_NAME_OF = new Map<string, AuditEventType>(Object.entries(AUDIT_SOURCES).map(([name, type]) => [type, name as AuditEventType]));

/** The audit entry type an event type is logged as (undefined: it is not audited). */
export function auditTypeOf(eventType: string): AuditEventType | undefined {
  return AUDIT_NAME_OF.get(eventType);
}
