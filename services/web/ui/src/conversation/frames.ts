/** The gateway's WebSocket frames the console sends and receives (README "WebSocket frames"). */

export interface ServerFrame {
  type: 'assistant_message' | 'tool_call' | 'agent_switched' | 'session_info' | 'error' | 'cancel_ack' | 'pong' | 'done';
  content?: string;
  token?: string;
  is_final?: boolean;
  call_id?: string;
  tool_name?: string;
  arguments?: Record<string, unknown>;
  requires_approval?: boolean;
  error?: string;
  code?: string;
  metadata?: Record<string, unknown>;
  seq?: number;
  session_id?: string;
  from_agent?: string;
  to_agent?: string;
  reason?: string;
}

export type ClientFrame =
  | { type: 'user_message'; content: string }
  | { type: 'tool_result'; call_id: string; result?: string; error?: string }
  | {
      type: 'hitl_decision';
      call_id: string;
      decision: 'approve' | 'edit' | 'reject';
      modified_arguments?: Record<string, unknown>;
      feedback?: string;
    }
  | { type: 'cancel' }
  | { type: 'ping' };

/**
 * Whether a frame ends the turn this page is waiting for: the turn's one final frame. Late frames
 * of an earlier turn (`replayed`) and re-sent approvals (`resent`) end nothing of ours.
 */
export const endsTurn = (frame: ServerFrame): boolean =>
  frame.is_final === true && frame.metadata?.replayed !== true && frame.metadata?.resent !== true;

export function parseServerFrame(data: unknown): ServerFrame | undefined {
  if (typeof data !== 'string') return undefined;
  try {
    const frame = JSON.parse(data) as ServerFrame;
    return frame && typeof frame === 'object' && typeof frame.type === 'string' ? frame : undefined;
  } catch {
    return undefined;
  }
}
