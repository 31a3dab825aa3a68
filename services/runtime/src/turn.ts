/**
 * One conversation turn for a `user_message`: persist the user's message, stream the LLM's answer
 * token by token to the caller, persist the answer, send the final chunk. A failure after the
 * user's message is stored ends the turn with an `error` chunk and keeps what was stored. A caller
 * that goes away does not stop the turn: the answer is still completed and persisted.
 */
import type { FastifyBaseLogger } from 'fastify';
import type { ChatMessage, StreamChunk } from '@codelab/protocol';
import { runtimeErrors } from './errors.ts';
import { LlmError, type LlmClient } from './llm-client.ts';
import type { RuntimeMetrics } from './metrics.ts';
import type { SessionStore, StoredMessage } from './store/sessions.ts';

export interface TurnDeps {
  store: SessionStore;
  llm: LlmClient;
  metrics: RuntimeMetrics;
  log: FastifyBaseLogger;
}

export type TurnOutcome = 'ok' | 'llm_error' | 'persistence_error';

export function toChatMessages(history: readonly StoredMessage[]): ChatMessage[] {
  return history.map((m) => ({
    role: m.role,
    content: m.content ?? '',
    ...(m.name ? { name: m.name } : {}),
    ...(m.tool_call_id ? { tool_call_id: m.tool_call_id } : {}),
    ...(m.tool_calls && m.tool_calls.length ? { tool_calls: m.tool_calls } : {}),
  }));
}

/**
 * Runs the turn after the user's message was appended; `emit` sends a chunk to the caller (it
 * must not throw when the caller is gone).
 */
export async function answerTurn(deps: TurnDeps, sessionId: string, emit: (chunk: StreamChunk) => Promise<void>): Promise<TurnOutcome> {
  const history = await deps.store.messages(sessionId);
  let content = '';
  let completionTokens: number | undefined;
  try {
    for await (const ev of deps.llm.streamChat(toChatMessages(history))) {
      if (ev.kind === 'token') {
        content += ev.token;
        await emit({ type: 'assistant_message', token: ev.token, is_final: false });
      } else if (ev.kind === 'usage') {
        completionTokens = ev.usage.completion_tokens;
      }
    }
  } catch (err) {
    const message = err instanceof LlmError ? err.message : `LLM call failed: ${(err as Error).message}`;
    deps.log.warn({ err, session_id: sessionId }, 'LLM call failed mid-turn');
    await emit({ type: 'error', error: message, content: message, code: runtimeErrors.RT_ERR_LLM_UNAVAILABLE.code, is_final: true });
    return 'llm_error';
  }
  try {
    await deps.store.append(sessionId, { role: 'assistant', content, ...(completionTokens !== undefined ? { token_count: completionTokens } : {}) });
    deps.metrics.messagesPersisted.inc({ role: 'assistant' });
  } catch (err) {
    deps.log.error({ err, session_id: sessionId }, 'assistant message could not be persisted');
    const { code, def } = runtimeErrors.RT_ERR_PERSISTENCE;
    await emit({ type: 'error', error: def.message, content: def.message, code, is_final: true });
    return 'persistence_error';
  }
  await emit({ type: 'assistant_message', content, is_final: true });
  return 'ok';
}
