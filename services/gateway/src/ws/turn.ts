/**
 * One turn frame (`user_message`, `tool_result`, `switch_agent`, `hitl_decision`): forwarded to
 * the runtime's `/agent/message/stream`, and the chunks of its SSE answer relayed to the client as
 * the runtime wrote them (with their seq), token by token, up to the turn's final chunk.
 *
 * On a `new_…` path id the request asks the runtime to create the session (`new_session`, no
 * session id); the `session_info` chunk it answers first names the session, and every later call
 * of the connection uses that id. When the client goes away the gateway abandons its request; the
 * runtime finishes the turn and logs its frames for a later `resume`.
 *
 * When the runtime's stream breaks before the turn's final chunk (the runtime died, or the
 * connection to it), the gateway follows the session's frame log from the last frame it relayed
 * (`followTurn`), through any runtime instance, so the client still gets the turn's numbered
 * final frame (RT_ERR_TURN_INTERRUPTED when the runtime died); only when no runtime answers does
 * it send the unnumbered GW_ERR_STREAM_INTERRUPTED.
 *
 * A turn whose stream starts after frames this client never got (an earlier turn the gateway gave
 * up on, which the runtime finished all the same) first gets those replayed (`replayFrames` with
 * `until`), so the client's frame numbers stay whole on a connection that never dropped.
 */
import { SpanStatusCode, context } from '@opentelemetry/api';
import { AppError, ServiceMetrics, activeTraceIds } from '@codelab/service-kit';
import { type AgentStreamRequest, type StreamChunk, type TurnFrame, FRAME_SEQ_HEADER } from '@codelab/protocol';
import { gatewayErrors } from '../errors.ts';
import type { GatewayMetrics } from '../metrics.ts';
import type { RuntimeClient } from '../runtime-client.ts';
import type { Connection } from './connection.ts';
import { followTurn, replayFrames } from './resume.ts';
import { runtimeChunks, runtimeError } from './runtime-stream.ts';

/** The turn's outcome label as its final chunk tells it. */
function outcomeOf(chunk: StreamChunk): string {
  if (chunk.code === 'RT_ERR_TURN_INTERRUPTED') return 'interrupted';
  if (chunk.type === 'error') return 'error';
  if (chunk.metadata?.cancelled === true) return 'cancelled';
  return 'ok';
}

function headerSeq(value: string | string[] | undefined): number | undefined {
  const n = Number(Array.isArray(value) ? value[0] : value);
  return value !== undefined && Number.isSafeInteger(n) && n >= 0 ? n : undefined;
}

export async function runTurn(
  conn: Connection,
  runtime: RuntimeClient,
  metrics: GatewayMetrics,
  frame: TurnFrame,
  receivedAt: number,
): Promise<void> {
  const { traceparent: _tp, tracestate: _ts, ...message } = frame;
  const { span, ctx } = conn.frameSpan(frame);
  let outcome = 'ok';
  await context.with(ctx, async () => {
    try {
      const sessionId = conn.sessionId;
      const body: AgentStreamRequest = sessionId
        ? { session_id: sessionId, message: message as TurnFrame }
        : { new_session: true, message: message as TurnFrame };
      const res = await runtime.openTurn(body, conn.userId, conn.closed.signal);
      if (res.statusCode >= 400) {
        const { code, detail } = runtimeError(await res.body.text());
        outcome = 'agent_error';
        conn.sendError(code ?? gatewayErrors.GW_ERR_AGENT_ERROR.code, `Agent error: ${res.statusCode}: ${detail}`);
        return;
      }
      // the session's frame number before this turn: where to follow the log from if the stream breaks
      let lastSeq = headerSeq(res.headers[FRAME_SEQ_HEADER]);
      const known = conn.knownSeq;
      if (lastSeq !== undefined && known !== undefined && known < lastSeq && conn.sessionId)
        await replayFrames(conn, runtime, metrics, known, { until: lastSeq });
      let final = false;
      let firstToken = true;
      let broke: Error | undefined;
      conn.delivered.startRun();
      try {
        for await (const { chunk, raw } of runtimeChunks(res.body, conn.log)) {
          if (
            chunk.type === 'session_info' &&
            conn.autoSession &&
            !conn.sessionId &&
            typeof chunk.session_id === 'string' &&
            chunk.session_id !== ''
          ) {
            conn.adopt(chunk.session_id);
            span.setAttribute('codelab.session.id', chunk.session_id);
          }
          if (firstToken && chunk.token) {
            firstToken = false;
            ServiceMetrics.observe(metrics.timeToFirstToken, {}, (performance.now() - receivedAt) / 1000, activeTraceIds());
          }
          if (typeof chunk.seq === 'number') lastSeq = chunk.seq;
          conn.send(chunk, raw);
          if (chunk.is_final) {
            final = true;
            outcome = outcomeOf(chunk);
          } else if (chunk.type === 'error') outcome = 'error';
        }
      } catch (err) {
        // a client that left once it had the final frame leaves the turn's outcome as that frame
        // says (the stream's end may come after its last frame: over h2c in a later write)
        if (conn.closed.signal.aborted && !final) throw err;
        broke = err as Error;
      }
      if (final) return;
      if (conn.closed.signal.aborted) {
        outcome = 'client_gone';
        return;
      }
      // the stream ended before the turn's final frame: the runtime died, or the way to it
      conn.log.warn(
        { err: broke && { message: broke.message }, last_seq: lastSeq },
        'turn stream broke before its final frame; following the frame log',
      );
      span.addEvent('turn stream broke', { 'codelab.frame.seq': lastSeq ?? -1, ...(broke ? { 'exception.message': broke.message } : {}) });
      const session = conn.sessionId;
      const end =
        session !== undefined && lastSeq !== undefined ? await followTurn(conn, runtime, metrics, session, lastSeq, span) : undefined;
      span.setAttribute('codelab.turn.recovered', end !== undefined);
      if (end) outcome = outcomeOf(end);
      else if (!conn.closed.signal.aborted) {
        outcome = 'interrupted';
        conn.sendError(
          gatewayErrors.GW_ERR_STREAM_INTERRUPTED.code,
          broke ? `Streaming error: ${broke.message}` : gatewayErrors.GW_ERR_STREAM_INTERRUPTED.def.message,
        );
      } else outcome = 'client_gone';
    } catch (err) {
      if (conn.closed.signal.aborted) {
        outcome = 'client_gone';
        return;
      }
      outcome = 'error';
      const e = err instanceof AppError ? err : gatewayErrors.GW_ERR_STREAM_INTERRUPTED(`Streaming error: ${(err as Error).message}`);
      conn.log.warn({ err }, 'turn failed');
      span.recordException(err as Error);
      conn.sendError(e.code, e.message);
    } finally {
      if (outcome !== 'ok' && outcome !== 'cancelled') span.setStatus({ code: SpanStatusCode.ERROR, message: outcome });
      span.setAttribute('codelab.turn.outcome', outcome);
      span.end();
      metrics.turnDuration.observe({ outcome }, (performance.now() - receivedAt) / 1000);
    }
  });
}
