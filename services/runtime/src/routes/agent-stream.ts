/**
 * POST /agent/message/stream: one inbound IDE message in, its turn out as SSE (`data: <chunk>`).
 *
 * The message is checked on its own first (a 4xx before any session is created or leased), then
 * the turn runner (turn/turn-runner.ts) takes it: the session (the given id, created on first use
 * and owned by the caller, or a new one for `new_session`, whose first frame is `session_info`),
 * its lease (409 when another turn keeps it), the checks against the session's state, and the
 * turn's numbered frames. The response says the number before the turn's first frame
 * (`x-codelab-frame-seq`): a caller whose stream breaks follows the frame log from there
 * (GET /sessions/:id/frames), and gets the turn's end even when this instance dies.
 */
import type { FastifyInstance } from 'fastify';
import { kitErrors } from '@codelab/service-kit';
import { SESSION_ID_PATTERN, type AgentStreamRequest } from '@codelab/protocol';
import { validateMessage } from '../turn/conversation.ts';
import { TurnRunner, type TurnRunnerDeps } from '../turn/turn-runner.ts';
import { callerOf } from './sessions.ts';

export interface AgentStreamDeps extends TurnRunnerDeps {
  isDraining: () => boolean;
}

const bodySchema = {
  type: 'object',
  required: ['message'],
  properties: {
    session_id: { type: 'string', pattern: SESSION_ID_PATTERN },
    new_session: { type: 'boolean' },
    message: { type: 'object', required: ['type'], properties: { type: { type: 'string' } } },
  },
} as const;

export function registerAgentStream(app: FastifyInstance, deps: AgentStreamDeps): void {
  app.post<{ Body: AgentStreamRequest }>(
    '/agent/message/stream',
    { schema: { body: bodySchema }, config: { streaming: true } },
    async (request, reply) => {
      const { message } = request.body;
      if (deps.isDraining()) throw kitErrors.ERR_SHUTTING_DOWN('The runtime is shutting down; retry on another instance');
      validateMessage(deps.services, message);
      const turn = new TurnRunner(deps, {
        message,
        sessionId: request.body.session_id,
        newSession: request.body.new_session === true,
        caller: callerOf(request),
        log: request.log,
      });
      await turn.start(reply);
      await turn.run();
    },
  );
}
