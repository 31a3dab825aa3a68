/**
 * What each inbound IDE message does, in two phases: `prepare` checks the message against the
 * session's state (under the session lease, before any stream starts, so a bad message is a 4xx
 * that changes nothing), then the returned `run` does the turn and streams its frames.
 *
 * - user_message: answers open tool calls as superseded, stores the message (unless the lease's
 *   statement stored it: no call was open), switches to an asked `agent_type`, then the agent
 *   runs (the orchestrator routes first).
 * - tool_result: the IDE's answer to a call; for a call waiting for approval, success approves and
 *   an error rejects (upstream's legacy path). Then the next call of the answer, or the LLM.
 * - hitl_decision: approve / edit send the IDE the final arguments to execute; reject answers the
 *   LLM with the user's feedback and goes on.
 * - switch_agent: switches, no LLM call.
 */
import { assertTurnFrame, type TurnFrame } from '@codelab/protocol';
import { isAgentType, type AgentType } from '../agents/definitions.ts';
import { runtimeErrors } from '../errors.ts';
import { toolLabel } from '../metrics.ts';
import type { ToolCallRow, ToolCallStatus } from '../store/tool-calls.ts';
import { OPEN_STATUSES } from '../store/tool-calls.ts';
import { runAgent, sendToolCall, switchAgent, type TurnOutcome } from './agent-loop.ts';
import type { LeasedSession } from './session-lease.ts';
import type { ConversationServices, TurnContext } from './turn-context.ts';

export type PreparedTurn = (t: TurnContext) => Promise<TurnOutcome>;

/** upstream's tool message content for a tool_result. */
export function toolResultContent(result: unknown, error: string | undefined | null): string {
  if (error) return `Error: ${error}`;
  if (result !== null && typeof result === 'object') return JSON.stringify(result);
  if (result !== undefined && result !== null && result !== '' && result !== false) return String(result);
  return 'Tool executed successfully';
}

async function lastUserText(services: ConversationServices, sessionId: string): Promise<string> {
  const messages = await services.sessions.messages(sessionId);
  for (let i = messages.length - 1; i >= 0; i--) if (messages[i]!.role === 'user') return messages[i]!.content ?? '';
  return '';
}

/**
 * Rejects the session's approvals past their deadline (reason `expired`) and answers them for the
 * LLM. Called by the expiry sweep and when a late answer arrives; needs the session lease.
 */
export async function expireApprovals(services: ConversationServices, sessionId: string): Promise<ToolCallRow[]> {
  const expired = await services.db.transaction(async (tx) => {
    const rows = await services.toolCalls.expire(sessionId, tx);
    for (const r of rows) {
      const content = JSON.stringify({
        status: 'rejected',
        reason: 'expired',
        tool_name: r.tool_name,
        feedback: 'No decision within the approval timeout',
      });
      await services.sessions.append(sessionId, { role: 'tool', content, tool_call_id: r.call_id, name: r.tool_name }, tx);
    }
    return rows;
  });
  for (const r of expired) {
    services.metrics.approvals.inc({ tool: toolLabel(r.tool_name), decision: 'expired' });
    services.metrics.toolCalls.inc({ tool: toolLabel(r.tool_name), outcome: 'expired' });
    if (r.sent_at) services.metrics.approvalDecisionSeconds.observe({ decision: 'expired' }, (Date.now() - r.sent_at.getTime()) / 1000);
    services.events.record({
      type: 'hitl.decision.made',
      sessionId,
      data: { tool_name: r.tool_name, call_id: r.call_id, decision: 'expired' },
    });
    services.events.record({
      type: 'approval.rejected',
      sessionId,
      data: { request_id: r.call_id, request_type: 'tool', subject: r.tool_name, reason: 'expired' },
    });
  }
  return expired;
}

/** The call a tool_result or hitl_decision answers, or the 4xx that explains why it cannot. */
async function openCall(
  services: ConversationServices,
  sessionId: string,
  callId: string,
  allowed: readonly ToolCallStatus[],
): Promise<ToolCallRow> {
  let row = await services.toolCalls.get(sessionId, callId);
  if (!row) throw runtimeErrors.RT_ERR_TOOL_CALL_NOT_FOUND(`No tool call ${callId} in this session`);
  if (row.status === 'pending_approval' && row.expires_at && row.expires_at.getTime() <= Date.now()) {
    await expireApprovals(services, sessionId);
    row = (await services.toolCalls.get(sessionId, callId))!;
  }
  if (row.status === 'rejected' && row.decision === 'expired')
    throw runtimeErrors.RT_ERR_APPROVAL_EXPIRED(`The approval of ${callId} (${row.tool_name}) expired; it was rejected`);
  if (!allowed.includes(row.status)) {
    if (allowed.length === 1 && allowed[0] === 'pending_approval')
      throw runtimeErrors.RT_ERR_NO_PENDING_APPROVAL(`No pending approval found for request_id=${callId} (it is ${row.status})`);
    throw runtimeErrors.RT_ERR_TOOL_CALL_CLOSED(`Tool call ${callId} is ${row.status}; it takes no answer now`);
  }
  return row;
}

/** After a call was answered: the next call of its answer, or back to the LLM. */
async function afterAnswer(t: TurnContext, batch: string): Promise<TurnOutcome> {
  const next = await t.services.toolCalls.nextQueued(t.sessionId, batch);
  if (next) return sendToolCall(t, next);
  return runAgent(t, () => lastUserText(t.services, t.sessionId), 'answer');
}

function supersedeContent(row: ToolCallRow): string {
  return `Error: the user sent a new message before ${row.tool_name} (${row.call_id}) was answered; it was not run`;
}

/**
 * Checks a message on its own (no session state): before a session is created or leased. The frame
 * rules are the protocol's, the same the gateway applies; only the agents are this runtime's.
 */
export function validateMessage(services: ConversationServices, message: TurnFrame): void {
  assertTurnFrame(message, { invalid: runtimeErrors.RT_ERR_INVALID_MESSAGE, unsupported: runtimeErrors.RT_ERR_UNSUPPORTED_MESSAGE_TYPE });
  const agent = message.type === 'user_message' || message.type === 'switch_agent' ? message.agent_type : undefined;
  if ((message.type === 'switch_agent' || agent !== undefined) && (!isAgentType(agent) || !services.agents.has(agent))) {
    throw runtimeErrors.RT_ERR_INVALID_AGENT(
      `Invalid agent_type: '${String(agent)}'. Available: ${[...services.agents.keys()].join(', ')}`,
    );
  }
}

export async function prepare(
  services: ConversationServices,
  sessionId: string,
  session: LeasedSession,
  message: TurnFrame,
): Promise<PreparedTurn> {
  validateMessage(services, message);
  const currentAgent = session.current_agent;
  switch (message.type) {
    case 'user_message': {
      const content = message.content;
      const asked = message.agent_type;
      return async (t) => {
        // calls the IDE never answered get an answer first: the history stays valid for the LLM
        const open = session.open_tool_calls > 0 ? await services.toolCalls.open(sessionId) : [];
        // (stored already, as a rule, by the statement that took the lease: session-lease.ts)
        if (!open.length) {
          if (!session.message_stored) await services.sessions.append(sessionId, { role: 'user', content });
        } else {
          await services.db.transaction(async (tx) => {
            for (const row of open) {
              if (
                !(await services.toolCalls.transition(
                  sessionId,
                  row.call_id,
                  OPEN_STATUSES,
                  'superseded',
                  { decisionReason: 'superseded', completed: true },
                  tx,
                ))
              )
                continue;
              await services.sessions.append(
                sessionId,
                { role: 'tool', content: supersedeContent(row), tool_call_id: row.call_id, name: row.tool_name },
                tx,
              );
            }
            await services.sessions.append(sessionId, { role: 'user', content }, tx);
          });
        }
        for (const row of open) services.metrics.toolCalls.inc({ tool: toolLabel(row.tool_name), outcome: 'superseded' });
        services.metrics.messagesPersisted.inc({ role: 'user' });
        if (asked && asked !== t.agent)
          await switchAgent(t, asked as AgentType, {
            reason: 'User requested agent switch',
            confidence: 'high',
            source: 'user',
            isFinal: false,
          });
        return runAgent(t, async () => content);
      };
    }
    case 'tool_result': {
      const row = await openCall(services, sessionId, message.call_id, ['pending_approval', 'approved', 'awaiting_result']);
      const error = typeof message.error === 'string' && message.error !== '' ? message.error : undefined;
      return async (t) => {
        const wasPending = row.status === 'pending_approval';
        const to: ToolCallStatus = error ? (wasPending ? 'rejected' : 'failed') : 'completed';
        const fields = wasPending
          ? {
              decision: error ? 'reject' : 'approve',
              decisionReason: error ? `Tool execution failed: ${error}` : 'approved by tool_result',
              completed: true,
            }
          : { completed: true };
        const done = await services.db.transaction(async (tx) => {
          const moved = await services.toolCalls.transition(sessionId, row.call_id, [row.status], to, fields, tx);
          if (!moved) return undefined;
          await services.sessions.append(
            sessionId,
            { role: 'tool', content: toolResultContent(message.result, error), tool_call_id: row.call_id, name: row.tool_name },
            tx,
          );
          return moved;
        });
        if (!done) throw runtimeErrors.RT_ERR_TOOL_CALL_CLOSED(`Tool call ${row.call_id} was answered or expired meanwhile`);
        services.metrics.messagesPersisted.inc({ role: 'tool' });
        services.metrics.toolCalls.inc({ tool: toolLabel(row.tool_name), outcome: to });
        if (wasPending) {
          const decision = error ? 'reject' : 'approve';
          services.metrics.approvals.inc({ tool: toolLabel(row.tool_name), decision });
          if (row.sent_at) services.metrics.approvalDecisionSeconds.observe({ decision }, (Date.now() - row.sent_at.getTime()) / 1000);
          t.event('hitl.decision.made', { tool_name: row.tool_name, call_id: row.call_id, decision, via: 'tool_result' });
          t.event(error ? 'approval.rejected' : 'approval.approved', {
            request_id: row.call_id,
            request_type: 'tool',
            subject: row.tool_name,
            ...(error ? { reason: `Tool execution failed: ${error}` } : {}),
          });
        }
        t.event(error ? 'tool.execution.failed' : 'tool.execution.completed', {
          tool_name: row.tool_name,
          call_id: row.call_id,
          agent: row.agent,
          ...(error ? { error } : {}),
        });
        return afterAnswer(t, row.batch);
      };
    }
    case 'hitl_decision': {
      const decision = String(message.decision).toLowerCase();
      const edited = message.modified_arguments;
      const row = await openCall(services, sessionId, message.call_id, ['pending_approval']);
      return async (t) => {
        const feedback = typeof message.feedback === 'string' && message.feedback ? message.feedback : undefined;
        const observe = (): void => {
          services.metrics.approvals.inc({ tool: toolLabel(row.tool_name), decision });
          if (row.sent_at) services.metrics.approvalDecisionSeconds.observe({ decision }, (Date.now() - row.sent_at.getTime()) / 1000);
          t.event('hitl.decision.made', { tool_name: row.tool_name, call_id: row.call_id, decision, ...(feedback ? { feedback } : {}) });
        };
        if (decision === 'reject') {
          const reason = feedback ?? 'User rejected this operation';
          const done = await services.db.transaction(async (tx) => {
            const moved = await services.toolCalls.transition(
              sessionId,
              row.call_id,
              ['pending_approval'],
              'rejected',
              { decision: 'reject', decisionReason: reason, completed: true },
              tx,
            );
            if (!moved) return undefined;
            const content = JSON.stringify({ status: 'rejected', tool_name: row.tool_name, feedback: reason });
            await services.sessions.append(sessionId, { role: 'tool', content, tool_call_id: row.call_id, name: row.tool_name }, tx);
            return moved;
          });
          if (!done) throw runtimeErrors.RT_ERR_NO_PENDING_APPROVAL(`No pending approval found for request_id=${row.call_id}`);
          observe();
          services.metrics.toolCalls.inc({ tool: toolLabel(row.tool_name), outcome: 'rejected' });
          t.event('approval.rejected', { request_id: row.call_id, request_type: 'tool', subject: row.tool_name, reason });
          return afterAnswer(t, row.batch);
        }
        const finalArguments = decision === 'edit' ? (edited as Record<string, unknown>) : row.arguments;
        const moved = await services.toolCalls.transition(sessionId, row.call_id, ['pending_approval'], 'approved', {
          decision,
          decisionReason: feedback ?? decision,
          finalArguments,
        });
        if (!moved) throw runtimeErrors.RT_ERR_NO_PENDING_APPROVAL(`No pending approval found for request_id=${row.call_id}`);
        observe();
        t.event('approval.approved', { request_id: row.call_id, request_type: 'tool', subject: row.tool_name });
        // the IDE executes the call with the final arguments and answers with tool_result
        await t.emit({
          type: 'tool_call',
          call_id: row.call_id,
          tool_name: row.tool_name,
          arguments: finalArguments,
          requires_approval: false,
          is_final: true,
          metadata: { approved: true, decision, agent: row.agent },
        });
        return 'tool_call';
      };
    }
    case 'switch_agent': {
      const target = message.agent_type as AgentType;
      return async (t) => {
        const reason = typeof message.reason === 'string' && message.reason ? message.reason : 'User requested agent switch';
        if (target === currentAgent) {
          const info = { from_agent: target, to_agent: target, reason, confidence: 'high' };
          await t.emit({ type: 'agent_switched', content: `Switched to ${target} agent`, ...info, is_final: true, metadata: info });
          return 'switched';
        }
        await switchAgent(t, target, { reason, confidence: 'high', source: 'user', isFinal: true });
        return 'switched';
      };
    }
    default:
      throw runtimeErrors.RT_ERR_UNSUPPORTED_MESSAGE_TYPE(`Unsupported message type: ${String((message as { type?: unknown }).type)}`);
  }
}
