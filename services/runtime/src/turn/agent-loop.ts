/**
 * The agent at work: routing (the orchestrator's classification), LLM steps that stream tokens to
 * the IDE, and the tool calls an answer asks for. Every call of an answer is checked before
 * anything is stored (agent permissions, file restrictions, argument JSON): a refused call is
 * stored with an error result for the LLM, never as an orphan. Calls go to the IDE one at a time,
 * in order; `switch_mode` is handled here. Each step is bounded by AGENT_RUNTIME__MAX_STEPS_PER_TURN.
 * A turn whose session lease is lost stops where it is (LeaseLostError goes up to the runner):
 * no error frame, no LLM failure recorded for it.
 */
import { randomUUID } from 'node:crypto';
import { SpanStatusCode, context, trace } from '@opentelemetry/api';
import type { ChatMessage, ToolCall } from '@codelab/protocol';
import { startSpan } from '@codelab/service-kit';
import { refusal, type AgentDefinition, type AgentType } from '../agents/definitions.ts';
import { classificationMessages, classifyByKeywords, parseClassification, type Classification } from '../agents/router.ts';
import { toolSpecs } from '../agents/tool-specs.ts';
import { runtimeErrors } from '../errors.ts';
import { LLM_FAILURE_TEXT, LlmError, type LlmFailure } from '../llm-client.ts';
import { agentLabel, toolLabel } from '../metrics.ts';
import type { SwitchSource } from '../store/agent-context.ts';
import type { ToolCallRow } from '../store/tool-calls.ts';
import { buildPrompt } from './history.ts';
import { CancelledError } from './running-turns.ts';
import { LeaseLostError } from './session-lease.ts';
import { TokenFrames } from './token-frames.ts';
import type { TurnContext } from './turn-context.ts';

const tracer = trace.getTracer('codelab-runtime');

/** How a turn ended: the final frame it sent. */
export type TurnOutcome = 'ok' | 'tool_call' | 'switched' | 'cancelled' | 'llm_error' | 'persistence_error' | 'error';

export function isCancelled(signal: AbortSignal): boolean {
  return signal.aborted && signal.reason instanceof CancelledError;
}

/** Rethrows when the turn stopped because its lease was lost (`err` is that, or its signal says so). */
function rethrowIfLost(t: TurnContext, err: unknown): void {
  if (err instanceof LeaseLostError) throw err;
  if (t.signal.aborted && t.signal.reason instanceof LeaseLostError) throw t.signal.reason;
  t.throwIfLost();
}

async function fail(t: TurnContext, code: keyof typeof runtimeErrors, message: string, outcome: TurnOutcome): Promise<TurnOutcome> {
  await t.emit({ type: 'error', error: message, content: message, code, is_final: true });
  t.event('agent.error.occurred', { agent: t.agent, error_message: message, error_type: code });
  return outcome;
}

export async function switchAgent(
  t: TurnContext,
  to: AgentType,
  s: { reason: string; confidence: string; source: SwitchSource; isFinal: boolean; method?: string },
): Promise<void> {
  const switched = await t.services.agentContext.switchAgent(t.sessionId, {
    to,
    reason: s.reason,
    confidence: s.confidence,
    source: s.source,
  });
  const from = switched?.from ?? t.agent;
  t.agent = to;
  t.services.metrics.agentSwitches.inc({ source: s.source, from: agentLabel(from), to: agentLabel(to) });
  t.event('agent.switched', { from_agent: from, to_agent: to, reason: s.reason, confidence: s.confidence, source: s.source });
  const info = { from_agent: from, to_agent: to, reason: s.reason, confidence: s.confidence };
  await t.emit({
    type: 'agent_switched',
    content: `Switched to ${to} agent`,
    ...info,
    is_final: s.isFinal,
    metadata: { ...info, ...(s.method ? { classification_method: s.method } : {}) },
  });
}

/** The orchestrator's choice for the last user message. */
async function route(t: TurnContext, message: string): Promise<Classification> {
  const { services } = t;
  if (!services.multiAgentMode)
    return {
      agent: 'universal',
      confidence: 'high',
      reasoning: 'Single-agent mode: only Universal agent available',
      method: 'single_agent',
    };
  const allowed = [...services.agents.keys()].filter((a) => a !== 'orchestrator');
  let text = '';
  try {
    for await (const ev of services.llm.streamChat(classificationMessages(message), t.signal, { extra: { temperature: 0.3 } })) {
      if (ev.kind === 'token') text += ev.token;
    }
    return { ...parseClassification(text, allowed), method: 'llm' };
  } catch (err) {
    if (isCancelled(t.signal)) throw err;
    rethrowIfLost(t, err);
    t.log.info({ err: { message: (err as Error).message } }, 'LLM classification failed; routing by keywords');
    return classifyByKeywords(message, (err as Error).message);
  }
}

type Planned =
  | { kind: 'ide'; call: ToolCall; args: Record<string, unknown>; approval: boolean; reason: string | null }
  | { kind: 'switch'; call: ToolCall; mode: AgentType; reason: string }
  | { kind: 'refused'; call: ToolCall; error: string; outcome: 'forbidden' | 'invalid' };

function plan(t: TurnContext, agent: AgentDefinition, calls: ToolCall[], taken: Set<string>): Planned[] {
  let switched = false;
  return calls.map((raw): Planned => {
    let id = raw.id || `call_${randomUUID().slice(0, 12)}`;
    if (taken.has(id)) id = `${id}_${randomUUID().slice(0, 8)}`; // providers may repeat ids across answers
    taken.add(id);
    const call: ToolCall = { ...raw, id };
    const name = call.function.name;
    let args: unknown;
    try {
      args = call.function.arguments.trim() ? JSON.parse(call.function.arguments) : {};
    } catch {
      args = undefined;
    }
    if (!args || typeof args !== 'object' || Array.isArray(args)) {
      return { kind: 'refused', call, error: `Invalid arguments for tool '${name}': expected a JSON object`, outcome: 'invalid' };
    }
    const a = args as Record<string, unknown>;
    const refused = refusal(agent, name, a);
    if (refused) return { kind: 'refused', call, error: refused, outcome: 'forbidden' };
    if (name === 'switch_mode') {
      const mode = typeof a.mode === 'string' ? a.mode : 'orchestrator';
      if (switched) return { kind: 'refused', call, error: 'Only one switch_mode per answer is handled', outcome: 'invalid' };
      if (!t.services.agents.has(mode as AgentType) || mode === agent.type) {
        return {
          kind: 'refused',
          call,
          error: `Cannot switch to '${mode}': available modes are ${[...t.services.agents.keys()].filter((m) => m !== agent.type).join(', ')}`,
          outcome: 'invalid',
        };
      }
      switched = true;
      return {
        kind: 'switch',
        call,
        mode: mode as AgentType,
        reason: typeof a.reason === 'string' && a.reason ? a.reason : 'Agent requested switch',
      };
    }
    const decision = t.services.policy.decide(agent.type, name);
    return { kind: 'ide', call, args: a, approval: decision.approval, reason: decision.reason };
  });
}

/** Sends a queued call to the IDE: the turn's final frame. */
export async function sendToolCall(t: TurnContext, row: ToolCallRow): Promise<TurnOutcome> {
  const sent = await t.services.toolCalls.markSent(t.sessionId, row.call_id, t.services.approvalTimeoutMs);
  if (!sent) return fail(t, 'RT_ERR_INTERNAL', `Tool call ${row.call_id} could not be sent: it is no longer queued`, 'error');
  t.services.metrics.toolCalls.inc({ tool: toolLabel(sent.tool_name), outcome: 'sent' });
  if (sent.requires_approval) {
    t.event('tool.approval.required', {
      tool_name: sent.tool_name,
      call_id: sent.call_id,
      reason: sent.approval_reason,
      arguments: sent.arguments,
    });
    t.event('approval.requested', {
      request_id: sent.call_id,
      request_type: 'tool',
      subject: sent.tool_name,
      reason: sent.approval_reason,
    });
  }
  await t.emit({
    type: 'tool_call',
    call_id: sent.call_id,
    tool_name: sent.tool_name,
    arguments: sent.arguments,
    requires_approval: sent.requires_approval,
    is_final: true,
    metadata: {
      agent: sent.agent,
      ...(sent.requires_approval ? { approval_reason: sent.approval_reason, expires_at: sent.expires_at?.toISOString() } : {}),
    },
  });
  return 'tool_call';
}

/**
 * Stores an answer's tool calls (checked first) in one transaction with the assistant message and
 * the immediate results of refused calls and of `switch_mode`; then switches agent if asked.
 * Returns the first call for the IDE, if any.
 */
async function takeToolCalls(
  t: TurnContext,
  agent: AgentDefinition,
  content: string,
  calls: ToolCall[],
): Promise<{ first?: ToolCallRow; switchTo?: { mode: AgentType; reason: string } }> {
  const { services } = t;
  const taken = await services.toolCalls.existingIds(
    t.sessionId,
    calls.map((c) => c.id),
  );
  const planned = plan(t, agent, calls, taken);
  const batch = randomUUID();
  await services.db.transaction(async (tx) => {
    await services.sessions.append(
      t.sessionId,
      { role: 'assistant', content, tool_calls: planned.map((p) => p.call), metadata: { agent: agent.type } },
      tx,
    );
    await services.toolCalls.insertBatch(
      t.sessionId,
      batch,
      planned.map((p, position) => ({
        callId: p.call.id,
        position,
        agent: agent.type,
        toolName: p.call.function.name,
        arguments: p.kind === 'ide' ? p.args : {},
        requiresApproval: p.kind === 'ide' && p.approval,
        approvalReason: p.kind === 'ide' ? p.reason : null,
        status: p.kind === 'ide' ? 'queued' : p.kind === 'switch' ? 'completed' : 'forbidden',
      })),
      tx,
    );
    for (const p of planned) {
      if (p.kind === 'ide') continue;
      const result = p.kind === 'switch' ? `Switched to ${p.mode} agent` : `Error: ${p.error}`;
      await services.sessions.append(
        t.sessionId,
        { role: 'tool', content: result, tool_call_id: p.call.id, name: p.call.function.name },
        tx,
      );
    }
  });
  services.metrics.messagesPersisted.inc({ role: 'assistant' });
  for (const p of planned) {
    const tool = p.call.function.name;
    services.metrics.toolCalls.inc({ tool: toolLabel(tool), outcome: 'requested' });
    t.event('tool.execution.requested', {
      tool_name: tool,
      call_id: p.call.id,
      agent: agent.type,
      arguments: p.kind === 'ide' ? p.args : {},
    });
    if (p.kind === 'refused') {
      services.metrics.toolCalls.inc({ tool: toolLabel(tool), outcome: p.outcome });
      services.metrics.messagesPersisted.inc({ role: 'tool' });
      t.event('tool.execution.failed', { tool_name: tool, call_id: p.call.id, agent: agent.type, error: p.error, reason: p.outcome });
      t.log.info({ tool, agent: agent.type, reason: p.outcome }, 'tool call refused; the LLM gets the error');
    }
  }
  const sw = planned.find((p): p is Extract<Planned, { kind: 'switch' }> => p.kind === 'switch');
  const first = await services.toolCalls.nextQueued(t.sessionId, batch);
  return { ...(first ? { first } : {}), ...(sw ? { switchTo: { mode: sw.mode, reason: sw.reason } } : {}) };
}

type Step = { kind: 'answer' } | { kind: 'tools'; content: string; calls: ToolCall[] } | { kind: 'stopped'; outcome: TurnOutcome };

/**
 * What a turn was started by, for the hint after a failed LLM call: a user message (kept; sending
 * it again retries) or the IDE's or the user's answer to a tool call (kept; the answer itself
 * cannot be sent twice, a new message goes on).
 */
export type TurnTrigger = 'user_message' | 'answer';

const RETRY_HINT: Record<TurnTrigger, string> = {
  user_message: 'your message is kept, send it again.',
  answer: 'your answer is kept, send a message to continue.',
};

/** What an LLM call of `agent` sends: its system prompt and as much of the session's history as the budget allows. */
async function prompt(t: TurnContext, agent: AgentDefinition): Promise<ChatMessage[]> {
  const { services } = t;
  // the turn's first call has the history its lease's statement read (session-lease.ts)
  const history = t.takeHistory() ?? (await services.sessions.messages(t.sessionId));
  const { messages, dropped } = buildPrompt(agent.systemPrompt, history, services.historyTokenBudget);
  if (dropped > 0) services.metrics.historyTrimmed.inc();
  return messages;
}

/** One LLM call for `agent`: tokens stream to the IDE as they come. */
async function llmStep(t: TurnContext, agent: AgentDefinition, after: TurnTrigger): Promise<Step> {
  const { services } = t;
  t.steps++;
  // (the prompt is encoded by streamChat at once: this step keeps no history while the answer streams)
  const events = services.llm.streamChat(await prompt(t, agent), t.signal, { tools: toolSpecs(agent.allowedTools) });
  const started = performance.now();
  let content = '';
  let calls: ToolCall[] = [];
  let usage = { prompt_tokens: 0, completion_tokens: 0 };
  const record = (success: boolean, error?: string): void => {
    services.events.recordLlmRequest({
      sessionId: t.sessionId,
      agent: agent.type,
      model: services.llm.model,
      durationMs: Math.round(performance.now() - started),
      promptTokens: usage.prompt_tokens,
      completionTokens: usage.completion_tokens,
      hasToolCalls: calls.length > 0,
      success,
      ...(error ? { error } : {}),
    });
  };
  // tokens leave gathered: the first at once, the next ones at the runtime's frame tick (AGENT_RUNTIME__TOKEN_FRAME_INTERVAL)
  const tokens = new TokenFrames(
    (text) => t.emit({ type: 'assistant_message', token: text, is_final: false }),
    services.frameClock,
    (n) => services.metrics.answerFrameTokens.observe(n),
  );
  try {
    for await (const ev of events) {
      if (ev.kind === 'token') {
        content += ev.token;
        await tokens.push(ev.token);
      } else if (ev.kind === 'tool_calls') calls = calls.concat(ev.calls);
      else if (ev.kind === 'usage') usage = ev.usage;
    }
    await tokens.flush();
  } catch (err) {
    rethrowIfLost(t, err);
    if (isCancelled(t.signal)) {
      // the cancelled answer's final frame carries its whole text
      await tokens.discard();
      record(false, 'cancelled');
      return { kind: 'stopped', outcome: await cancelled(t, agent, content) };
    }
    // what the LLM sent before it failed still reaches the IDE, ahead of the error
    await tokens.flush().catch((flushErr: unknown) => rethrowIfLost(t, flushErr));
    // the user reads one sentence; the raw cause (e.g. undici's "other side closed") goes to the log and the span
    const failure: LlmFailure = err instanceof LlmError ? err.failure : 'refused';
    const message = `${LLM_FAILURE_TEXT[failure]}; ${RETRY_HINT[after]}`;
    record(false, LLM_FAILURE_TEXT[failure]);
    const span = trace.getActiveSpan();
    span?.setAttribute('error.type', failure);
    span?.setStatus({ code: SpanStatusCode.ERROR, message: (err as Error).message });
    t.log.warn({ err, agent: agent.type, llm_failure: failure, streamed_chars: content.length }, 'LLM call failed mid-turn');
    return { kind: 'stopped', outcome: await fail(t, 'RT_ERR_LLM_UNAVAILABLE', message, 'llm_error') };
  }
  record(true);
  if (calls.length) return { kind: 'tools', content, calls };
  // the answer, the session's release and the final frame: one commit (TurnContext.end)
  try {
    await t.end({ type: 'assistant_message', content, is_final: true, metadata: { agent: agent.type } }, (end) =>
      services.sessions.append(
        t.sessionId,
        { role: 'assistant', content, metadata: { agent: agent.type }, token_count: usage.completion_tokens },
        undefined,
        end,
      ),
    );
  } catch (err) {
    rethrowIfLost(t, err);
    t.log.error({ err }, 'assistant message could not be persisted');
    const { def } = runtimeErrors.RT_ERR_PERSISTENCE;
    return { kind: 'stopped', outcome: await fail(t, 'RT_ERR_PERSISTENCE', def.message, 'persistence_error') };
  }
  services.metrics.messagesPersisted.inc({ role: 'assistant' });
  return { kind: 'answer' };
}

/** A cancelled turn keeps what was said so far and ends with a final frame that says so. */
export async function cancelled(t: TurnContext, agent: AgentDefinition | undefined, content: string): Promise<TurnOutcome> {
  if (content) {
    await t.services.sessions.append(t.sessionId, {
      role: 'assistant',
      content,
      metadata: { agent: agent?.type ?? t.agent, cancelled: true },
    });
    t.services.metrics.messagesPersisted.inc({ role: 'assistant' });
  }
  await t.emit({ type: 'assistant_message', content, is_final: true, metadata: { cancelled: true, agent: agent?.type ?? t.agent } });
  return 'cancelled';
}

/**
 * Runs the current agent until it answers, hands a tool call to the IDE, or fails: the
 * orchestrator routes first; `switch_mode` hands over to another agent within the same turn.
 */
export async function runAgent(
  t: TurnContext,
  lastUserMessage: () => Promise<string>,
  after: TurnTrigger = 'user_message',
): Promise<TurnOutcome> {
  const { services } = t;
  for (;;) {
    rethrowIfLost(t, undefined);
    if (isCancelled(t.signal)) return cancelled(t, undefined, '');
    if (t.steps >= services.maxStepsPerTurn) {
      return fail(
        t,
        'RT_ERR_TOO_MANY_STEPS',
        `The turn stopped after ${services.maxStepsPerTurn} LLM calls without an answer (AGENT_RUNTIME__MAX_STEPS_PER_TURN)`,
        'error',
      );
    }
    if (t.agent === 'orchestrator' || !services.agents.has(t.agent as AgentType)) {
      const c = await route(t, await lastUserMessage());
      services.metrics.routing.inc({ method: c.method, agent: agentLabel(c.agent) });
      await switchAgent(t, c.agent, { reason: c.reasoning, confidence: c.confidence, source: 'routing', isFinal: false, method: c.method });
    }
    const agent = services.agents.get(t.agent as AgentType)!;
    const span = startSpan(tracer, `invoke_agent ${agent.type}`, {}, () => ({
      'gen_ai.operation.name': 'invoke_agent',
      'gen_ai.agent.name': agent.type,
      'codelab.session.id': t.sessionId,
    }));
    let step: Step;
    try {
      step = await context.with(trace.setSpan(context.active(), span), () => llmStep(t, agent, after));
    } catch (err) {
      span.setStatus({ code: SpanStatusCode.ERROR, message: (err as Error).message });
      throw err;
    } finally {
      span.end();
    }
    if (step.kind === 'answer') return 'ok';
    if (step.kind === 'stopped') return step.outcome;
    const { first, switchTo } = await takeToolCalls(t, agent, step.content, step.calls);
    if (switchTo) await switchAgent(t, switchTo.mode, { reason: switchTo.reason, confidence: 'medium', source: 'agent', isFinal: false });
    if (first) return sendToolCall(t, first);
    // only refused calls or a switch: the LLM sees the results and goes on
  }
}
