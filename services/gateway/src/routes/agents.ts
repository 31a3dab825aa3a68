/** Agents REST for IDEs (`/api/v1/agents…`), relayed to the runtime with the caller's identity. */
import type { FastifyInstance, preValidationHookHandler } from 'fastify';
import type { Scope } from '../auth/authenticate.ts';
import type { RuntimeClient } from '../runtime-client.ts';
import { securityFor } from './openapi.ts';
import { relayed, responses, sessionIdParams } from './schemas.ts';

export function registerAgentRoutes(
  app: FastifyInstance,
  { runtime, authenticate }: { runtime: RuntimeClient; authenticate: (opts: { scope: Scope }) => preValidationHookHandler },
): void {
  app.get(
    '/api/v1/agents',
    {
      ...relayed,
      preValidation: authenticate({ scope: 'api:read' }),
      schema: {
        tags: ['agents'],
        summary: 'List the agents of this deployment',
        description: 'Multi-agent mode: orchestrator, coder, architect, debug, ask; single-agent mode: orchestrator, universal.',
        security: securityFor('api:read'),
        response: responses({ id: 'AgentList', description: 'The registered agents, in routing order' }),
      },
    },
    (request, reply) => runtime.relay(reply, request.principal?.sub, { method: 'GET', path: '/agents', route: '/agents' }),
  );

  app.get<{ Params: { sessionId: string }; Querystring: { include_history?: boolean } }>(
    '/api/v1/agents/:sessionId/current',
    {
      ...relayed,
      preValidation: authenticate({ scope: 'api:read' }),
      schema: {
        tags: ['agents'],
        summary: "A session's agent context",
        security: securityFor('api:read'),
        params: sessionIdParams,
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: { include_history: { type: 'boolean', description: 'include switch_history (default false)' } },
        },
        response: responses(
          { id: 'AgentContext', description: 'The current agent and switch count' },
          { 404: 'Unknown session, or another user’s (RT_ERR_SESSION_NOT_FOUND)' },
        ),
      },
    },
    (request, reply) =>
      runtime.relay(reply, request.principal?.sub, {
        method: 'GET',
        path: `/agents/${encodeURIComponent(request.params.sessionId)}/current`,
        route: '/agents/:id/current',
        query: { include_history: request.query.include_history },
      }),
  );

  app.post<{ Params: { sessionId: string }; Body: { target_agent: string; reason: string; confidence?: string | null } }>(
    '/api/v1/agents/:sessionId/switch',
    {
      ...relayed,
      preValidation: authenticate({ scope: 'api:write' }),
      schema: {
        tags: ['agents'],
        summary: "Switch a session's agent",
        description: 'Recorded in the switch history (source user) and the audit log.',
        security: securityFor('api:write'),
        params: sessionIdParams,
        body: {
          type: 'object',
          required: ['target_agent', 'reason'],
          additionalProperties: false,
          properties: {
            target_agent: { type: 'string', minLength: 1, maxLength: 64, description: 'an agent type of GET /api/v1/agents' },
            reason: { type: 'string', maxLength: 2000 },
            confidence: { type: ['string', 'null'], maxLength: 16, description: 'e.g. high, medium, low' },
          },
        },
        response: responses(
          { id: 'AgentContext', description: 'The new context, with its switch history' },
          {
            404: 'Unknown session, or another user’s (RT_ERR_SESSION_NOT_FOUND)',
            400: 'Not an agent of this mode (RT_ERR_INVALID_AGENT), the active agent (RT_ERR_AGENT_ALREADY_ACTIVE), or invalid body (ERR_VALIDATION)',
          },
        ),
      },
    },
    (request, reply) =>
      runtime.relay(reply, request.principal?.sub, {
        method: 'POST',
        path: `/agents/${encodeURIComponent(request.params.sessionId)}/switch`,
        route: '/agents/:id/switch',
        body: request.body,
      }),
  );
}
