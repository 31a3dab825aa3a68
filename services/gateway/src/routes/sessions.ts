/** Sessions REST for IDEs (`/api/v1/sessions…`), relayed to the runtime with the caller's identity. */
import { SESSION_ID_PATTERN } from '@codelab/protocol';
import type { FastifyInstance, preValidationHookHandler } from 'fastify';
import type { Scope } from '../auth/authenticate.ts';
import type { RuntimeClient } from '../runtime-client.ts';

const sessionParams = { type: 'object', required: ['sessionId'], properties: { sessionId: { type: 'string', pattern: SESSION_ID_PATTERN } } } as const;

export function registerSessionRoutes(app: FastifyInstance, runtime: RuntimeClient, authenticate: (opts: { scope: Scope }) => preValidationHookHandler): void {
  app.post<{ Body: { session_id?: string } | undefined }>(
    '/api/v1/sessions',
    {
      preValidation: authenticate({ scope: 'api:write' }),
      schema: { body: { type: ['object', 'null'], properties: { session_id: { type: 'string', pattern: SESSION_ID_PATTERN } } } },
    },
    (request, reply) =>
      runtime.relay(reply, request.principal?.sub, {
        method: 'POST',
        path: '/sessions',
        route: '/sessions',
        body: request.body?.session_id ? { session_id: request.body.session_id } : {},
      }),
  );

  app.get<{ Querystring: { limit?: number; offset?: number; active_only?: boolean } }>(
    '/api/v1/sessions',
    {
      preValidation: authenticate({ scope: 'api:read' }),
      schema: {
        querystring: {
          type: 'object',
          properties: { limit: { type: 'integer', minimum: 1, maximum: 1000 }, offset: { type: 'integer', minimum: 0 }, active_only: { type: 'boolean' } },
        },
      },
    },
    (request, reply) => runtime.relay(reply, request.principal?.sub, { method: 'GET', path: '/sessions', route: '/sessions', query: request.query }),
  );

  app.get<{ Params: { sessionId: string } }>('/api/v1/sessions/:sessionId/history', { preValidation: authenticate({ scope: 'api:read' }), schema: { params: sessionParams } }, (request, reply) =>
    runtime.relay(reply, request.principal?.sub, { method: 'GET', path: `/sessions/${encodeURIComponent(request.params.sessionId)}/history`, route: '/sessions/:id/history' }),
  );
}
