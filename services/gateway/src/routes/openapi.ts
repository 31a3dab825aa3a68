/**
 * The OpenAPI 3.1 document of the public API, built by @fastify/swagger from the routes' own
 * schemas and served at `GET /openapi.json` (public). Every `/api/v1` route is in it with its
 * parameters, its answers, and its security: a bearer JWT from the auth service with the scope
 * the route enforces (`secured(scope)` gives a route both, so they cannot disagree).
 *
 * Register it before any route: it learns the routes as they are added.
 */
import swagger from '@fastify/swagger';
import type { FastifyInstance } from 'fastify';
import type { Scope } from '../auth/authenticate.ts';
import { addSharedSchemas } from './schemas.ts';

const BEARER_SCHEME = 'bearerAuth';

/** The OpenAPI security requirement of a route that needs `scope`. */
export function securityFor(scope: Scope): { [BEARER_SCHEME]: string[] }[] {
  return [{ [BEARER_SCHEME]: [scope] }];
}

export async function registerOpenApi(app: FastifyInstance, opts: { version: string }): Promise<void> {
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'CodeLab Platform API',
        version: opts.version,
        description:
          'The gateway of the CodeLab AI coding assistant: REST under /api/v1 (relayed to the agent runtime, answers in the upstream ' +
          'CodeLab AI Service shapes) and the conversation WebSocket. Authenticate with an access token from the auth service ' +
          '(POST /oauth/token) as `Authorization: Bearer`; each operation names the scope it needs: api:read for reads, api:write for ' +
          'writes and conversations, api:admin for the global event views. A user sees only the sessions it created (others answer 404).',
      },
      components: {
        securitySchemes: {
          [BEARER_SCHEME]: {
            type: 'http',
            scheme: 'bearer',
            bearerFormat: 'JWT',
            description: 'RS256 access token of the auth service; the scopes listed on an operation are the token `scope` values it needs',
          },
        },
      },
      tags: [
        { name: 'sessions', description: 'Conversations and their history' },
        { name: 'agents', description: 'The agents and a session’s current agent' },
        { name: 'approvals', description: 'Tool calls waiting for the user’s decision' },
        { name: 'events', description: 'Metrics, LLM usage, audit log (durable)' },
        { name: 'conversation', description: 'The WebSocket of a session' },
        { name: 'system', description: 'Health' },
      ],
    },
    refResolver: { buildLocalReference: (json, _baseUri, _fragment, i) => (typeof json.$id === 'string' ? json.$id : `def-${i}`) },
    // @fastify/swagger marks every request body required; a body schema that admits null is optional.
    transformObject: (documentObject) => {
      const doc = 'openapiObject' in documentObject ? documentObject.openapiObject : documentObject.swaggerObject;
      for (const ops of Object.values(
        (doc.paths ?? {}) as Record<
          string,
          Record<string, { requestBody?: { required?: boolean; content?: Record<string, { schema?: { type?: unknown } }> } }>
        >,
      )) {
        for (const op of Object.values(ops)) {
          const type = op.requestBody?.content?.['application/json']?.schema?.type;
          if (Array.isArray(type) && type.includes('null')) op.requestBody!.required = false;
        }
      }
      return doc;
    },
    transform: ({ schema, url, route }) => {
      if (route.websocket) {
        // The conversation WebSocket (which @fastify/websocket hides): a GET upgrade whose frames the README describes.
        return {
          url,
          schema: {
            ...schema,
            hide: false,
            tags: ['conversation'],
            summary: 'Open the conversation WebSocket of a session',
            description:
              'Upgrade to a WebSocket carrying upstream frames (in: user_message, tool_result, switch_agent, hitl_decision; out: ' +
              'assistant_message, tool_call, error, …). The token may also come as `?access_token=`. Someone else’s session closes with 4403.',
            security: securityFor('api:write'),
            response: {
              101: { type: 'null', description: 'Switching Protocols: the conversation starts' },
              401: { description: 'No valid token (refused before the upgrade)', $ref: 'Error#' },
              403: { description: 'The token lacks api:write', $ref: 'Error#' },
            },
          },
        };
      }
      if (route.config?.public) return { url, schema: { ...schema, tags: schema?.tags ?? ['system'], security: [] } };
      return { url, schema };
    },
  });
  addSharedSchemas(app);
  app.get('/openapi.json', { config: { public: true }, logLevel: 'warn', schema: { hide: true } }, async () => app.swagger());
}
