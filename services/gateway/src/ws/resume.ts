/**
 * What a client missed while it was away. With `?last_seq=N` on the WebSocket URL, or a
 * `{"type":"resume","last_seq":N}` frame, the session's frames after N are replayed from the
 * runtime's log (`GET /sessions/:id/frames?after=N`), followed by the live frames of a turn still
 * running, before any queued turn frame is processed; frames this connection already delivered
 * are not sent again. A connection without `last_seq` instead gets the tool calls still waiting
 * for approval re-sent (`tool_call`, `requires_approval`, `metadata.resent`).
 *
 * The gateway resumes for its client too (`followTurn`): when the runtime's turn stream breaks
 * before the turn's final frame, the frame log is followed from the last frame relayed, through
 * any runtime instance, up to the turn's final frame. A replay that ends or breaks in the middle of
 * a turn (its runtime died or shut down while following it) is followed the same way, so a client
 * that resumed a running turn still gets that turn's final frame. And when a turn's stream starts after frames
 * the client never got (a turn the gateway gave up on while the runtime finished it: a timeout, a
 * partition), those are replayed first (`until`), marked `metadata.replayed`, so a client can tell
 * them from the frames of the turn it just started.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { SpanStatusCode, context, type Span } from '@opentelemetry/api';
import { AppError } from '@codelab/service-kit';
import type { ResumeFrame, StreamChunk } from '@codelab/protocol';
import { gatewayErrors } from '../errors.ts';
import type { GatewayMetrics } from '../metrics.ts';
import type { RuntimeClient } from '../runtime-client.ts';
import type { Connection } from './connection.ts';
import { runtimeChunks, runtimeError } from './runtime-stream.ts';

/**
 * url: `?last_seq=`; frame: a `resume` frame; turn: the gateway's own, after a turn stream (or a
 * replay of a running turn) broke; gap: the gateway's own, frames missing before a turn's stream.
 */
type ResumeSource = 'url' | 'frame' | 'turn' | 'gap';
/** followed: the replay ended mid-turn and the turn was followed to its final frame (`followTurn`). */
type ResumeOutcome = 'ok' | 'followed' | 'not_found' | 'skipped' | 'failed' | 'client_gone';

/**
 * Replays the frames after `after`: `frame` is the resume frame that asked (none for `?last_seq=`);
 * with `until`, only the frames up to it (a gap before a turn's stream), marked `metadata.replayed`.
 * When the replay (not a gap's) ends or breaks after a frame of a turn that had not ended, the turn
 * is followed from there (`followTurn`) up to its final frame; when no runtime serves it, the
 * client's turn ends with GW_ERR_STREAM_INTERRUPTED, as a broken turn stream's does.
 */
export async function replayFrames(
  conn: Connection,
  runtime: RuntimeClient,
  metrics: GatewayMetrics,
  after: number,
  opts: { frame?: ResumeFrame; until?: number } = {},
): Promise<void> {
  const { frame, until } = opts;
  const source: ResumeSource = frame ? 'frame' : until !== undefined ? 'gap' : 'url';
  if (source !== 'gap') conn.knows(after);
  const { span, ctx } = frame
    ? conn.frameSpan(frame)
    : conn.startSpan('ws.resume', undefined, {
        'codelab.resume.after': after,
        ...(until !== undefined && { 'codelab.resume.until': until }),
      });
  let outcome: ResumeOutcome = 'ok';
  let sent = 0;
  await context.with(ctx, async () => {
    try {
      const sessionId = conn.sessionId;
      if (!sessionId) {
        outcome = 'skipped'; // a new_ path id whose session does not exist yet: nothing to replay
        return;
      }
      const res = await runtime.frames(sessionId, after, conn.userId, conn.closed.signal, until);
      if (res.statusCode === 404) {
        await res.body.dump();
        outcome = 'not_found'; // no frames were ever logged for this id: nothing was missed
        return;
      }
      if (res.statusCode >= 400) {
        const { detail } = runtimeError(await res.body.text());
        outcome = 'failed';
        conn.sendControlError(
          gatewayErrors.GW_ERR_RESUME_FAILED.code,
          `${gatewayErrors.GW_ERR_RESUME_FAILED.def.message}: the runtime answered ${res.statusCode}: ${detail}`,
        );
        return;
      }
      // the last numbered frame the replay carried (-1: none), and whether it ended its turn
      let lastSeq = -1;
      let lastFinal = false;
      let broke: unknown;
      conn.delivered.startRun();
      try {
        for await (const { chunk, raw } of runtimeChunks(res.body, conn.log)) {
          if (typeof chunk.seq === 'number') {
            lastSeq = chunk.seq;
            lastFinal = chunk.is_final === true;
            if (conn.delivered.has(chunk.seq)) continue;
          }
          if (source === 'gap') conn.send({ ...chunk, metadata: { ...chunk.metadata, replayed: true } });
          else conn.send(chunk, raw);
          sent++;
        }
      } catch (err) {
        broke = err;
      }
      if (conn.closed.signal.aborted) {
        outcome = 'client_gone';
        return;
      }
      if (source !== 'gap' && lastSeq >= 0 && !lastFinal) {
        // the replay stopped inside a running turn: its runtime died or shut down while following it
        conn.log.warn(
          { err: broke === undefined ? undefined : { message: (broke as Error).message }, last_seq: lastSeq },
          'replay stopped before the final frame of a running turn; following the frame log',
        );
        span.addEvent('replay stopped mid-turn', { 'codelab.frame.seq': lastSeq });
        const end = await followTurn(conn, runtime, metrics, sessionId, lastSeq, span);
        if (end) outcome = 'followed';
        else if (conn.closed.signal.aborted) outcome = 'client_gone';
        else {
          outcome = 'failed';
          conn.sendError(gatewayErrors.GW_ERR_STREAM_INTERRUPTED.code, gatewayErrors.GW_ERR_STREAM_INTERRUPTED.def.message);
        }
        return;
      }
      if (broke !== undefined) throw broke;
    } catch (err) {
      if (conn.closed.signal.aborted) {
        outcome = 'client_gone';
        return;
      }
      outcome = 'failed';
      const message = err instanceof AppError ? err.message : (err as Error).message;
      span.recordException(err as Error);
      conn.sendControlError(gatewayErrors.GW_ERR_RESUME_FAILED.code, `${gatewayErrors.GW_ERR_RESUME_FAILED.def.message}: ${message}`);
    } finally {
      if (outcome === 'failed') span.setStatus({ code: SpanStatusCode.ERROR, message: outcome });
      span.setAttributes({ 'codelab.resume.outcome': outcome, 'codelab.resume.frames': sent });
      span.end();
      metrics.resumes.inc({ source, outcome });
      if (sent > 0) metrics.resumedFrames.inc(sent);
      conn.log.info({ after, until, frames: sent, outcome, source }, 'frames replayed');
    }
  });
}

/**
 * After the runtime's stream of a turn broke before its final frame: follows the session's frame
 * log from `after` (the last frame relayed) through the runtime, on whichever instance answers,
 * relaying what this connection has not delivered, until the turn's final frame: its real one, or
 * RT_ERR_TURN_INTERRUPTED when its runtime died (sent once its lease lapses). While no runtime
 * answers, it retries with back-off for up to the runtime client's stream timeout
 * (GATEWAY__AGENT_STREAM_TIMEOUT) since the last answer. Answers the final frame relayed, or
 * undefined (the caller then sends GW_ERR_STREAM_INTERRUPTED).
 */
export async function followTurn(
  conn: Connection,
  runtime: RuntimeClient,
  metrics: GatewayMetrics,
  sessionId: string,
  after: number,
  span: Span,
): Promise<StreamChunk | undefined> {
  const signal = conn.closed.signal;
  let last = after;
  let final: StreamChunk | undefined;
  let sent = 0;
  let attempts = 0;
  let cleanEnds = 0;
  let delay = 100;
  let giveUpAt = performance.now() + runtime.streamIdleTimeoutMs;
  while (!final && !signal.aborted && performance.now() < giveUpAt) {
    attempts++;
    try {
      const res = await runtime.frames(sessionId, last, conn.userId, signal);
      giveUpAt = performance.now() + runtime.streamIdleTimeoutMs;
      if (res.statusCode >= 400 && res.statusCode < 500) {
        await res.body.dump();
        break; // the session is gone: nothing will come
      }
      if (res.statusCode < 400) {
        conn.delivered.startRun();
        for await (const { chunk, raw } of runtimeChunks(res.body, conn.log)) {
          if (typeof chunk.seq === 'number') last = Math.max(last, chunk.seq);
          if (typeof chunk.seq === 'number' && conn.delivered.has(chunk.seq)) continue;
          conn.send(chunk, raw);
          sent++;
          if (chunk.is_final) {
            final = chunk;
            break;
          }
        }
        // the follow ended without the turn's end: nothing more comes, or that runtime was cut at
        // shutdown; one more follow (perhaps on another instance) tells which
        if (!final && ++cleanEnds >= 2) break;
      } else await res.body.dump(); // a runtime draining or failing: another attempt may reach another one
    } catch (err) {
      if (signal.aborted) break;
      conn.log.info(
        { err: { message: (err as Error).message }, attempt: attempts },
        'no runtime answered the frame log follow yet; retrying',
      );
    }
    if (final || signal.aborted) break;
    await sleep(delay, undefined, { signal }).catch(() => undefined);
    delay = Math.min(delay * 2, 2000);
  }
  const outcome = final ? 'ok' : signal.aborted ? 'client_gone' : 'failed';
  metrics.resumes.inc({ source: 'turn', outcome });
  if (sent > 0) metrics.resumedFrames.inc(sent);
  span.setAttributes({ 'codelab.resume.outcome': outcome, 'codelab.resume.frames': sent, 'codelab.resume.attempts': attempts });
  conn.log.info(
    { after, frames: sent, attempts, outcome, source: 'turn', final_code: final?.code },
    'turn followed through the frame log after its stream broke',
  );
  return final;
}

/** Re-sends the session's pending approvals as `tool_call` frames; failures are only logged (the client asked for nothing). */
export async function resendPendingApprovals(conn: Connection, runtime: RuntimeClient, metrics: GatewayMetrics): Promise<void> {
  const sessionId = conn.sessionId;
  if (!sessionId) return;
  try {
    const { statusCode, body } = await runtime.pendingApprovals(sessionId, conn.userId, conn.closed.signal);
    if (statusCode === 404) return;
    if (statusCode !== 200) {
      conn.log.warn({ status_code: statusCode }, 'pending approvals could not be read; none re-sent');
      return;
    }
    let resent = 0;
    for (const a of body?.pending_approvals ?? []) {
      const callId = a.call_id ?? a.request_id;
      if (!callId) continue;
      conn.send({
        type: 'tool_call',
        call_id: callId,
        tool_name: a.tool_name ?? a.subject ?? '',
        arguments: a.arguments ?? a.details?.arguments ?? {},
        requires_approval: true,
        is_final: true,
        metadata: { resent: true },
      });
      resent++;
    }
    if (resent > 0) {
      metrics.approvalsResent.inc(resent);
      conn.log.info({ count: resent }, 'pending approvals re-sent');
    }
  } catch (err) {
    if (!conn.closed.signal.aborted)
      conn.log.warn({ err: { message: (err as Error).message } }, 'pending approvals could not be read; none re-sent');
  }
}
