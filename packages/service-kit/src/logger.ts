/**
 * pino JSON logs: one logger per service, secrets redacted, trace ids on every line written inside
 * a request (one line per request: `request completed`, service.ts), written to stdout
 * in batches and shipped to Loki with pino-loki when LOKI_URL is set.
 */
import { pino, type Logger, type LoggerOptions } from 'pino';
import { pinoLevel } from './config.ts';
import { activeSpanContext } from './trace-context.ts';
import { tracingEnabled } from './tracing.ts';

/**
 * Keys whose values never reach a log line, in any letter case, wherever they appear within the
 * first REDACT_DEPTH levels of a logged object (so `authorization`, `body.password`,
 * `peer.headers["x-internal-auth"]`, `err.config.headers.cookie` alike).
 */
export const SECRET_KEYS: ReadonlySet<string> = new Set(
  [
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
    'x-internal-auth',
  ].map((k) => k.toLowerCase()),
);
const REDACT_DEPTH = 4;
const CENSOR = '[REDACTED]';

/**
 * `value` with every SECRET_KEYS entry censored, copied only along the paths that hold one (the
 * logged object itself is never changed; without secrets it is returned as it is). Plain objects
 * and arrays are searched; other class instances are left to their serializers (an Error's is
 * redacted too, `err` below).
 *
 * Why not pino's `redact` paths: pino runs them in non-strict mode, so its wildcard paths
 * (`*.password`) were parsed again and applied to every value of every line and every child
 * logger's bindings: 7.6% of the gateway's CPU on a REST read whose lines were not even written
 * (bench:rest profile, 2026-12-05). This walk costs a key lookup per key of what is written.
 */
export function redactSecrets<T>(value: T): T {
  return redactAt(value, 1) as T;
}

function redactAt(value: unknown, depth: number): unknown {
  if (value === null || typeof value !== 'object' || depth > REDACT_DEPTH) return value;
  if (Array.isArray(value)) {
    let copy: unknown[] | undefined;
    value.forEach((item, i) => {
      const redacted = redactAt(item, depth + 1);
      if (redacted !== item) (copy ??= value.slice())[i] = redacted;
    });
    return copy ?? value;
  }
  const proto: unknown = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) return value;
  const object = value as Record<string, unknown>;
  let copy: Record<string, unknown> | undefined;
  for (const key of Object.keys(object)) {
    const item = object[key];
    const redacted = SECRET_KEYS.has(key.toLowerCase()) ? (item === undefined ? item : CENSOR) : redactAt(item, depth + 1);
    if (redacted !== item) (copy ??= { ...object })[key] = redacted;
  }
  return copy ?? value;
}

/** pino's Error serializer, then the redaction (an error's own fields, e.g. a request's headers). */
function serializeError(err: unknown): unknown {
  const serialized: unknown = pino.stdSerializers.err(err as Error);
  return serialized !== null && typeof serialized === 'object' ? redactSecrets({ ...serialized }) : serialized;
}

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

/**
 * With tracing on, the ids of the span a line is written in (`trace_id`, `span_id`, `trace_flags`
 * as the W3C traceparent writes them), also when the sampler dropped the span: the logs of a
 * request join up whether or not its trace was kept. (Without tracing, a request's child logger
 * carries the request's own ids: service.ts.) Read only for the lines that are written.
 */
function activeSpanIds(): Record<string, string> {
  const sc = activeSpanContext();
  return sc ? { trace_id: sc.traceId, span_id: sc.spanId, trace_flags: `0${sc.traceFlags.toString(16)}` } : {};
}

export function loggerOptions(s: LoggerSettings): LoggerOptions {
  return {
    level: pinoLevel(s.level),
    base: { service: s.service },
    ...(tracingEnabled() ? { mixin: activeSpanIds } : {}),
    messageKey: 'msg',
    timestamp: pino.stdTimeFunctions.isoTime,
    // Secrets are searched in what each line logs; a child logger's bindings (ids the services
    // bind: reqId, trace ids, session_id) are written as given.
    formatters: { level: (label) => ({ level: label }), log: redactSecrets },
    serializers: {
      req: (req: { method?: string; url?: string; ip?: string; headers?: Record<string, unknown> }) => ({
        method: req.method,
        url: redactUrl(req.url),
        remote_address: req.ip,
        user_agent: req.headers?.['user-agent'],
      }),
      err: serializeError,
    },
  };
}

/**
 * stdout, in batches: the lines of up to STDOUT_BATCH_MS leave in one write(2) (a LineBatch in
 * front of pino's destination). One write per line was 3.5-5.7% of each service's CPU with logs at
 * info (sonic-boom's fs.write per line, `writeString`, in the bench:telemetry profiles of
 * 2026-12-06), the largest single cost of the logs. The batch is written synchronously, as pino's
 * default destination writes: an asynchronous write still under way when the process exits is
 * lost (seen: 9 of 30 runs of a migration command under load printed nothing), while what waits in
 * the batch is written at exit (the LineBatch's listener). Only a process killed outright
 * (SIGKILL) loses its last STDOUT_BATCH_MS of lines.
 */
const STDOUT_BATCH_MS = 25;
function stdout(): pino.DestinationStream {
  return new LineBatch(pino.destination({ dest: 1, sync: true }), STDOUT_BATCH_MS);
}

export function createLogger(s: LoggerSettings): Logger {
  const options = loggerOptions(s);
  if (s.destination) return pino(options, s.destination as pino.DestinationStream);
  if (!s.lokiUrl) return pino(options, stdout());
  // multistream (not transport targets): transport targets forbid the level formatter.
  const loki = new LineBatch(
    pino.transport({
      target: 'pino-loki',
      options: {
        host: s.lokiUrl,
        batching: true,
        interval: 2,
        labels: { service: s.service, environment: s.environment ?? 'development' },
        propsToLabels: ['level'],
      },
    }),
  );
  return pino(
    options,
    pino.multistream([
      { stream: stdout(), level: options.level as pino.Level },
      { stream: loki, level: options.level as pino.Level },
    ]),
  );
}

/**
 * Lines for a slower destination (pino-loki's worker thread, stdout), handed over at most every
 * `delayMs` (or once `maxChars` are waiting): for the Loki worker one write into its buffer and
 * one wake-up instead of one per line, which was 4-6% of a service's CPU with logs at info
 * (thread-stream's per-line hand-off in the bench:telemetry profiles; the transport batches its
 * pushes to Loki over seconds anyway), for stdout one write(2). What waits is handed over when the
 * process exits, before the destination's own exit flush (the listener goes first), and on
 * `flushSync`.
 */
export class LineBatch {
  private pending = '';
  private timer: NodeJS.Timeout | undefined;
  private readonly target: pino.DestinationStream & { flushSync?: () => void };
  private readonly delayMs: number;
  private readonly maxChars: number;

  constructor(target: pino.DestinationStream & { flushSync?: () => void }, delayMs = 100, maxChars = 64 * 1024) {
    this.target = target;
    this.delayMs = delayMs;
    this.maxChars = maxChars;
    process.prependListener('exit', this.handOver);
  }

  write(line: string): void {
    this.pending += line;
    if (this.pending.length >= this.maxChars) this.handOver();
    else this.timer ??= setTimeout(this.handOver, this.delayMs).unref();
  }

  flushSync(): void {
    this.handOver();
    this.target.flushSync?.();
  }

  private readonly handOver = (): void => {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (!this.pending) return;
    const lines = this.pending;
    this.pending = '';
    this.target.write(lines);
  };
}
