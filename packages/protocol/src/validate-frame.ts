/**
 * The one rule set for inbound IDE frames (upstream-protocol.md §2), used by the gateway on every
 * WebSocket frame and by the runtime on every turn it is asked to run, so that a frame the gateway
 * lets through is one the runtime can run. Lenient where upstream was needlessly strict (a missing
 * `role` defaults to "user", `switch_agent` needs no `content`, decisions are case-insensitive),
 * strict where a frame could not be run (an `edit` decision needs `modified_arguments`).
 *
 * A problem says its kind; each service turns it into its own error: the gateway an `error` frame
 * (GW_ERR_WS_…), the runtime an HTTP 400 (RT_ERR_…, through `assertTurnFrame`).
 */
import { INBOUND_FRAME_TYPES, TURN_FRAME_TYPES, type InboundFrame, type TurnFrame } from './ws-frames.ts';

/**
 * - invalid_json: not JSON, or not a JSON object;
 * - missing_type: no `type` field;
 * - unknown_type: a `type` that names no inbound frame (for `validateTurnFrame`: no turn frame);
 * - invalid_field: a frame of a known type with a missing or malformed field.
 */
export type FrameProblemKind = 'invalid_json' | 'missing_type' | 'unknown_type' | 'invalid_field';

export interface FrameProblem {
  kind: FrameProblemKind;
  /** The frame's type, when it is a known one (the gateway answers a bad control frame as a control answer). */
  type?: string;
  /** What the IDE is told: "Invalid JSON message: …", "Unknown message type: x", "Invalid <type> message: …". */
  message: string;
  /** The runtime API's wording, where upstream's runtime had its own (§4: "Invalid HITL decision: x", "Unsupported message type: x"). */
  apiMessage?: string;
}

export type FrameValidation<F> = { ok: true; frame: F } | { ok: false; problem: FrameProblem };

const INBOUND = new Set<string>(INBOUND_FRAME_TYPES);
const TURN = new Set<string>(TURN_FRAME_TYPES);
const ROLES = new Set(['user', 'assistant', 'system', 'tool']);
const DECISIONS = new Set(['approve', 'edit', 'reject']);

const isString = (v: unknown): v is string => typeof v === 'string';
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function problem(
  kind: FrameProblemKind,
  message: string,
  more: { type?: string; apiMessage?: string } = {},
): { ok: false; problem: FrameProblem } {
  return { ok: false, problem: { kind, message, ...more } };
}

function invalid(type: string, message: string, apiMessage?: string): { ok: false; problem: FrameProblem } {
  return problem('invalid_field', `Invalid ${type} message: ${message}`, { type, ...(apiMessage ? { apiMessage } : {}) });
}

function unknownType(type: unknown): { ok: false; problem: FrameProblem } {
  return problem('unknown_type', `Unknown message type: ${String(type)}`, { apiMessage: `Unsupported message type: ${String(type)}` });
}

/** Parses and checks one WebSocket text frame. */
export function parseInboundFrame(text: string): FrameValidation<InboundFrame> {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    return problem('invalid_json', `Invalid JSON message: ${(err as Error).message}`);
  }
  return validateInboundFrame(raw);
}

/** Checks a decoded frame; the frame it returns is normalized (default `role`, lower-case `decision`), unknown fields kept. */
export function validateInboundFrame(raw: unknown): FrameValidation<InboundFrame> {
  if (!isObject(raw)) return problem('invalid_json', 'Invalid JSON message: expected a JSON object');
  const f = raw;
  if (f.type === undefined)
    return problem('missing_type', 'Message type is required', { apiMessage: 'Unsupported message type: undefined' });
  if (!isString(f.type) || !INBOUND.has(f.type)) return unknownType(f.type);
  if (f.traceparent !== undefined && !isString(f.traceparent)) return invalid(f.type, 'traceparent must be a string');
  const ok = (frame: object): FrameValidation<InboundFrame> => ({ ok: true, frame: frame as InboundFrame });
  switch (f.type) {
    case 'user_message': {
      if (!isString(f.content)) return invalid(f.type, 'field "content" is required and must be a string');
      if (f.content.trim() === '') return invalid(f.type, 'field "content" must not be empty');
      const role = f.role === undefined ? 'user' : f.role;
      if (!isString(role) || !ROLES.has(role)) return invalid(f.type, 'field "role" must be one of user, assistant, system, tool');
      if (f.agent_type !== undefined && !isString(f.agent_type)) return invalid(f.type, 'field "agent_type" must be a string');
      return ok({ ...f, role });
    }
    case 'tool_result':
      if (!isString(f.call_id) || f.call_id === '')
        return invalid(f.type, 'field "call_id" is required', 'call_id is required for tool_result message');
      if (f.error !== undefined && f.error !== null && !isString(f.error)) return invalid(f.type, 'field "error" must be a string');
      return ok(f);
    case 'switch_agent':
      if (!isString(f.agent_type) || f.agent_type === '')
        return invalid(f.type, 'field "agent_type" is required', 'agent_type is required for switch_agent message');
      return ok(f);
    case 'hitl_decision': {
      if (!isString(f.call_id) || f.call_id === '') {
        return invalid(f.type, 'field "call_id" is required', 'call_id and decision are required for hitl_decision message');
      }
      const decision = isString(f.decision) ? f.decision.toLowerCase() : undefined;
      if (!decision || !DECISIONS.has(decision)) {
        return invalid(f.type, 'field "decision" must be approve, edit or reject', `Invalid HITL decision: ${String(f.decision)}`);
      }
      if (decision === 'edit' && !isObject(f.modified_arguments)) {
        return invalid(f.type, 'field "modified_arguments" is required for an edit and must be a JSON object');
      }
      return ok({ ...f, decision });
    }
    case 'resume':
      if (typeof f.last_seq !== 'number' || !Number.isSafeInteger(f.last_seq) || f.last_seq < 0) {
        return invalid(f.type, 'field "last_seq" is required and must be a non-negative integer');
      }
      return ok(f);
    default: // cancel, ping: nothing to check
      return ok(f);
  }
}

/** `validateInboundFrame` for a frame that must be a turn (what the runtime runs): a control frame is an unknown type. */
export function validateTurnFrame(raw: unknown): FrameValidation<TurnFrame> {
  const checked = validateInboundFrame(raw);
  if (checked.ok && !TURN.has(checked.frame.type)) return unknownType(checked.frame.type);
  return checked as FrameValidation<TurnFrame>;
}

/** The errors `assertTurnFrame` throws, made by the caller's own error table. */
export interface TurnFrameErrors {
  /** A malformed frame or field. */
  invalid: (message: string) => Error;
  /** No type, or a type that is no turn frame. */
  unsupported: (message: string) => Error;
}

/** Throws the caller's error, in the runtime API's wording, unless `message` is a well-formed turn frame. */
export function assertTurnFrame(message: unknown, errors: TurnFrameErrors): asserts message is TurnFrame {
  const checked = validateTurnFrame(message);
  if (checked.ok) return;
  const { kind, message: text, apiMessage } = checked.problem;
  throw (kind === 'missing_type' || kind === 'unknown_type' ? errors.unsupported : errors.invalid)(apiMessage ?? text);
}
