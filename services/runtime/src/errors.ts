/** The runtime's error table (REST bodies `{ error: { code, message } }`; SSE `error` chunks carry the code). */
import { defineErrors } from '@codelab/service-kit';

export const runtimeErrors = defineErrors({
  RT_ERR_SESSION_NOT_FOUND: { status: 404, message: 'Session not found' },
  RT_ERR_SESSION_EXISTS: { status: 409, message: 'Session already exists' },
  RT_ERR_INVALID_MESSAGE: { status: 400, message: 'The message is not valid' },
  RT_ERR_UNSUPPORTED_MESSAGE_TYPE: { status: 400, message: 'Unsupported message type' },
  RT_ERR_LLM_UNAVAILABLE: { status: 502, message: 'The LLM could not answer' },
  RT_ERR_PERSISTENCE: { status: 500, message: 'The answer could not be saved; please retry' },
  RT_ERR_INTERNAL: { status: 500, message: 'The turn failed on the server' },
  RT_ERR_SESSION_BUSY: { status: 409, message: 'Another turn of this session is still running' },
  RT_ERR_TOOL_CALL_NOT_FOUND: { status: 404, message: 'No such tool call in this session' },
  RT_ERR_TOOL_CALL_CLOSED: { status: 409, message: 'The tool call takes no answer now' },
  RT_ERR_NO_PENDING_APPROVAL: { status: 404, message: 'No pending approval for this call' },
  RT_ERR_APPROVAL_EXPIRED: { status: 409, message: 'The approval expired and was rejected' },
  RT_ERR_TOO_MANY_STEPS: { status: 500, message: 'The turn made too many LLM calls without an answer' },
  RT_ERR_INVALID_AGENT: { status: 400, message: 'No such agent in this mode' },
  RT_ERR_AGENT_ALREADY_ACTIVE: { status: 400, message: 'The agent is already active' },
  RT_ERR_NO_SESSION_METRICS: { status: 404, message: 'No metrics found for the session' },
  RT_ERR_TURN_INTERRUPTED: {
    status: 500,
    message:
      'The answer was interrupted: the server running it stopped. Your message is kept, the partial answer was not saved; send a message to continue',
  },
  RT_ERR_FRAMES_LOST: {
    status: 410,
    message:
      'These frames can no longer be replayed (the server restarted or they expired); the session history keeps every stored message',
  },
});
