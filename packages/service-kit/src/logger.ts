/**
 * pino JSON logs: one logger per service, secrets redacted, trace ids on every line written inside
 * a request (one line per request: `request completed`, service.ts), written to stdout
 * asynchronously and shipped to Loki with pino-loki when LOKI_URL is set.
 */
import { pino, type Logger, type LoggerOptions } from 'pino';
import { pinoLevel } from './config.ts';

/** Paths redacted wherever they appear at these depths (fast-redact does not recurse). */
export const REDACTED_PATHS: readonly string[] = [
  'authorization',
  'password',
  'token',
  'access_token',
  'refresh_token',
  'client_secret',
  'internalApiKey',
  'internal_api_key',
  'masterKey',
  'cookie',
  '["x-internal-auth"]',
  'headers.authorization',
  'headers.cookie',
  'headers["x-internal-auth"]',
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["x-internal-auth"]',
  '*.authorization',
  '*.password',
  '*.token',
  '*.access_token',
  '*.refresh_token',
  '*.client_secret',
  '*.internalApiKey',
  '*.internal_api_key',
  '*["x-internal-auth"]',
  '*.masterKey',
  '*.cookie',
  '*.headers.authorization',
  '*.headers.cookie',
  '*.headers["x-internal-auth"]',
];

const SECRET_QUERY = /([?&](?:access_token|refresh_token|token|password|client_secret)=)[^&#]*/gi;

/** Removes secret query parameters (a browser's `?access_token=` on the WS handshake) from a URL. */
export function redactUrl(url: string | undefined): string | undefined {
  return url?.replace(SECRET_QUERY, '$1[REDACTED]');
}

export interface LoggerSettings {
  service: string;
  level: string;
  environment?: string;
  lokiUrl?: string | undefined;
  /** Write somewhere else than stdout (tests). */
  destination?: NodeJS.WritableStream;
}

export function loggerOptions(s: LoggerSettings): LoggerOptions {
  return {
    level: pinoLevel(s.level),
    base: { service: s.service },
    messageKey: 'msg',
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
    redact: { paths: [...REDACTED_PATHS], censor: '[REDACTED]' },
    serializers: {
      req: (req: { method?: string; url?: string; ip?: string; headers?: Record<string, unknown> }) => ({
        method: req.method,
        url: redactUrl(req.url),
        remote_address: req.ip,
        user_agent: req.headers?.['user-agent'],
      }),
      err: pino.stdSerializers.err,
    },
  };
}

/**
 * stdout, written asynchronously: a line does not wait for its own write(2), lines logged while a
 * write is under way leave together in the next one, and what is still buffered is written
 * synchronously when the process exits (pino registers that for the destinations it builds).
 */
function stdout(): pino.DestinationStream {
  return pino.destination({ dest: 1, sync: false });
}

export function createLogger(s: LoggerSettings): Logger {
  const options = loggerOptions(s);
  if (s.destination) return pino(options, s.destination as pino.DestinationStream);
  if (!s.lokiUrl) return pino(options, stdout());
  // multistream (not transport targets): transport targets forbid the level formatter.
  const loki = pino.transport({
    target: 'pino-loki',
    options: {
      host: s.lokiUrl,
      batching: true,
      interval: 2,
      labels: { service: s.service, environment: s.environment ?? 'development' },
      propsToLabels: ['level'],
    },
  });
  return pino(
    options,
    pino.multistream([
      { stream: stdout(), level: options.level as pino.Level },
      { stream: loki, level: options.level as pino.Level },
    ]),
  );
}
