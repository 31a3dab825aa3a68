/**
 * Frame accounting of a conversation over the gateway WebSocket, pure so that vitest checks it:
 * the `seq` of every numbered frame (consecutive per session: a jump is missed frames, a number
 * not above the last one is out of order), and what one turn (one inbound turn frame, up to the
 * frame with `is_final: true`) took: time to its first token, the gaps between tokens, its length.
 */

import type { StreamChunk } from '@codelab/protocol';

/** An outbound frame as the gateway sends it (null fields omitted): the protocol's chunk. */
export type Frame = StreamChunk;

export function parseFrame(data: unknown): Frame | undefined {
  if (typeof data !== 'string') return undefined;
  try {
    const value: unknown = JSON.parse(data);
    return value !== null && typeof value === 'object' && typeof (value as Frame).type === 'string' ? (value as Frame) : undefined;
  } catch {
    return undefined;
  }
}

export { SeqTracker } from '../../lib/conversation.ts';

export interface TurnResult {
  /** The frame with is_final: true; undefined when the turn timed out or the connection closed. */
  final: Frame | undefined;
  frames: Frame[];
  /** ms from the inbound frame to the first frame with a token (undefined: no token, e.g. a tool call). */
  timeToFirstToken: number | undefined;
  /** ms between consecutive token frames. */
  interTokenGaps: number[];
  /** ms from the inbound frame to the final frame (or to the give-up). */
  duration: number;
  /** Ended with an error frame, timed out, or lost its connection. */
  failed: boolean;
  /** Why it failed: the error code, `timeout` or `closed`. */
  reason: string | undefined;
}

/** One turn: started when its frame is sent; fed every frame until one is final. */
export class TurnRecorder {
  private readonly frames: Frame[] = [];
  private firstTokenAt: number | undefined;
  private lastTokenAt: number | undefined;
  private readonly gaps: number[] = [];
  private readonly startedAt: number;

  constructor(startedAt: number) {
    this.startedAt = startedAt;
  }

  /** Adds a frame received at `at` (ms); true when it ends the turn. */
  add(frame: Frame, at: number): boolean {
    this.frames.push(frame);
    if (typeof frame.token === 'string' && frame.token !== '') {
      if (this.firstTokenAt === undefined) this.firstTokenAt = at;
      else if (this.lastTokenAt !== undefined) this.gaps.push(at - this.lastTokenAt);
      this.lastTokenAt = at;
    }
    return frame.is_final === true;
  }

  /** The turn's outcome at `at` (ms); `gaveUp` when it ended without a final frame. */
  finish(at: number, gaveUp?: 'timeout' | 'closed'): TurnResult {
    const final = gaveUp ? undefined : this.frames[this.frames.length - 1];
    const errorFinal = final?.type === 'error';
    return {
      final,
      frames: this.frames,
      timeToFirstToken: this.firstTokenAt === undefined ? undefined : this.firstTokenAt - this.startedAt,
      interTokenGaps: this.gaps,
      duration: at - this.startedAt,
      failed: gaveUp !== undefined || errorFinal || final === undefined,
      reason: gaveUp ?? (errorFinal ? (final.code ?? 'error') : undefined),
    };
  }
}
