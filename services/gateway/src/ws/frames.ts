/**
 * Parsing and validation of inbound IDE frames. Lenient where upstream was needlessly strict
 * (a missing `role` defaults to "user", `switch_agent` needs no `content`, decisions are
 * case-insensitive); every problem becomes a clear message and the connection stays usable.
 * Besides upstream's turn frames, the control frames `cancel`, `ping` and `resume` (ours).
 */
import { CONTROL_FRAME_TYPES, INBOUND_FRAME_TYPES, type ControlFrame, type InboundFrame } from '@codelab/protocol';
import type { ErrorFactory } from '@codelab/service-kit';
import { gatewayErrors } from '../errors.ts';

export type ParsedFrame = { ok: true; frame: InboundFrame } | { ok: false; error: ErrorFactory; message: string; type?: string };

const ROLES = new Set(['user', 'assistant', 'system', 'tool']);
const DECISIONS = new Set(['approve', 'edit', 'reject']);

function invalid(type: string, message: string): ParsedFrame {
  return { ok: false, error: gatewayErrors.GW_ERR_WS_INVALID_FRAME, message: `Invalid ${type} message: ${message}`, type };
}

const isString = (v: unknown): v is string => typeof v === 'string';

const CONTROL = new Set<string>(CONTROL_FRAME_TYPES);
/** Control frames are answered at once, even while a turn runs; turn frames wait their turn. */
export const isControlFrame = (frame: InboundFrame): frame is ControlFrame => CONTROL.has(frame.type);
export const isControlType = (type: string): boolean => CONTROL.has(type);

export function parseFrame(text: string): ParsedFrame {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    return { ok: false, error: gatewayErrors.GW_ERR_WS_INVALID_JSON, message: `Invalid JSON message: ${(err as Error).message}` };
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    return { ok: false, error: gatewayErrors.GW_ERR_WS_INVALID_JSON, message: 'Invalid JSON message: expected a JSON object' };
  }
  const f = raw as Record<string, unknown>;
  if (f.type === undefined) return { ok: false, error: gatewayErrors.GW_ERR_WS_INVALID_FRAME, message: 'Message type is required' };
  if (!isString(f.type) || !(INBOUND_FRAME_TYPES as readonly string[]).includes(f.type)) {
    return { ok: false, error: gatewayErrors.GW_ERR_WS_UNKNOWN_TYPE, message: `Unknown message type: ${String(f.type)}` };
  }
  if (f.traceparent !== undefined && !isString(f.traceparent)) return invalid(f.type, 'traceparent must be a string');
  switch (f.type) {
    case 'user_message': {
      if (!isString(f.content)) return invalid(f.type, 'field "content" is required and must be a string');
      if (f.content.trim() === '') return invalid(f.type, 'field "content" must not be empty');
      const role = f.role === undefined ? 'user' : f.role;
      if (!isString(role) || !ROLES.has(role)) return invalid(f.type, 'field "role" must be one of user, assistant, system, tool');
      if (f.agent_type !== undefined && !isString(f.agent_type)) return invalid(f.type, 'field "agent_type" must be a string');
      return { ok: true, frame: { ...f, type: 'user_message', content: f.content, role } as InboundFrame };
    }
    case 'tool_result':
      if (!isString(f.call_id) || f.call_id === '') return invalid(f.type, 'field "call_id" is required');
      if (f.error !== undefined && f.error !== null && !isString(f.error)) return invalid(f.type, 'field "error" must be a string');
      return { ok: true, frame: f as unknown as InboundFrame };
    case 'switch_agent':
      if (!isString(f.agent_type) || f.agent_type === '') return invalid(f.type, 'field "agent_type" is required');
      return { ok: true, frame: f as unknown as InboundFrame };
    case 'hitl_decision': {
      if (!isString(f.call_id) || f.call_id === '') return invalid(f.type, 'field "call_id" is required');
      const decision = isString(f.decision) ? f.decision.toLowerCase() : undefined;
      if (!decision || !DECISIONS.has(decision)) return invalid(f.type, 'field "decision" must be approve, edit or reject');
      return { ok: true, frame: { ...f, decision } as unknown as InboundFrame };
    }
    case 'cancel':
    case 'ping':
      return { ok: true, frame: f as unknown as InboundFrame };
    case 'resume':
      if (typeof f.last_seq !== 'number' || !Number.isSafeInteger(f.last_seq) || f.last_seq < 0) {
        return invalid(f.type, 'field "last_seq" is required and must be a non-negative integer');
      }
      return { ok: true, frame: f as unknown as InboundFrame };
    default:
      return { ok: false, error: gatewayErrors.GW_ERR_WS_UNKNOWN_TYPE, message: `Unknown message type: ${String(f.type)}` };
  }
}
