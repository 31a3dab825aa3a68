/**
 * POST /agent/message/stream: one inbound IDE frame in, the turn out as SSE (`data: <chunk>`),
 * token by token. Requests that cannot start a turn fail before the stream with a 4xx; once the
 * stream is open every outcome ends with a chunk whose `is_final` is true.
 */
import type { FastifyInstance } from 'fastify';
import { kitErrors, startSse } from '@codelab/service-kit';
import { SESSION_ID_PATTERN, type AgentStreamRequest, type StreamChunk } from '@codelab/protocol';
import { runtimeErrors } from '../errors.ts';
import type { RuntimeMetrics } from '../metrics.ts';
import type { SessionStore } from '../store/sessions.ts';
import { answerTurn, type TurnDeps, type TurnOutcome } from '../turn.ts';
import { callerOf } from './sessions.ts';

export interface AgentStreamDeps extends Omit<TurnDeps, 'log'> {
  heartbeatMs: number;
  store: SessionStore;
  metrics: RuntimeMetrics;
  isDraining: () => boolean;
}

const bodySchema = {
  type: 'object',
  required: ['session_id', 'message'],
  properties: {
    session_id: { type: 'string', pattern: SESSION_ID_PATTERN },
    message: { type: 'object', required: ['type'], properties: { type: { type: 'string' } } },
  },
} as const;

export function registerAgentStream(app: FastifyInstance, deps: AgentStreamDeps): void {
  app.post<{ Body: AgentStreamRequest }>('/agent/message/stream', { schema: { body: bodySchema }, config: { streaming: true } }, async (request, reply) => {
    const { session_id: sessionId, message } = request.body;
    if (deps.isDraining()) throw kitErrors.ERR_SHUTTING_DOWN('The runtime is shutting down; retry on another instance');
    if (message.type !== 'user_message') {
      throw runtimeErrors.RT_ERR_UNSUPPORTED_MESSAGE_TYPE(`Message type '${message.type}' is not supported by this runtime yet`);
    }
    const content = typeof message.content === 'string' ? message.content : '';
    if (content.trim() === '') throw runtimeErrors.RT_ERR_INVALID_MESSAGE('user_message needs a non-empty content');

    const started = performance.now();
    deps.metrics.activeTurns.inc();
    let outcome: TurnOutcome | 'error' = 'error';
    try {
      // The user's message is stored before anything can fail downstream.
      const session = await deps.store.getOrCreate(sessionId, callerOf(request));
      if (!session) throw runtimeErrors.RT_ERR_SESSION_NOT_FOUND(`Session ${sessionId} not found`);
      await deps.store.append(sessionId, { role: 'user', content });
      deps.metrics.messagesPersisted.inc({ role: 'user' });

      const sse = startSse(reply);
      const heartbeat = setInterval(() => void sse.comment('keepalive'), deps.heartbeatMs);
      const emit = async (chunk: StreamChunk): Promise<void> => {
        if (!sse.closed) await sse.send(chunk);
      };
      try {
        outcome = await answerTurn({ ...deps, log: request.log }, sessionId, emit);
      } catch (err) {
        request.log.error({ err, session_id: sessionId }, 'turn failed');
        const { code, def } = runtimeErrors.RT_ERR_INTERNAL;
        await emit({ type: 'error', error: def.message, content: def.message, code, is_final: true });
      } finally {
        clearInterval(heartbeat);
        sse.end();
      }
    } finally {
      deps.metrics.activeTurns.dec();
      deps.metrics.turns.inc({ type: message.type, outcome });
      deps.metrics.turnDuration.observe({ type: message.type, outcome }, (performance.now() - started) / 1000);
    }
  });
}
