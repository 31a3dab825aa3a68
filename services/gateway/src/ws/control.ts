/**
 * The control frames answered at once, even while a turn streams, each with exactly one control
 * answer on the connection that sent it (no `seq`, never `is_final: true`: a control answer ends
 * no turn): `ping` (an application-level heartbeat for clients that cannot see protocol pings)
 * gets `pong` with its `timestamp`; `cancel` asks the runtime to stop the session's running turn
 * wherever it runs and gets `cancel_ack`, or an `error` (GW_ERR_NOTHING_TO_CANCEL, or why the
 * cancel failed). The cancelled turn's own final frame (`metadata.cancelled`, numbered) goes to
 * every connection following the turn. (`resume` is in resume.ts.)
 */
import { SpanStatusCode, context } from '@opentelemetry/api';
import { AppError } from '@codelab/service-kit';
import { withoutNulls, type CancelFrame, type PingFrame } from '@codelab/protocol';
import { gatewayErrors } from '../errors.ts';
import type { GatewayMetrics } from '../metrics.ts';
import type { RuntimeClient } from '../runtime-client.ts';
import type { Connection } from './connection.ts';
import { runtimeError } from './runtime-stream.ts';

const CANCEL_ACK_TEXT = 'The running turn is being cancelled; its final frame follows';

export function answerPing(conn: Connection, frame: PingFrame): void {
  conn.send({ type: 'pong' }, JSON.stringify(withoutNulls({ type: 'pong', timestamp: frame.timestamp })));
}

export async function cancelTurn(conn: Connection, runtime: RuntimeClient, metrics: GatewayMetrics, frame: CancelFrame): Promise<void> {
  const { span, ctx } = conn.frameSpan(frame);
  let outcome: 'cancelled' | 'nothing_running' | 'failed' = 'failed';
  await context.with(ctx, async () => {
    try {
      const sessionId = conn.sessionId;
      if (sessionId) {
        // not abandoned when the client goes away: the user asked for the turn to stop
        const { statusCode, body } = await runtime.cancel(sessionId, conn.userId);
        if (statusCode === 200 && body?.cancelled === true) outcome = 'cancelled';
        // 404: the session does not exist (yet), so nothing runs on it.
        else if (statusCode === 200 || statusCode === 404) outcome = 'nothing_running';
        else {
          const { code, detail } = runtimeError(body);
          conn.sendControlError(code ?? gatewayErrors.GW_ERR_AGENT_ERROR.code, `Cancel failed: ${statusCode}: ${detail}`);
          return;
        }
      } else {
        outcome = 'nothing_running'; // a new_ path id whose session does not exist yet
      }
      if (outcome === 'nothing_running')
        conn.sendControlError(gatewayErrors.GW_ERR_NOTHING_TO_CANCEL.code, gatewayErrors.GW_ERR_NOTHING_TO_CANCEL.def.message);
      else conn.send({ type: 'cancel_ack', content: CANCEL_ACK_TEXT });
    } catch (err) {
      const e = err instanceof AppError ? err : gatewayErrors.GW_ERR_RUNTIME_UNAVAILABLE((err as Error).message);
      span.recordException(err as Error);
      conn.sendControlError(e.code, `Cancel failed: ${e.message}`);
    } finally {
      if (outcome === 'failed') span.setStatus({ code: SpanStatusCode.ERROR, message: outcome });
      span.setAttribute('codelab.cancel.outcome', outcome);
      span.end();
      metrics.cancels.inc({ outcome });
      conn.log.info({ outcome }, 'cancel requested');
    }
  });
}
