/**
 * Agents REST (upstream §1.1): the agents registered in this mode, a session's agent context
 * (current agent, switch count, optionally its switch history) and the explicit switch a user asks
 * for. The context lives on the session row (`current_agent`, `switch_count`, `last_switch_at`)
 * and in `agent_switches`, the same tables the turn engine switches agents through; a session the
 * caller does not own answers 404.
 */
import { randomUUID } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { SESSION_ID_PATTERN } from '@codelab/protocol';
import type { Database, Queryable } from '@codelab/service-kit';
import { registeredAgents, type AgentDefinition } from '../agents/definitions.ts';
import { runtimeErrors } from '../errors.ts';
import type { EventStore } from '../store/events.ts';
import type { Caller } from '../store/sessions.ts';
import { callerOf } from './sessions.ts';

const sessionIdParam = {
  type: 'object',
  required: ['sessionId'],
  properties: { sessionId: { type: 'string', pattern: SESSION_ID_PATTERN } },
} as const;

export interface AgentSwitchDto {
  from_agent: string | null;
  to_agent: string;
  reason: string | null;
  switched_at: string;
  confidence: string | null;
}

export interface AgentContextDto {
  id: string;
  session_id: string;
  current_agent: string;
  switch_count: number;
  switch_history: AgentSwitchDto[] | null;
  last_switch_at: string | null;
  created_at: string;
}

interface ContextRow {
  id: string;
  current_agent: string;
  switch_count: number;
  last_switch_at: Date | null;
  created_at: Date;
}

/** The session's context row if the caller may see it (`FOR UPDATE` inside the switch transaction). */
async function contextRow(q: Queryable, sessionId: string, caller: Caller, forUpdate = false): Promise<ContextRow | undefined> {
  const { rows } = await q.query<ContextRow>(
    `SELECT id, current_agent, switch_count, last_switch_at, created_at FROM sessions
     WHERE id = $1 AND deleted_at IS NULL AND ($2::text IS NULL OR owner_sub = $2)${forUpdate ? ' FOR UPDATE' : ''}`,
    [sessionId, caller ?? null],
  );
  return rows[0];
}

async function switchHistory(q: Queryable, sessionId: string): Promise<AgentSwitchDto[]> {
  const { rows } = await q.query<{ from_agent: string | null; to_agent: string; reason: string | null; switched_at: Date; confidence: string | null }>(
    `SELECT from_agent, to_agent, reason, switched_at, confidence FROM agent_switches WHERE session_id = $1 ORDER BY switched_at, id`,
    [sessionId],
  );
  return rows.map((r) => ({ from_agent: r.from_agent, to_agent: r.to_agent, reason: r.reason, switched_at: r.switched_at.toISOString(), confidence: r.confidence }));
}

function contextDto(row: ContextRow, history: AgentSwitchDto[] | null): AgentContextDto {
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

export function agentInfo(a: AgentDefinition) {
  return { type: a.type, name: a.name, description: a.description, allowed_tools: [...a.allowedTools], has_file_restrictions: Boolean(a.fileRestrictions?.length) };
}

export function registerAgentRoutes(app: FastifyInstance, deps: { db: Database; events: EventStore; multiAgent: boolean }): void {
  const { db, events } = deps;
  const agents = registeredAgents(deps.multiAgent);
  const agentTypes = agents.map((a) => a.type as string);
  const notFound = (sessionId: string) => runtimeErrors.RT_ERR_SESSION_NOT_FOUND(`Agent context for session ${sessionId} not found`);

  app.get('/agents', async () => ({ agents: agents.map(agentInfo), total: agents.length }));

  app.get<{ Params: { sessionId: string }; Querystring: { include_history: boolean } }>(
    '/agents/:sessionId/current',
    { schema: { params: sessionIdParam, querystring: { type: 'object', properties: { include_history: { type: 'boolean', default: false } } } } },
    async (request) => {
      const { sessionId } = request.params;
      const row = await contextRow(db, sessionId, callerOf(request));
      if (!row) throw notFound(sessionId);
      return { context: contextDto(row, request.query.include_history ? await switchHistory(db, row.id) : null) };
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
      const caller = callerOf(request);
      const { row, from, history } = await db.transaction(async (tx) => {
        const current = await contextRow(tx, sessionId, caller, true);
        if (!current) throw notFound(sessionId);
        if (current.current_agent === target) throw runtimeErrors.RT_ERR_AGENT_ALREADY_ACTIVE(`Agent '${target}' is already active`);
        // clock_timestamp(), not now(): a switch that waited for the row lock is later than the one it waited for.
        const { rows } = await tx.query<ContextRow>(
          `WITH sw AS (
             INSERT INTO agent_switches (id, session_id, from_agent, to_agent, reason, confidence, source, switched_at)
             VALUES ($1, $2, $3, $4, $5, $6, 'user', clock_timestamp()) RETURNING switched_at)
           UPDATE sessions SET current_agent = $4, switch_count = switch_count + 1, last_switch_at = (SELECT switched_at FROM sw)
           WHERE id = $2 RETURNING id, current_agent, switch_count, last_switch_at, created_at`,
          [randomUUID(), sessionId, current.current_agent, target, reason, confidence],
        );
        return { row: rows[0]!, from: current.current_agent, history: await switchHistory(tx, sessionId) };
      });
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
