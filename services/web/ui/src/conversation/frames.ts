/** The gateway's WebSocket frames the console sends and receives (README "WebSocket frames"). */

import type { InboundFrame, StreamChunk } from '@codelab/protocol';

/** What the gateway sends: the protocol's one frame contract (packages/protocol), type-only (no bundle cost). */
export type ServerFrame = StreamChunk;

/** What the console sends: the frames the gateway takes, as the protocol defines them. */
export type ClientFrame = InboundFrame;

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
