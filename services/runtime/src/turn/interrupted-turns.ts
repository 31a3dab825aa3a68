/**
 * Turns whose runtime stopped before their final frame (killed, crashed, cut from the database).
 * Every turn ends with exactly one final frame for every client following it, so such a turn is
 * closed with ONE numbered final frame, `error` with code RT_ERR_TURN_INTERRUPTED, the same on
 * every instance and for every follower:
 *
 * - It is found from the session lease: a turn lease that lapsed was never released. The first
 *   to find it settles it with one conditional UPDATE (one winner across instances): the next
 *   lease taker of the session (`closeTakenOver`, before the next turn's own frames) or a client
 *   following the session (`settle`, on any instance, through the frames route).
 * - Its frame is appended with `appendOnce` (atomic in Redis): whoever comes late, or finds the
 *   closer died before appending, appends the same frame, which the log then keeps once.
 * - The closer first claims the log with its own fencing token (frame-log.ts): should the turn's
 *   runtime only have been paused, the frames it still tries to add are refused.
 * - Without Redis the frame log dies with its process; the row still says the turn was closed
 *   (no owner, a `lease_until`) and which number its frame has, so a follower after a restart gets
 *   the same frame. Frames the log no longer has are answered with one RT_ERR_FRAMES_LOST notice.
 *
 * The partial answer is not stored (the answer is stored when complete); the frames already sent
 * stay in the log, and the closing frame says that they were not saved. The user's message stays.
 */
import { trace } from '@opentelemetry/api';
import type { Logger } from 'pino';
import { runtimeErrors } from '../errors.ts';
import type { RuntimeMetrics } from '../metrics.ts';
import type { FrameLog, LoggedFrame, LogTail, Settle } from './frame-log.ts';
import type { Lease, SessionLeases, TakenOver } from './session-lease.ts';

type DetectedBy = 'follower' | 'next_lease';

/** The final frame of an interrupted turn: the same for every closer, so that a log keeps it once. */
export function interruptedFrame(seq: number): LoggedFrame {
  const { code, def } = runtimeErrors.RT_ERR_TURN_INTERRUPTED;
  const chunk = { type: 'error', error: def.message, content: def.message, code, is_final: true, metadata: { interrupted: true }, seq };
  return { seq, data: JSON.stringify(chunk), final: true };
}

/** For one follower whose frames after `after` are gone: numbered as the session's last frame. */
export function framesLostFrame(seq: number, after: number): LoggedFrame {
  const { code, def } = runtimeErrors.RT_ERR_FRAMES_LOST;
  const text = `${def.message} (frames ${after + 1} to ${seq})`;
  const chunk = { type: 'error', error: text, content: text, code, is_final: true, metadata: { frames_lost: true }, seq };
  return { seq, data: JSON.stringify(chunk), final: true, synthetic: true };
}

export class InterruptedTurns {
  /** How often a follower looks again while a turn holds the session but is not flagged running. */
  readonly pollMs: number;
  private readonly deps: { leases: SessionLeases; frameLog: FrameLog; metrics: RuntimeMetrics; logger: Logger; leaseTtlMs: number };

  constructor(deps: { leases: SessionLeases; frameLog: FrameLog; metrics: RuntimeMetrics; logger: Logger; leaseTtlMs: number }) {
    this.deps = deps;
    this.pollMs = Math.min(1000, Math.max(50, deps.leaseTtlMs / 4));
  }

  /** The session's frames after `after`, live while a turn runs, and the closing frame of a turn whose runtime died. */
  follow(sessionId: string, after: number, signal: AbortSignal): AsyncGenerator<LoggedFrame> {
    return this.deps.frameLog.follow(sessionId, after, signal, this.settle(sessionId, after), this.pollMs);
  }

  /**
   * SessionLeases' hook: a lease taker found a lapsed turn lease (or a turn closed by a follower).
   * Answers the session's last frame number once that turn is closed.
   */
  async closeTakenOver(sessionId: string, prev: TakenOver): Promise<number> {
    await this.claim(sessionId, prev.token);
    const tail = await this.deps.frameLog.tail(sessionId).catch(() => undefined);
    const tailSeq = tail?.seq ?? 0;
    if (prev.alreadyClosed) {
      if (tailSeq < prev.frameSeq) await this.append(sessionId, prev.frameSeq);
      return Math.max(prev.frameSeq, tailSeq);
    }
    // its final frame is in the log: the turn ended, only its release did not happen
    if (tail?.final && tail.seq > prev.turnBase) return tail.seq;
    const seq = Math.max(prev.frameSeq, tailSeq) + 1;
    this.found(sessionId, seq, 'next_lease', tailSeq);
    await this.append(sessionId, seq);
    return seq;
  }

  /**
   * Before a turn's first frame, under its lease: the number its frames follow. A log that stops
   * in the middle of a turn (whose final frame was lost) is closed first.
   */
  async beforeTurn(sessionId: string, lease: Lease): Promise<number> {
    const tail = await this.deps.frameLog.tail(sessionId);
    let base = Math.max(lease.session.frame_seq, tail?.seq ?? 0);
    if ((tail?.seq ?? 0) === lease.session.frame_seq - 1) {
      // the last turn ended (its commit freed the session) but its final frame is not logged yet
      await this.appendStoredFinal(sessionId, lease.session.frame_seq);
    } else if (tail && !tail.final && !behindRelease(tail, lease.session.frame_seq)) {
      base += 1;
      if (await this.append(sessionId, base)) this.found(sessionId, base, 'next_lease', tail.seq);
    }
    if (base !== lease.session.frame_seq) await lease.rebase(base);
    return base;
  }

  /** What a follower of `sessionId` (from `after`) does once no turn is flagged running. */
  settle(sessionId: string, after: number): Settle {
    return async (tail: LogTail | undefined) => {
      const state = await this.deps.leases.inspect(sessionId);
      if (!state) return 'end';
      const tailSeq = tail?.seq ?? 0;
      if (state.turn) {
        if (!state.turn.lapsed) return 'wait'; // a turn holds the session (starting, or running elsewhere)
        const ended = tail?.final === true && tail.seq > state.turn.base;
        const seq = ended ? tailSeq : Math.max(state.frameSeq, tailSeq) + 1;
        const token = await this.deps.leases.settleLapsed(sessionId, state.owner!, { interrupted: !ended, frameSeq: seq });
        if (token) {
          await this.claim(sessionId, token);
          if (!ended) {
            this.found(sessionId, seq, 'follower', tailSeq);
            return (await this.append(sessionId, seq)) ? 'again' : 'wait';
          }
        }
        return 'again'; // settled, by this follower or another one: read on
      }
      // no turn holds the session
      if (state.closedInterrupted && tailSeq < state.frameSeq) {
        // closed, but its frame is not in this log (the closer died first; the memory log restarted)
        return (await this.append(sessionId, state.frameSeq)) !== undefined ? 'again' : 'wait';
      }
      // the last turn ended (its commit freed the session) but its runtime died before logging its final frame
      if (tailSeq === state.frameSeq - 1 && (await this.appendStoredFinal(sessionId, state.frameSeq)) !== undefined) return 'again';
      if (tail && !tail.final && !behindRelease(tail, state.frameSeq)) {
        // the log stops in the middle of a turn that holds no lease: its final frame was lost
        const seq = Math.max(state.frameSeq, tail.seq) + 1;
        const added = await this.append(sessionId, seq);
        if (added) this.found(sessionId, seq, 'follower', tail.seq);
        return added !== undefined ? 'again' : 'wait';
      }
      if (after < state.frameSeq && tailSeq < state.frameSeq) {
        this.deps.logger.info(
          { session_id: sessionId, after, frame_seq: state.frameSeq, logged: tailSeq },
          'frames after last_seq are no longer logged; the follower gets RT_ERR_FRAMES_LOST',
        );
        return framesLostFrame(state.frameSeq, after);
      }
      return 'end';
    };
  }

  /** Fences the log off from the lapsed turn (a failure is logged: only that turn's late frames could then still come). */
  private async claim(sessionId: string, token: string): Promise<void> {
    try {
      await this.deps.frameLog.claim(sessionId, token);
    } catch (err) {
      this.deps.metrics.frameLogErrors.inc();
      const message = (err as Error).message;
      this.deps.logger.warn({ err: { message }, session_id: sessionId }, 'the frame log could not be fenced off from an interrupted turn');
    }
  }

  /**
   * Appends the final frame the session's row keeps for frame `seq` (a turn's end: TurnContext.end),
   * once; undefined when the row keeps none for it or the log could not be written.
   */
  private async appendStoredFinal(sessionId: string, seq: number): Promise<boolean | undefined> {
    try {
      const data = await this.deps.leases.finalFrame(sessionId, seq);
      if (data === undefined) return undefined;
      return await this.deps.frameLog.appendOnce(sessionId, { seq, data, final: true });
    } catch (err) {
      this.deps.metrics.frameLogErrors.inc();
      this.deps.logger.warn(
        { err: { message: (err as Error).message }, session_id: sessionId, seq },
        'the stored final frame of the last turn could not be logged; the next follower retries',
      );
      return undefined;
    }
  }

  /** Appends the closing frame with `seq` (once); undefined when the log could not be written. */
  private async append(sessionId: string, seq: number): Promise<boolean | undefined> {
    try {
      return await this.deps.frameLog.appendOnce(sessionId, interruptedFrame(seq));
    } catch (err) {
      this.deps.metrics.frameLogErrors.inc();
      this.deps.logger.warn(
        { err: { message: (err as Error).message }, session_id: sessionId, seq },
        'the closing frame of an interrupted turn could not be logged; the next follower retries',
      );
      return undefined;
    }
  }

  private found(sessionId: string, seq: number, detectedBy: DetectedBy, lastLogged: number): void {
    this.deps.metrics.turnsInterrupted.inc({ detected_by: detectedBy });
    // on the span of the request that found it (a frames follow, or the next turn)
    trace.getActiveSpan()?.addEvent('turn interrupted', {
      'codelab.session.id': sessionId,
      'codelab.frame.seq': seq,
      'codelab.turn.interrupted_by': detectedBy,
    });
    this.deps.logger.warn(
      { session_id: sessionId, seq, detected_by: detectedBy, last_logged_seq: lastLogged },
      'turn interrupted: its runtime stopped before the final frame; closed with RT_ERR_TURN_INTERRUPTED',
    );
  }
}

/**
 * A log whose last frame is a turn's middle but lies behind the number the session's row keeps
 * (`frame_seq`, written when a turn releases its lease, with the number of its final frame) only
 * missed that turn's end: the log could not keep frames for a while (Redis away) while the turn
 * went on and ended normally, its caller receiving every frame live. Closing it as interrupted
 * would give a number to a frame its client never gets: a gap in what the client saw. A turn that
 * really died never released, so its frames lie after the row's number.
 */
function behindRelease(tail: LogTail, frameSeq: number): boolean {
  return tail.seq < frameSeq;
}
