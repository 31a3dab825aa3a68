/**
 * PromQL of the agent runtime dashboard: turns, persisted messages, the LLM as the runtime sees it.
 * `gen_ai_client_operation_*` is also exported by the llm-proxy (towards its upstream, with a
 * `provider` label); the runtime's series have no `provider`, hence `provider=""`.
 */
import { quantile, sumRate } from '../lib.ts';

const RUNTIME_SIDE = 'provider=""';

/** Turns per second by message type and outcome. */
export function turnsByOutcome(): string {
  return sumRate('runtime_turns_total', ['type', 'outcome']);
}

/** Share of turns that did not end `ok`. */
export function turnErrorRatio(): string {
  const all = 'sum(rate(runtime_turns_total[$__rate_interval]))';
  return `(sum(rate(runtime_turns_total{outcome!="ok"}[$__rate_interval])) or ${all} * 0) / ${all}`;
}

/** The q-quantile of turn duration. */
export function turnDuration(q: number): string {
  return quantile(q, 'runtime_turn_duration_seconds', []);
}

/** Turns being processed now. */
export function activeTurns(): string {
  return 'sum(runtime_active_turns)';
}

/** Messages appended to session history per second, by role. */
export function messagesPersistedByRole(): string {
  return sumRate('runtime_messages_persisted_total', ['role']);
}

/** The q-quantile of the LLM's time to first chunk as the runtime sees it, by model. */
export function llmTimeToFirstChunk(q: number): string {
  return quantile(q, 'gen_ai_client_operation_time_to_first_chunk_seconds', ['model'], RUNTIME_SIDE);
}

/** The q-quantile of LLM call duration (until the stream ends) as the runtime sees it, by model. */
export function llmCallDuration(q: number): string {
  return quantile(q, 'gen_ai_client_operation_duration_seconds', ['model']);
}

/** LLM calls per second by model and outcome, as the runtime sees them. */
export function llmCallsByOutcome(): string {
  return sumRate('gen_ai_client_operation_duration_seconds_count', ['model', 'outcome']);
}

/** Turns per second by the agent that answered and outcome. */
export function turnsByAgent(): string {
  return sumRate('runtime_turns_total', ['agent', 'outcome']);
}

/** Tool calls per second by tool and outcome (requested, sent, completed, forbidden, rejected, expired, …). */
export function toolCallsByOutcome(): string {
  return sumRate('runtime_tool_calls_total', ['tool', 'outcome']);
}

/** Human decisions on tool calls per second, by decision (approve, edit, reject, expired). */
export function approvalsByDecision(): string {
  return sumRate('runtime_approvals_total', ['decision']);
}

/** The q-quantile of the time humans take to decide on an approval. */
export function approvalDecisionTime(q: number): string {
  return quantile(q, 'runtime_approval_decision_seconds', []);
}

/** Agent switches per second by source (routing, user, agent) and target agent. */
export function agentSwitches(): string {
  return sumRate('runtime_agent_switches_total', ['source', 'to']);
}

/** The q-quantile of the time a turn waited for its session's lease (another turn of the session). */
export function sessionLockWait(q: number): string {
  return quantile(q, 'runtime_session_lock_wait_seconds', []);
}
