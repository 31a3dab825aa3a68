/**
 * Runtime metrics: conversation turns by message type, agent and outcome; the LLM as the runtime
 * sees it; tool calls, approvals and agent switches; the session lease; persisted messages.
 * Label values are bounded: agent types, tool names of the tool specs (else `other`), fixed outcomes.
 */
import { OPERATION_DURATION_BUCKETS, TTFT_BUCKETS, type ServiceMetrics } from '@codelab/service-kit';
import { ALL_AGENT_TYPES } from './agents/definitions.ts';
import { TOOL_NAMES } from './agents/tool-specs.ts';

const TOOLS = new Set<string>(TOOL_NAMES);
const AGENTS = new Set<string>(ALL_AGENT_TYPES);
export const toolLabel = (tool: string): string => (TOOLS.has(tool) ? tool : 'other');
export const agentLabel = (agent: string): string => (AGENTS.has(agent) ? agent : 'other');

/** Seconds a human takes to decide (approvals): 1 s … 1 h. */
const DECISION_BUCKETS = [1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600];

export function createRuntimeMetrics(m: ServiceMetrics) {
  return {
    turns: m.counter({
      name: 'runtime_turns_total',
      help: 'Conversation turns by message type, agent (the one that answered last) and outcome (ok, tool_call, switched, cancelled, llm_error, persistence_error, error, refused, lease_lost)',
      labelNames: ['type', 'agent', 'outcome'],
    }),
    turnDuration: m.histogram({
      name: 'runtime_turn_duration_seconds',
      help: 'Duration of a conversation turn, from request to final chunk',
      labelNames: ['type', 'outcome'],
      buckets: OPERATION_DURATION_BUCKETS,
    }),
    activeTurns: m.gauge({ name: 'runtime_active_turns', help: 'Turns being processed now' }),
    llmTimeToFirstChunk: m.histogram({
      name: 'gen_ai_client_operation_time_to_first_chunk_seconds',
      help: 'Time from the LLM request to its first streamed token, seen by the runtime (gen_ai.client.operation.time_to_first_chunk)',
      labelNames: ['model'],
      buckets: TTFT_BUCKETS,
    }),
    llmDuration: m.histogram({
      name: 'gen_ai_client_operation_duration_seconds',
      help: 'Duration of LLM calls seen by the runtime, until the stream ends (gen_ai.client.operation.duration)',
      labelNames: ['model', 'outcome'],
      buckets: OPERATION_DURATION_BUCKETS,
    }),
    messagesPersisted: m.counter({
      name: 'runtime_messages_persisted_total',
      help: 'Messages appended to session history, by role',
      labelNames: ['role'],
    }),
    toolCalls: m.counter({
      name: 'runtime_tool_calls_total',
      help: 'Tool calls by tool and outcome (requested, forbidden, invalid, sent, completed, failed, rejected, expired, superseded)',
      labelNames: ['tool', 'outcome'],
    }),
    approvals: m.counter({
      name: 'runtime_approvals_total',
      help: 'Human decisions on tool calls by tool and decision (approve, edit, reject, expired)',
      labelNames: ['tool', 'decision'],
    }),
    approvalDecisionSeconds: m.histogram({
      name: 'runtime_approval_decision_seconds',
      help: 'Time from a tool call needing approval being sent to its decision, by decision',
      labelNames: ['decision'],
      buckets: DECISION_BUCKETS,
    }),
    agentSwitches: m.counter({
      name: 'runtime_agent_switches_total',
      help: 'Agent switches by source (routing, user, agent), from and to agent',
      labelNames: ['source', 'from', 'to'],
    }),
    routing: m.counter({
      name: 'runtime_routing_total',
      help: 'Orchestrator classifications by method (llm, keywords, single_agent) and chosen agent',
      labelNames: ['method', 'agent'],
    }),
    answerFrameTokens: m.histogram({
      name: 'runtime_answer_frame_tokens',
      help: 'LLM tokens (stream chunks) carried by each answer frame sent to the IDE (gathered for AGENT_RUNTIME__TOKEN_FRAME_INTERVAL)',
      buckets: [1, 2, 3, 4, 6, 8, 12, 16, 32, 64],
    }),
    frameTickAnswers: m.histogram({
      name: 'runtime_frame_tick_answers',
      help: 'Answers whose gathered tokens left at one tick of the frame clock (their frames reach the frame log as one Redis pipeline)',
      buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256],
    }),
    historyTrimmed: m.counter({ name: 'runtime_history_trimmed_total', help: 'LLM calls whose history was cut to the token budget' }),
    historyReads: m.counter({
      name: 'runtime_history_reads_total',
      help: "Histories read with a turn's lease, by read: after_kept (only the messages after those kept from the session's last turn here), whole, not_current (the turn's first LLM call reads it again)",
      labelNames: ['read'],
    }),
    historyCacheBytes: m.gauge({
      name: 'runtime_history_cache_bytes',
      help: 'Estimated memory of the session histories kept between turns (AGENT_RUNTIME__HISTORY_CACHE_MB)',
    }),
    historyCacheSessions: m.gauge({ name: 'runtime_history_cache_sessions', help: 'Sessions whose history is kept between turns' }),
    sessionLockWait: m.histogram({
      name: 'runtime_session_lock_wait_seconds',
      help: 'Time a turn waited for its session lease (another turn of the session, on any instance)',
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30],
    }),
    sessionLockTimeouts: m.counter({
      name: 'runtime_session_lock_timeouts_total',
      help: 'Turns refused because another turn of the session kept it past AGENT_RUNTIME__SESSION_LOCK_TIMEOUT',
    }),
    frameLogErrors: m.counter({ name: 'runtime_frame_log_errors_total', help: 'Frames the resume log could not keep (Redis failures)' }),
    resumes: m.counter({
      name: 'runtime_frame_follows_total',
      help: 'Frame log reads for reconnecting clients, by outcome (replayed, nothing_missed, frames_lost, error)',
      labelNames: ['outcome'],
    }),
    turnsInterrupted: m.counter({
      name: 'runtime_turns_interrupted_total',
      help: 'Turns closed with RT_ERR_TURN_INTERRUPTED because their runtime stopped before the final frame, by who found them (follower: a client following the session; next_lease: the next lease of the session)',
      labelNames: ['detected_by'],
    }),
    cancels: m.counter({
      name: 'runtime_turn_cancels_total',
      help: 'Cancel requests by result (cancelled, nothing_running)',
      labelNames: ['result'],
    }),
  };
}

export type RuntimeMetrics = ReturnType<typeof createRuntimeMetrics>;
