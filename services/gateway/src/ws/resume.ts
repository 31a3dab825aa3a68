/**
 * What a client missed while it was away. With `?last_seq=N` on the WebSocket URL, or a
 * `{"type":"resume","last_seq":N}` frame, the session's frames after N are replayed from the
 * runtime's log (`GET /sessions/:id/frames?after=N`), followed by the live frames of a turn still
 * running, before any queued turn frame is processed; frames this connection already delivered
 * are not sent again. A connection without `last_seq` instead gets the tool calls still waiting
 * for approval re-sent (`tool_call`, `requires_approval`, `metadata.resent`).
 */
import { SpanStatusCode, context } from '@opentelemetry/api';
import { AppError } from '@codelab/service-kit';
import type { ResumeFrame } from '@codelab/protocol';
import { gatewayErrors } from '../errors.ts';
import type { GatewayMetrics } from '../metrics.ts';
import type { RuntimeClient } from '../runtime-client.ts';
import type { Connection } from './connection.ts';
import { runtimeChunks, runtimeError } from './runtime-stream.ts';

export type ResumeSource = 'url' | 'frame';
type ResumeOutcome = 'ok' | 'not_found' | 'skipped' | 'failed' | 'client_gone';

/** Replays the frames after `after`; `frame` is the resume frame that asked (none for `?last_seq=`). */
export async function replayFrames(conn: Connection, runtime: RuntimeClient, metrics: GatewayMetrics, after: number, frame?: ResumeFrame): Promise<void> {
  const source: ResumeSource = frame ? 'frame' : 'url';
  const { span, ctx } = frame ? conn.frameSpan(frame) : conn.startSpan('ws.resume', undefined, { 'codelab.resume.after': after });
  let outcome: ResumeOutcome = 'ok';
  let sent = 0;
  await context.with(ctx, async () => {
    try {
      const sessionId = conn.sessionId;
      if (!sessionId) {
        outcome = 'skipped'; // a new_ path id whose session does not exist yet: nothing to replay
        return;
      }
      const res = await runtime.frames(sessionId, after, conn.userId, conn.closed.signal);
      if (res.statusCode === 404) {
        await res.body.dump();
        outcome = 'not_found'; // no frames were ever logged for this id: nothing was missed
        return;
      }
      if (res.statusCode >= 400) {
        const { detail } = runtimeError(await res.body.text());
        outcome = 'failed';
        conn.sendError(gatewayErrors.GW_ERR_RESUME_FAILED.code, `${gatewayErrors.GW_ERR_RESUME_FAILED.def.message}: the runtime answered ${res.statusCode}: ${detail}`);
        return;
      }
      conn.delivered.startRun();
      for await (const { chunk, raw } of runtimeChunks(res.body, conn.log)) {
        if (typeof chunk.seq === 'number' && conn.delivered.has(chunk.seq)) continue;
        conn.send(chunk, raw);
        sent++;
      }
      if (conn.closed.signal.aborted) outcome = 'client_gone';
    } catch (err) {
      if (conn.closed.signal.aborted) {
        outcome = 'client_gone';
        return;
      }
      outcome = 'failed';
      const message = err instanceof AppError ? err.message : (err as Error).message;
      span.recordException(err as Error);
      conn.sendError(gatewayErrors.GW_ERR_RESUME_FAILED.code, `${gatewayErrors.GW_ERR_RESUME_FAILED.def.message}: ${message}`);
    } finally {
      if (outcome === 'failed') span.setStatus({ code: SpanStatusCode.ERROR, message: outcome });
      span.setAttributes({ 'codelab.resume.outcome': outcome, 'codelab.resume.frames': sent });
      span.end();
      metrics.resumes.inc({ source, outcome });
      if (sent > 0) metrics.resumedFrames.inc(sent);
      conn.log.info({ after, frames: sent, outcome, source }, 'frames replayed');
    }
  });
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
    if (!conn.closed.signal.aborted) conn.log.warn({ err: { message: (err as Error).message } }, 'pending approvals could not be read; none re-sent');
  }
}
