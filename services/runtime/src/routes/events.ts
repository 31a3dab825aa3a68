/**
 * Events REST (upstream §4): metrics aggregated from the durable event log, per-session LLM
 * usage, the audit log and the bus statistics. With a caller (`X-Codelab-User`) every answer
 * covers only that user's sessions, and another user's session answers 404; the gateway relays
 * the global views (`api:admin`) without a caller.
 */
import type { FastifyInstance } from 'fastify';
import { SESSION_ID_PATTERN } from '@codelab/protocol';
import { runtimeErrors } from '../errors.ts';
import { AUDIT_EVENT_TYPES, type AuditEventType } from '../store/event-catalog.ts';
import type { EventReports } from '../store/event-reports.ts';
import type { SessionStore } from '../store/sessions.ts';
import { callerOf } from './sessions.ts';

const AUDIT_LOG_MAX_LIMIT = 1000;

export function registerEventRoutes(app: FastifyInstance, deps: { events: EventReports; store: SessionStore }): void {
  const { events, store } = deps;

  app.get('/events/metrics', async (request) => events.metrics(callerOf(request)));

  app.get('/events/metrics/sessions', async (request) => {
    const sessions = await events.sessionsWithMetrics(callerOf(request));
    return { sessions, count: sessions.length };
  });

  app.get<{ Params: { sessionId: string } }>(
    '/events/metrics/session/:sessionId',
    {
      schema: {
        params: { type: 'object', required: ['sessionId'], properties: { sessionId: { type: 'string', pattern: SESSION_ID_PATTERN } } },
      },
    },
    async (request) => {
      const { sessionId } = request.params;
      if (!(await store.get(sessionId, callerOf(request)))) throw runtimeErrors.RT_ERR_SESSION_NOT_FOUND(`Session ${sessionId} not found`);
      const metrics = await events.sessionMetrics(sessionId);
      if (!metrics) throw runtimeErrors.RT_ERR_NO_SESSION_METRICS(`No metrics found for session ${sessionId}`);
      return metrics;
    },
  );

  app.get<{ Querystring: { session_id?: string; event_type?: AuditEventType; limit: number } }>(
    '/events/audit-log',
    {
      schema: {
        querystring: {
          type: 'object',
          properties: {
            session_id: { type: 'string', pattern: SESSION_ID_PATTERN },
            event_type: { type: 'string', enum: Object.keys(AUDIT_EVENT_TYPES) },
            limit: { type: 'integer', minimum: 1, maximum: AUDIT_LOG_MAX_LIMIT, default: 100 },
          },
        },
      },
    },
    async (request) => {
      const { session_id, event_type, limit } = request.query;
      const entries = await events.auditLog({ sessionId: session_id, eventType: event_type, limit, caller: callerOf(request) });
      return {
        audit_log: entries,
        count: entries.length,
        filters: { session_id: session_id ?? null, event_type: event_type ?? null, limit },
      };
    },
  );

  app.get('/events/stats', async (request) => events.stats(callerOf(request)));
}
