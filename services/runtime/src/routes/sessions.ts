/**
 * Sessions REST (internal; the gateway proxies it): create, list with a true total, detail,
 * history, and the access check of the WebSocket handshake. Every session belongs to the caller
 * that created it (the `X-Codelab-User` the gateway forwards); another caller gets 404, as if the
 * session did not exist, on every route, creation included: only the owner hears 409 for an id it
 * already has. (Ids are one namespace, so a create that succeeds still tells a free id from a
 * taken one; the answer never says more than that.)
 *
 * `is_active` and `active_only` follow the store's rule: a message within
 * AGENT_RUNTIME__SESSION_IDLE_TIMEOUT, a turn running, or a tool call still waiting.
 */
import { randomUUID } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { CALLER_HEADER, SESSION_ID_PATTERN, type SessionAccess } from '@codelab/protocol';
import { runtimeErrors } from '../errors.ts';
import { switchDto } from '../store/agent-context.ts';
import { historyMessage, summaryOf, visibleTo, type Caller, type SessionStore, type StoredMessage } from '../store/sessions.ts';

const sessionIdParam = {
  type: 'object',
  required: ['sessionId'],
  properties: { sessionId: { type: 'string', pattern: SESSION_ID_PATTERN } },
} as const;

/** Upstream's MessageDTO (`GET /sessions/:id?include_messages=true`). */
function messageDto(m: StoredMessage) {
  return {
    id: m.id,
    role: m.role,
    content: m.content ?? null,
    name: m.name ?? null,
    tool_call_id: m.tool_call_id ?? null,
    tool_calls: m.tool_calls?.length ? m.tool_calls : null,
    created_at: m.created_at.toISOString(),
  };
}

/** The user the gateway calls for; undefined when authentication is off. */
export function callerOf(request: FastifyRequest): Caller {
  const value = request.headers[CALLER_HEADER];
  return typeof value === 'string' && value !== '' ? value : undefined;
}

export function registerSessionRoutes(app: FastifyInstance, { store }: { store: SessionStore }): void {
  /** The one answer for a session the caller cannot see, whether it is someone else's or nobody's. */
  const notFound = (id: string) => runtimeErrors.RT_ERR_SESSION_NOT_FOUND(`Session ${id} not found`);
  const visibleSession = async (request: FastifyRequest<{ Params: { sessionId: string } }>) => {
    const row = await store.get(request.params.sessionId, callerOf(request));
    if (!row) throw notFound(request.params.sessionId);
    return row;
  };

  app.post<{ Body: { session_id?: string } | undefined }>(
    '/sessions',
    { schema: { body: { type: ['object', 'null'], properties: { session_id: { type: 'string', pattern: SESSION_ID_PATTERN } } } } },
    async (request, reply) => {
      const id = request.body?.session_id ?? randomUUID();
      const caller = callerOf(request);
      const row = await store.create(id, caller ?? null);
      if (!row) {
        // taken: only its owner learns that it exists; anyone else gets what every route answers
        // for a session it cannot see
        if (await store.get(id, caller)) throw runtimeErrors.RT_ERR_SESSION_EXISTS(`Session '${id}' already exists`);
        throw notFound(id);
      }
      return reply.status(201).send({
        id: row.id,
        message_count: 0,
        created_at: row.created_at.toISOString(),
        is_active: true,
        current_agent: row.current_agent,
      });
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
      const { sessions, total } = await store.list({ limit, offset, activeOnly: active_only, caller: callerOf(request) });
      return { sessions, total, limit, offset };
    },
  );

  app.get<{ Params: { sessionId: string }; Querystring: { include_messages: boolean } }>(
    '/sessions/:sessionId',
    {
      schema: {
        params: sessionIdParam,
        querystring: { type: 'object', properties: { include_messages: { type: 'boolean', default: false } } },
      },
    },
    async (request) => {
      const row = await visibleSession(request);
      return {
        session: {
          ...summaryOf(row),
          description: null,
          messages: request.query.include_messages ? (await store.messages(row.id)).map(messageDto) : null,
          created_at: row.created_at.toISOString(),
          duration_seconds: (row.last_activity.getTime() - row.created_at.getTime()) / 1000,
        },
      };
    },
  );

  /** Internal: lets the gateway refuse a WebSocket for someone else's session (close 4403). */
  app.get<{ Params: { sessionId: string } }>(
    '/sessions/:sessionId/access',
    { schema: { params: sessionIdParam } },
    async (request): Promise<SessionAccess> => {
      const row = await store.find(request.params.sessionId);
      return { exists: Boolean(row), allowed: !row || visibleTo(row, callerOf(request)) };
    },
  );

  app.get<{ Params: { sessionId: string } }>('/sessions/:sessionId/history', { schema: { params: sessionIdParam } }, async (request) => {
    const row = await visibleSession(request);
    const [messages, switches] = await Promise.all([store.messages(row.id), store.agentSwitches(row.id)]);
    return {
      session_id: row.id,
      messages: messages.map(historyMessage),
      message_count: messages.length,
      last_activity: row.last_activity.toISOString(),
      current_agent: row.current_agent,
      // upstream always answered [] (a stub); the switches, as /agents/:id/current?include_history lists them
      agent_history: switches.map(switchDto),
    };
  });
}
