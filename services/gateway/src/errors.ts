/** The gateway's error table: REST bodies `{ error: { code, message } }`, WS `error` frames and close codes. */
import { defineErrors } from '@codelab/service-kit';

export const gatewayErrors = defineErrors({
  GW_ERR_UNAUTHORIZED: { status: 401, message: 'A valid bearer token is required', closeCode: 4401 },
  GW_ERR_INSUFFICIENT_SCOPE: { status: 403, message: 'The token lacks the scope this call needs' },
  GW_ERR_FORBIDDEN_SESSION: { status: 404, message: 'Session not found', closeCode: 4403 },
  GW_ERR_AUTH_UNAVAILABLE: { status: 503, message: 'Tokens cannot be verified right now: the auth service is unreachable' },
  GW_ERR_RUNTIME_UNAVAILABLE: { status: 502, message: 'The agent runtime is unavailable' },
  GW_ERR_RUNTIME_TIMEOUT: { status: 504, message: 'The agent runtime did not answer in time' },
  GW_ERR_WS_INVALID_JSON: { status: 400, message: 'Invalid JSON message' },
  GW_ERR_WS_INVALID_FRAME: { status: 400, message: 'Invalid message' },
  GW_ERR_WS_UNKNOWN_TYPE: { status: 400, message: 'Unknown message type' },
  GW_ERR_WS_BINARY_FRAME: { status: 400, message: 'Binary frames are not supported; send JSON text frames' },
  GW_ERR_WS_SLOW_READER: { status: 503, message: 'The client reads too slowly: too much data waits to be sent', closeCode: 4008 },
  GW_ERR_WS_QUEUE_FULL: { status: 429, message: 'Too many messages waiting behind the running turn' },
  GW_ERR_NOTHING_TO_CANCEL: { status: 409, message: 'No turn is running on this session: nothing to cancel' },
  GW_ERR_RESUME_FAILED: { status: 502, message: 'The frames after last_seq could not be replayed' },
  GW_ERR_AGENT_ERROR: { status: 502, message: 'The agent runtime refused the message' },
  GW_ERR_STREAM_INTERRUPTED: { status: 502, message: 'The answer stream ended unexpectedly' },
  GW_ERR_SHUTTING_DOWN: { status: 503, message: 'The gateway is shutting down; reconnect', closeCode: 1001 },
});
