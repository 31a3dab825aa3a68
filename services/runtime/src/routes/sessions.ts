/** Sessions REST (internal; the gateway proxies it): create, list with a true total, detail, history. */
import { randomUUID } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { runtimeErrors, SESSION_ID_PATTERN } from '../errors.ts';
import { historyMessage, summaryOf, type SessionStore } from '../store/sessions.ts';

const sessionIdParam = {
  type: 'object',
  required: ['sessionId'],
  properties: { sessionId: { type: 'string', pattern: SESSION_ID_PATTERN } },
} as const;

export function registerSessionRoutes(app: FastifyInstance, store: SessionStore): void {
  app.post<{ Body: { session_id?: string; user_id?: string } | undefined }>(
    '/sessions',
    {
      schema: {
        body: {
          type: ['object', 'null'],
          properties: { session_id: { type: 'string', pattern: SESSION_ID_PATTERN }, user_id: { type: 'string', maxLength: 255 } },
        },
      },
    },
    async (request, reply) => {
      const id = request.body?.session_id ?? randomUUID();
      const row = await store.create(id, request.body?.user_id ?? null);
      if (!row) throw runtimeErrors.RT_ERR_SESSION_EXISTS(`Session '${id}' already exists`);
      return reply.status(201).send({ id: row.id, message_count: 0, created_at: row.created_at.toISOString(), is_active: true, current_agent: row.current_agent });
    },
  );

  app.get<{ Querystring: { limit: number; offset: number; active_only: boolean } }>(
    '/sessions',
    {
      schema: {
        querystring: {
          type: 'object',
          properties: {
            limit: { type: 'integer', minimum: 1, maximum: 1000, default: 100 },
            offset: { type: 'integer', minimum: 0, default: 0 },
            active_only: { type: 'boolean', default: true },
          },
        },
      },
    },
    async (request) => {
      const { limit, offset, active_only } = request.query;
      const { sessions, total } = await store.list({ limit, offset, activeOnly: active_only });
      return { sessions: sessions.map(summaryOf), total, limit, offset };
    },
  );

  app.get<{ Params: { sessionId: string } }>('/sessions/:sessionId', { schema: { params: sessionIdParam } }, async (request) => {
    const row = await store.get(request.params.sessionId);
    if (!row) throw runtimeErrors.RT_ERR_SESSION_NOT_FOUND(`Session ${request.params.sessionId} not found`);
    return {
      session: {
        ...summaryOf(row),
        description: null,
        created_at: row.created_at.toISOString(),
        duration_seconds: (row.last_activity.getTime() - row.created_at.getTime()) / 1000,
      },
    };
  });

  app.get<{ Params: { sessionId: string } }>('/sessions/:sessionId/history', { schema: { params: sessionIdParam } }, async (request) => {
    const row = await store.get(request.params.sessionId);
    if (!row) throw runtimeErrors.RT_ERR_SESSION_NOT_FOUND(`Session ${request.params.sessionId} not found`);
    const messages = await store.messages(row.id);
    return {
      session_id: row.id,
      messages: messages.map(historyMessage),
      message_count: messages.length,
      last_activity: row.last_activity.toISOString(),
      current_agent: row.current_agent,
      agent_history: [],
    };
  });
}
