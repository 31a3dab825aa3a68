/**
 * JSON schemas of the REST API: the parameters the gateway validates before relaying (bad input
 * answers 400 and is never forwarded), and the runtime's answers as upstream shapes them, shared
 * through `app.addSchema` so that the OpenAPI document names them once (components.schemas).
 * The response schemas document; they never filter what is relayed (see `relayed`).
 */
import { AUDIT_EVENT_TYPE_NAMES, SESSION_ID_PATTERN } from '@codelab/protocol';
import type { FastifyInstance, FastifySchema } from 'fastify';

export const sessionIdParams = {
  type: 'object',
  required: ['sessionId'],
  properties: { sessionId: { type: 'string', pattern: SESSION_ID_PATTERN, description: '1–128 of A-Za-z0-9._:-' } },
} as const;

export const AUDIT_LOG_MAX_LIMIT = 1000;

const nullable = (type: string) => ({ type: [type, 'null'] });
const iso = { type: 'string', format: 'date-time' } as const;
const isoOrNull = { type: ['string', 'null'], format: 'date-time' } as const;
const counts = (...names: string[]) => ({ type: 'object', properties: Object.fromEntries(names.map((n) => [n, { type: 'integer' }])) });

/** Shared schemas, by `$id` (referenced as `{ $ref: '<Id>#' }`). */
const SHARED = [
  {
    $id: 'Error',
    description: 'Every error: a stable code (README error table) and a message',
    type: 'object',
    required: ['error'],
    properties: {
      error: {
        type: 'object',
        required: ['code', 'message'],
        properties: { code: { type: 'string' }, message: { type: 'string' }, details: { type: 'object' } },
      },
    },
  },
  {
    $id: 'SessionSummary',
    type: 'object',
    properties: {
      id: { type: 'string' },
      title: nullable('string'),
      message_count: { type: 'integer' },
      last_activity: iso,
      is_active: { type: 'boolean' },
      current_agent: nullable('string'),
    },
  },
  {
    $id: 'SessionCreated',
    type: 'object',
    properties: {
      id: { type: 'string' },
      message_count: { type: 'integer' },
      created_at: iso,
      is_active: { type: 'boolean' },
      current_agent: { type: 'string' },
    },
  },
  {
    $id: 'SessionList',
    type: 'object',
    properties: {
      sessions: { type: 'array', items: { $ref: 'SessionSummary#' } },
      total: { type: 'integer', description: 'all of the caller’s matching sessions' },
      limit: { type: 'integer' },
      offset: { type: 'integer' },
    },
  },
  {
    $id: 'Message',
    description: "Upstream's MessageDTO",
    type: 'object',
    properties: {
      id: { type: 'string' },
      role: { type: 'string', enum: ['user', 'assistant', 'system', 'tool'] },
      content: nullable('string'),
      name: nullable('string'),
      tool_call_id: nullable('string'),
      tool_calls: { type: ['array', 'null'], items: { type: 'object' } },
      created_at: iso,
    },
  },
  {
    $id: 'SessionDetail',
    type: 'object',
    properties: {
      session: {
        type: 'object',
        properties: {
          id: { type: 'string' },
          title: nullable('string'),
          description: nullable('string'),
          message_count: { type: 'integer' },
          messages: { type: ['array', 'null'], items: { $ref: 'Message#' }, description: 'only with include_messages=true' },
          last_activity: iso,
          is_active: { type: 'boolean' },
          current_agent: nullable('string'),
          created_at: iso,
          duration_seconds: { type: 'number' },
        },
      },
    },
  },
  {
    $id: 'SessionHistory',
    type: 'object',
    properties: {
      session_id: { type: 'string' },
      messages: {
        type: 'array',
        items: {
          type: 'object',
          required: ['role', 'content'],
          properties: {
            role: { type: 'string' },
            content: { type: 'string' },
            name: { type: 'string' },
            tool_call_id: { type: 'string' },
            tool_calls: {
              type: 'array',
              description: 'with the arguments each call was approved with (after a person edited it, the edited ones)',
            },
            original_tool_calls: {
              type: 'array',
              description: 'only when a person edited a call of this message before approving it: the calls as the LLM proposed them',
            },
            seq: { type: 'integer' },
            created_at: iso,
          },
        },
      },
      message_count: { type: 'integer' },
      last_activity: iso,
      current_agent: nullable('string'),
      agent_history: {
        type: 'array',
        description: 'the agent switches, oldest first (as /agents/:id/current?include_history=true lists them)',
        items: {
          type: 'object',
          properties: {
            from_agent: nullable('string'),
            to_agent: { type: 'string' },
            reason: nullable('string'),
            switched_at: iso,
            confidence: nullable('string'),
          },
        },
      },
    },
  },
  {
    $id: 'PendingApprovals',
    type: 'object',
    properties: {
      session_id: { type: 'string' },
      pending_approvals: {
        type: 'array',
        items: {
          type: 'object',
          properties: {
            request_id: { type: 'string' },
            request_type: { type: 'string', enum: ['tool', 'plan'] },
            subject: { type: 'string' },
            details: { type: 'object', properties: { arguments: { type: 'object' } } },
            reason: nullable('string'),
            created_at: iso,
            call_id: { type: 'string', description: 'legacy alias of request_id' },
            tool_name: { type: 'string', description: 'legacy alias of subject' },
            arguments: { type: 'object', description: 'legacy alias of details.arguments' },
            expires_at: { ...isoOrNull, description: 'when the call is rejected as expired' },
          },
        },
      },
      count: { type: 'integer' },
    },
  },
  {
    $id: 'AgentList',
    type: 'object',
    properties: {
      agents: {
        type: 'array',
        items: {
          type: 'object',
          properties: {
            type: { type: 'string', enum: ['orchestrator', 'coder', 'architect', 'debug', 'ask', 'universal'] },
            name: { type: 'string' },
            description: { type: 'string' },
            allowed_tools: { type: 'array', items: { type: 'string' } },
            has_file_restrictions: { type: 'boolean' },
          },
        },
      },
      total: { type: 'integer' },
    },
  },
  {
    $id: 'AgentContext',
    type: 'object',
    properties: {
      context: {
        type: 'object',
        properties: {
          id: { type: 'string' },
          session_id: { type: 'string' },
          current_agent: { type: 'string' },
          switch_count: { type: 'integer' },
          switch_history: {
            type: ['array', 'null'],
            description: 'only with include_history=true (always after a switch)',
            items: {
              type: 'object',
              properties: {
                from_agent: nullable('string'),
                to_agent: { type: 'string' },
                reason: nullable('string'),
                switched_at: iso,
                confidence: nullable('string'),
              },
            },
          },
          last_switch_at: isoOrNull,
          created_at: iso,
        },
      },
    },
  },
  {
    $id: 'EventMetrics',
    description: 'Upstream §4.4, aggregated from the durable event log',
    type: 'object',
    properties: {
      metrics: {
        type: 'object',
        properties: {
          agent_switches: { type: 'object', description: '"<from>_to_<to>": count', additionalProperties: { type: 'integer' } },
          agent_processing: { type: 'object', additionalProperties: counts('count', 'success_count', 'failure_count') },
          tool_executions: { type: 'object', additionalProperties: counts('requested', 'completed', 'failed', 'requires_approval') },
          hitl_decisions: { type: 'object', additionalProperties: counts('APPROVE', 'EDIT', 'REJECT') },
          errors: {
            type: 'object',
            description: 'agent → error type → count',
            additionalProperties: { type: 'object', additionalProperties: { type: 'integer' } },
          },
        },
      },
      computed: {
        type: 'object',
        description: '"<agent>_avg_duration_ms" and "<tool>_success_rate"',
        additionalProperties: { type: 'number' },
      },
      timestamp: iso,
    },
  },
  {
    $id: 'MetricsSessions',
    type: 'object',
    properties: { sessions: { type: 'array', items: { type: 'string' } }, count: { type: 'integer' } },
  },
  {
    $id: 'SessionMetrics',
    description: 'Upstream §4.5: totals and averages count successful requests only',
    type: 'object',
    properties: {
      session_id: { type: 'string' },
      ...counts(
        'total_requests',
        'successful_requests',
        'failed_requests',
        'total_duration_ms',
        'total_prompt_tokens',
        'total_completion_tokens',
        'total_tokens',
        'requests_with_tools',
      ).properties,
      average_duration_ms: { type: 'number' },
      average_tokens_per_request: { type: 'number' },
      requests: {
        type: 'array',
        items: {
          type: 'object',
          properties: {
            timestamp: iso,
            model: { type: 'string' },
            ...counts('duration_ms', 'prompt_tokens', 'completion_tokens', 'total_tokens').properties,
            has_tool_calls: { type: 'boolean' },
            success: { type: 'boolean' },
            error: nullable('string'),
          },
        },
      },
    },
  },
  {
    $id: 'AuditLog',
    type: 'object',
    properties: {
      audit_log: {
        type: 'array',
        items: {
          type: 'object',
          description:
            'the base fields, then the event’s own data (e.g. agent, error_message, error_type; tool_name, call_id, reason, arguments)',
          properties: {
            timestamp: iso,
            event_type: { type: 'string', enum: [...AUDIT_EVENT_TYPE_NAMES] },
            event_id: { type: 'string' },
            session_id: nullable('string'),
            correlation_id: nullable('string'),
          },
          additionalProperties: true,
        },
      },
      count: { type: 'integer' },
      filters: {
        type: 'object',
        properties: { session_id: nullable('string'), event_type: nullable('string'), limit: { type: 'integer' } },
      },
    },
  },
  {
    $id: 'EventStats',
    type: 'object',
    properties: {
      ...counts('total_published', 'successful_handlers', 'failed_handlers').properties,
      last_event_time: isoOrNull,
      success_rate: { type: 'number' },
    },
  },
];

export function addSharedSchemas(app: FastifyInstance): void {
  for (const schema of SHARED) app.addSchema(schema);
}

const ref = (id: string) => ({ $ref: `${id}#` });

/** Error answers every authenticated route can give (the runtime's own pass through with their status). */
const ERRORS = {
  400: { description: 'Invalid parameters (ERR_VALIDATION), never forwarded', ...ref('Error') },
  401: { description: 'Missing, invalid or expired bearer token (GW_ERR_UNAUTHORIZED)', ...ref('Error') },
  403: { description: 'The token lacks the scope of the call (GW_ERR_INSUFFICIENT_SCOPE)', ...ref('Error') },
  502: { description: 'The runtime cannot be reached (GW_ERR_RUNTIME_UNAVAILABLE)', ...ref('Error') },
  503: { description: 'Tokens cannot be verified (GW_ERR_AUTH_UNAVAILABLE)', ...ref('Error') },
  504: { description: 'The runtime did not answer in time (GW_ERR_RUNTIME_TIMEOUT)', ...ref('Error') },
};

/** Response documentation of a relayed route: its success schema, its own errors and the common ones. */
export function responses(
  ok: { status?: number; id: string; description: string },
  own: Record<number, string> = {},
): FastifySchema['response'] {
  return {
    [ok.status ?? 200]: { description: ok.description, ...ref(ok.id) },
    ...Object.fromEntries(Object.entries(own).map(([status, description]) => [status, { description, ...ref('Error') }])),
    ...ERRORS,
  };
}

/**
 * Route option for relayed routes: the runtime's body is sent as it came (plain JSON), never
 * reshaped by the documentation's response schemas.
 */
export const relayed = { serializerCompiler: () => (data: unknown) => JSON.stringify(data) } as const;
