/** Runtime metrics: conversation turns, the LLM as the runtime sees it, persisted messages. */
import { GENAI_DURATION_BUCKETS, type ServiceMetrics } from '@codelab/service-kit';

export function createRuntimeMetrics(m: ServiceMetrics) {
  return {
    turns: m.counter({ name: 'runtime_turns_total', help: 'Conversation turns by message type and outcome', labelNames: ['type', 'outcome'] }),
    turnDuration: m.histogram({
      name: 'runtime_turn_duration_seconds',
      help: 'Duration of a conversation turn, from request to final chunk',
      labelNames: ['type', 'outcome'],
      buckets: GENAI_DURATION_BUCKETS,
    }),
    activeTurns: m.gauge({ name: 'runtime_active_turns', help: 'Turns being processed now' }),
    llmTimeToFirstChunk: m.histogram({
      name: 'gen_ai_client_operation_time_to_first_chunk_seconds',
      help: 'Time from the LLM request to its first streamed token, seen by the runtime (gen_ai.client.operation.time_to_first_chunk)',
      labelNames: ['model'],
      buckets: GENAI_DURATION_BUCKETS,
    }),
    llmDuration: m.histogram({
      name: 'gen_ai_client_operation_duration_seconds',
      help: 'Duration of LLM calls seen by the runtime, until the stream ends (gen_ai.client.operation.duration)',
      labelNames: ['model', 'outcome'],
      buckets: GENAI_DURATION_BUCKETS,
    }),
    messagesPersisted: m.counter({ name: 'runtime_messages_persisted_total', help: 'Messages appended to session history, by role', labelNames: ['role'] }),
  };
}

export type RuntimeMetrics = ReturnType<typeof createRuntimeMetrics>;
