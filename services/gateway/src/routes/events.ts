/**
 * Events REST (`/api/v1/events…`), relayed to the runtime. The global views (metrics, sessions
 * with LLM usage, audit log, stats) cover every user, so they need `api:admin` and are relayed
 * without a caller (the runtime scopes to the caller when one is named). A session's LLM usage is
 * a read of one's own session (`api:read`); an admin may read any session's.
 */
import type { FastifyInstance, FastifyRequest, preValidationHookHandler } from 'fastify';
import { AUDIT_EVENT_TYPE_NAMES, SESSION_ID_PATTERN } from '@codelab/protocol';
import type { Scope } from '../auth/authenticate.ts';
import type { RuntimeClient } from '../runtime-client.ts';
import { securityFor } from './openapi.ts';
import { AUDIT_LOG_MAX_LIMIT, relayed, responses, sessionIdParams } from './schemas.ts';

const GLOBAL = 'Covers every user’s sessions (api:admin).';

export function registerEventRoutes(
  app: FastifyInstance,
  { runtime, authenticate }: { runtime: RuntimeClient; authenticate: (opts: { scope: Scope }) => preValidationHookHandler },
): void {
  const admin = { ...relayed, preValidation: authenticate({ scope: 'api:admin' }) };

  app.get(
    '/api/v1/events/metrics',
    {
      ...admin,
      schema: {
        tags: ['events'],
        summary: 'Agent, tool, HITL and error metrics',
        description: `Aggregated from the durable event log (survives restarts). ${GLOBAL}`,
        security: securityFor('api:admin'),
        response: responses({ id: 'EventMetrics', description: 'Counters and computed averages and success rates' }),
      },
    },
    (_request, reply) => runtime.relay(reply, undefined, { method: 'GET', path: '/events/metrics', route: '/events/metrics' }),
  );

  app.get(
    '/api/v1/events/metrics/sessions',
    {
      ...admin,
      schema: {
        tags: ['events'],
        summary: 'Sessions with LLM usage',
        description: GLOBAL,
        security: securityFor('api:admin'),
        response: responses({ id: 'MetricsSessions', description: 'Session ids, in the order of their first LLM call' }),
      },
    },
    (_request, reply) =>
      runtime.relay(reply, undefined, { method: 'GET', path: '/events/metrics/sessions', route: '/events/metrics/sessions' }),
  );

  app.get<{ Params: { sessionId: string } }>(
    '/api/v1/events/metrics/session/:sessionId',
    {
      ...relayed,
      preValidation: authenticate({ scope: 'api:read' }),
      schema: {
        tags: ['events'],
        summary: "A session's LLM usage",
        description: 'One’s own session; a token with api:admin may read any session.',
        security: securityFor('api:read'),
        params: sessionIdParams,
        response: responses(
          { id: 'SessionMetrics', description: 'Requests, durations and tokens' },
          { 404: 'Unknown or another user’s session (RT_ERR_SESSION_NOT_FOUND), or no LLM call yet (RT_ERR_NO_SESSION_METRICS)' },
        ),
      },
    },
    (request, reply) =>
      runtime.relay(reply, isAdmin(request) ? undefined : request.principal?.sub, {
        method: 'GET',
        path: `/events/metrics/session/${encodeURIComponent(request.params.sessionId)}`,
        route: '/events/metrics/session/:id',
      }),
  );

  app.get<{ Querystring: { session_id?: string; event_type?: string; limit?: number } }>(
    '/api/v1/events/audit-log',
    {
      ...admin,
      schema: {
        tags: ['events'],
        summary: 'The audit log',
        description: `Agent switches, HITL decisions, agent errors, failed tools and approval requests: the last \`limit\` entries, oldest first. ${GLOBAL}`,
        security: securityFor('api:admin'),
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            session_id: { type: 'string', pattern: SESSION_ID_PATTERN },
            event_type: { type: 'string', enum: [...AUDIT_EVENT_TYPE_NAMES] },
            limit: { type: 'integer', minimum: 1, maximum: AUDIT_LOG_MAX_LIMIT, description: 'default 100' },
          },
        },
        response: responses({ id: 'AuditLog', description: 'Entries and the filters applied' }),
      },
    },
    (request, reply) => {
      const { session_id, event_type, limit } = request.query;
      return runtime.relay(reply, undefined, {
        method: 'GET',
        path: '/events/audit-log',
        route: '/events/audit-log',
        query: { session_id, event_type, limit },
      });
    },
  );

  app.get(
    '/api/v1/events/stats',
    {
      ...admin,
      schema: {
        tags: ['events'],
        summary: 'Event log statistics',
        description: `Events stored, events that could not be stored (by the answering instance), the last event's time. ${GLOBAL}`,
        security: securityFor('api:admin'),
        response: responses({ id: 'EventStats', description: 'Counts and success rate' }),
      },
    },
    (_request, reply) => runtime.relay(reply, undefined, { method: 'GET', path: '/events/stats', route: '/events/stats' }),
  );
}

function isAdmin(request: FastifyRequest): boolean {
  return request.principal?.scopes.has('api:admin') ?? false;
}
