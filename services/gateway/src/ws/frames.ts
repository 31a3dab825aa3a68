/**
 * Inbound IDE frames at the gateway: the rules are the protocol's (`parseInboundFrame`, the same
 * the runtime applies to a turn); here each kind of problem gets its error code, and the
 * connection stays usable. Besides upstream's turn frames, the control frames `cancel`, `ping`
 * and `resume` (ours).
 */
import { CONTROL_FRAME_TYPES, parseInboundFrame, type ControlFrame, type FrameProblemKind, type InboundFrame } from '@codelab/protocol';
import type { ErrorFactory } from '@codelab/service-kit';
import { gatewayErrors } from '../errors.ts';

export type ParsedFrame = { ok: true; frame: InboundFrame } | { ok: false; error: ErrorFactory; message: string; type?: string };

const ERROR_OF: Record<FrameProblemKind, ErrorFactory> = {
  invalid_json: gatewayErrors.GW_ERR_WS_INVALID_JSON,
  missing_type: gatewayErrors.GW_ERR_WS_INVALID_FRAME,
  unknown_type: gatewayErrors.GW_ERR_WS_UNKNOWN_TYPE,
  invalid_field: gatewayErrors.GW_ERR_WS_INVALID_FRAME,
};

const CONTROL = new Set<string>(CONTROL_FRAME_TYPES);
/** Control frames are answered at once, even while a turn runs; turn frames wait their turn. */
export const isControlFrame = (frame: InboundFrame): frame is ControlFrame => CONTROL.has(frame.type);
export const isControlType = (type: string): boolean => CONTROL.has(type);

export function parseFrame(text: string): ParsedFrame {
  const parsed = parseInboundFrame(text);
  if (parsed.ok) return parsed;
  const { kind, message, type } = parsed.problem;
  return { ok: false, error: ERROR_OF[kind], message, ...(type !== undefined ? { type } : {}) };
}
