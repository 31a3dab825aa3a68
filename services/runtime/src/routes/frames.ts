/**
 * For clients that reconnect and for `cancel` (the gateway calls these for the IDE):
 * - GET /sessions/:sessionId/frames?after=N: SSE of the session's frames after N, then the live
 *   frames of a turn still running (on any instance), until it ends. A turn whose runtime died
 *   ends with its RT_ERR_TURN_INTERRUPTED frame once its lease lapses (interrupted-turns.ts);
 *   frames the log no longer has are answered with one RT_ERR_FRAMES_LOST frame. With `&until=M`
 *   only the frames up to M (the gateway filling a gap before a turn whose stream starts after M).
 * - POST /sessions/:sessionId/cancel: stops the session's running turn wherever it runs.
 */
import type { FastifyInstance } from 'fastify';
import { startSse } from '@codelab/service-kit';
import { SESSION_ID_PATTERN, type CancelResult } from '@codelab/protocol';
import { runtimeErrors } from '../errors.ts';
import type { RuntimeMetrics } from '../metrics.ts';
import type { SessionStore } from '../store/sessions.ts';
import type { InterruptedTurns } from '../turn/interrupted-turns.ts';
import type { RunningTurns } from '../turn/running-turns.ts';
import { callerOf } from './sessions.ts';

const params = {
  type: 'object',
  required: ['sessionId'],
  properties: { sessionId: { type: 'string', pattern: SESSION_ID_PATTERN } },
} as const;

export function registerFrameRoutes(
  app: FastifyInstance,
  deps: { store: SessionStore; interrupted: InterruptedTurns; running: RunningTurns; metrics: RuntimeMetrics; heartbeatMs: number },
): void {
  app.get<{ Params: { sessionId: string }; Querystring: { after: number; until?: number } }>(
    '/sessions/:sessionId/frames',
    {
      schema: {
        params,
        querystring: {
          type: 'object',
          properties: { after: { type: 'integer', minimum: 0, default: 0 }, until: { type: 'integer', minimum: 0 } },
        },
      },
      config: { streaming: true },
    },
    async (request, reply) => {
      const { sessionId } = request.params;
      const { after, until } = request.query;
      if (!(await deps.store.get(sessionId, callerOf(request))))
        throw runtimeErrors.RT_ERR_SESSION_NOT_FOUND(`Session ${sessionId} not found`);
      const sse = startSse(reply);
      const heartbeat = setInterval(() => void sse.comment('keepalive'), deps.heartbeatMs);
      let frames = 0;
      let outcome = 'ok';
      try {
        for await (const f of deps.interrupted.follow(sessionId, after, sse.signal)) {
          if (until !== undefined && f.seq > until) break;
          frames++;
          if (f.synthetic) outcome = 'frames_lost';
          await sse.raw(`data: ${f.data}\n\n`);
          if (until !== undefined && f.seq >= until) break;
        }
      } catch (err) {
        outcome = 'error';
        request.log.warn({ err, session_id: sessionId }, 'frame log read failed');
      } finally {
        clearInterval(heartbeat);
        sse.end();
        deps.metrics.resumes.inc({ outcome: outcome === 'ok' ? (frames ? 'replayed' : 'nothing_missed') : outcome });
        request.log.info({ session_id: sessionId, after, until, frames, outcome }, 'frames followed');
      }
    },
  );

  app.post<{ Params: { sessionId: string } }>(
    '/sessions/:sessionId/cancel',
    { schema: { params } },
    async (request): Promise<CancelResult> => {
      const { sessionId } = request.params;
      if (!(await deps.store.get(sessionId, callerOf(request))))
        throw runtimeErrors.RT_ERR_SESSION_NOT_FOUND(`Session ${sessionId} not found`);
      const cancelled = await deps.running.cancel(sessionId);
      deps.metrics.cancels.inc({ result: cancelled ? 'cancelled' : 'nothing_running' });
      request.log.info({ session_id: sessionId, cancelled }, 'cancel requested');
      return { cancelled };
    },
  );
}
