/**
 * Agents REST (upstream §1.1): the agents registered in this mode, a session's agent context
 * (current agent, switch count, optionally its switch history) and the explicit switch a user asks
 * for. The context lives on the session row (`current_agent`, `switch_count`, `last_switch_at`)
 * and in `agent_switches`, the same tables the turn engine switches agents through; a session the
 * caller does not own answers 404, exactly as one that does not exist. The switches are also
 * `/history`'s `agent_history` (`switchDto`, one shape for both).
 */
import type { FastifyInstance } from 'fastify';
import { SESSION_ID_PATTERN } from '@codelab/protocol';
import { registeredAgents, type AgentDefinition } from '../agents/definitions.ts';
import { runtimeErrors } from '../errors.ts';
import {
  AgentAlreadyActiveError,
  switchDto,
  type AgentContextRow,
  type AgentContextStore,
  type AgentSwitchDto,
} from '../store/agent-context.ts';
import type { EventWriter } from '../store/event-writer.ts';
import { callerOf } from './sessions.ts';

const sessionIdParam = {
  type: 'object',
  required: ['sessionId'],
  properties: { sessionId: { type: 'string', pattern: SESSION_ID_PATTERN } },
} as const;

interface AgentContextDto {
  id: string;
  session_id: string;
  current_agent: string;
  switch_count: number;
  switch_history: AgentSwitchDto[] | null;
  last_switch_at: string | null;
  created_at: string;
}

function contextDto(row: AgentContextRow, history: AgentSwitchDto[] | null): AgentContextDto {
  // The context is the session's: it has the session's id (upstream gave it an id of its own).
  return {
    id: row.id,
    session_id: row.id,
    current_agent: row.current_agent,
    switch_count: row.switch_count,
    switch_history: history,
    last_switch_at: row.last_switch_at ? row.last_switch_at.toISOString() : null,
    created_at: row.created_at.toISOString(),
  };
}

function agentInfo(a: AgentDefinition) {
  return {
    type: a.type,
    name: a.name,
    description: a.description,
    allowed_tools: [...a.allowedTools],
    has_file_restrictions: Boolean(a.fileRestrictions?.length),
  };
}

export function registerAgentRoutes(
  app: FastifyInstance,
  deps: { contexts: AgentContextStore; events: EventWriter; multiAgent: boolean },
): void {
  const { contexts, events } = deps;
  const agents = registeredAgents(deps.multiAgent);
  const agentTypes = agents.map((a) => a.type as string);
  const notFound = (sessionId: string) => runtimeErrors.RT_ERR_SESSION_NOT_FOUND(`Agent context for session ${sessionId} not found`);

  app.get('/agents', async () => ({ agents: agents.map(agentInfo), total: agents.length }));

  app.get<{ Params: { sessionId: string }; Querystring: { include_history: boolean } }>(
    '/agents/:sessionId/current',
    {
      schema: {
        params: sessionIdParam,
        querystring: { type: 'object', properties: { include_history: { type: 'boolean', default: false } } },
      },
    },
    async (request) => {
      const { sessionId } = request.params;
      const row = await contexts.context(sessionId, callerOf(request));
      if (!row) throw notFound(sessionId);
      return { context: contextDto(row, request.query.include_history ? (await contexts.history(row.id)).map(switchDto) : null) };
    },
  );

  app.post<{ Params: { sessionId: string }; Body: { target_agent: string; reason: string; confidence?: string | null } }>(
    '/agents/:sessionId/switch',
    {
      schema: {
        params: sessionIdParam,
        body: {
          type: 'object',
          required: ['target_agent', 'reason'],
          properties: {
            target_agent: { type: 'string', minLength: 1, maxLength: 64 },
            reason: { type: 'string', maxLength: 2000 },
            confidence: { type: ['string', 'null'], maxLength: 16 },
          },
        },
      },
    },
    async (request) => {
      const { sessionId } = request.params;
      const { target_agent: target, reason } = request.body;
      const confidence = request.body.confidence ?? null;
      if (!agentTypes.includes(target)) {
        throw runtimeErrors.RT_ERR_INVALID_AGENT(`Invalid agent type: '${target}'. Allowed values: ${agentTypes.join(', ')}`);
      }
      let switched;
      try {
        switched = await contexts.switchAgent(
          sessionId,
          { to: target, reason, confidence, source: 'user' },
          { caller: callerOf(request), refuseSame: true },
        );
      } catch (err) {
        if (err instanceof AgentAlreadyActiveError) throw runtimeErrors.RT_ERR_AGENT_ALREADY_ACTIVE(err.message);
        throw err;
      }
      if (!switched) throw notFound(sessionId);
      const { context: row, from } = switched;
      const history = (await contexts.history(sessionId)).map(switchDto);
      await events.record({
        type: 'agent.switched',
        sessionId,
        correlationId: request.id,
        data: { from_agent: from, to_agent: target, reason, confidence, source: 'user' },
      });
      return { context: contextDto(row, history) };
    },
  );
}
