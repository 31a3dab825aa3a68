/**
 * One turn frame (`user_message`, `tool_result`, `switch_agent`, `hitl_decision`): forwarded to
 * the runtime's `/agent/message/stream`, and the chunks of its SSE answer relayed to the client as
 * the runtime wrote them (with their seq), token by token, up to the turn's final chunk.
 *
 * On a `new_…` path id the request asks the runtime to create the session (`new_session`, no
 * session id); the `session_info` chunk it answers first names the session, and every later call
 * of the connection uses that id. When the client goes away the gateway abandons its request; the
 * runtime finishes the turn and logs its frames for a later `resume`.
 */
import { SpanStatusCode, context } from '@opentelemetry/api';
import { AppError, ServiceMetrics, activeTraceIds } from '@codelab/service-kit';
import type { AgentStreamRequest, TurnFrame } from '@codelab/protocol';
import { gatewayErrors } from '../errors.ts';
import type { GatewayMetrics } from '../metrics.ts';
import type { RuntimeClient } from '../runtime-client.ts';
import type { Connection } from './connection.ts';
import { runtimeChunks, runtimeError } from './runtime-stream.ts';

export async function runTurn(conn: Connection, runtime: RuntimeClient, metrics: GatewayMetrics, frame: TurnFrame, receivedAt: number): Promise<void> {
  const { traceparent: _tp, tracestate: _ts, ...message } = frame;
  const { span, ctx } = conn.frameSpan(frame);
  let outcome = 'ok';
  await context.with(ctx, async () => {
    try {
      const sessionId = conn.sessionId;
      const body: AgentStreamRequest = sessionId ? { session_id: sessionId, message: message as TurnFrame } : { new_session: true, message: message as TurnFrame };
      const res = await runtime.openTurn(body, conn.userId, conn.closed.signal);
      if (res.statusCode >= 400) {
        const { code, detail } = runtimeError(await res.body.text());
        outcome = 'agent_error';
        conn.sendError(code ?? gatewayErrors.GW_ERR_AGENT_ERROR.code, `Agent error: ${res.statusCode}: ${detail}`);
        return;
      }
      let final = false;
      let firstToken = true;
      conn.delivered.startRun();
      for await (const { chunk, raw } of runtimeChunks(res.body, conn.log)) {
        if (chunk.type === 'session_info' && conn.autoSession && !conn.sessionId && typeof chunk.session_id === 'string' && chunk.session_id !== '') {
          conn.adopt(chunk.session_id);
          span.setAttribute('codelab.session.id', chunk.session_id);
        }
        if (firstToken && chunk.token) {
          firstToken = false;
          ServiceMetrics.observe(metrics.timeToFirstToken, {}, (performance.now() - receivedAt) / 1000, activeTraceIds());
        }
        conn.send(chunk, raw);
        if (chunk.type === 'error') outcome = 'error';
        if (chunk.metadata?.cancelled === true) outcome = 'cancelled';
        if (chunk.is_final) final = true;
      }
      if (!final && !conn.closed.signal.aborted) {
        outcome = 'interrupted';
        conn.sendError(gatewayErrors.GW_ERR_STREAM_INTERRUPTED.code, gatewayErrors.GW_ERR_STREAM_INTERRUPTED.def.message);
      }
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
