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
});

