/**
 * A CLIENT span per Redis command, made by the kit where every command of a client passes
 * (ioredis' `sendCommand`, wrapped by openRedis when tracing is on), and only inside a span of a
 * sampled trace (a sampled request or turn): a command outside any trace, or in one the sampler
 * dropped, costs one lookup of the active span. Named as @opentelemetry/instrumentation-ioredis
 * named them (the command, `evalsha`), with the stable database semantic conventions'
 * attributes; a pipelined command's operation is `PIPELINE <command>`, a transaction's
 * `MULTI <command>`. The command's arguments are not recorded: they are keys and values (a frame's
 * text, a session id), and the operation says what was done. The copies a service makes with
 * `duplicate()` (the frame log's blocking reader, the cancel subscriber) are not traced: their
 * commands wait for others' work, they are not work of the request they happen to run in.
 *
 * Why not instrumentation-ioredis, which made these before: it made a span for every command
 * inside any span, sampled or not (its arguments serialised, its attributes cleaned, the span's
 * promise callbacks wrapped), and it needs the module loader hooks (import-in-the-middle) that
 * wrap every module the process imports. With traces on and nothing sampled it was, with the
 * spans it made, 0.7% of the runtime's CPU in the bench:telemetry profiles of 2026-12-07.
 */
import { context, SpanKind, SpanStatusCode, trace, type Attributes, type Span } from '@opentelemetry/api';
import { Command, type Redis } from 'ioredis';
import { inSampledSpan } from './spans.ts';

const tracer = trace.getTracer('codelab-service-kit');

const traced = new WeakSet<Command>();

/** Makes a span of each command `redis` sends inside a span of a sampled trace (once per client). */
export function traceRedisCommands(redis: Redis): void {
  const send = redis.sendCommand;
  const { host, port, db } = redis.options;
  redis.sendCommand = function tracedSendCommand(this: Redis, ...args: Parameters<Redis['sendCommand']>) {
    const [command] = args;
    const active = context.active(); // without a request or turn, the root context: no span in it
    if (!(command instanceof Command) || !inSampledSpan(active) || traced.has(command)) return send.apply(this, args);
    traced.add(command); // a command may pass again (resent after a reconnect): one span
    const queued =
      command.name === 'multi' || command.name === 'exec'
        ? ''
        : command.inTransaction
          ? 'MULTI '
          : command.pipelineIndex !== undefined
            ? 'PIPELINE '
            : '';
    const attributes: Attributes = {
      'db.system.name': 'redis',
      'db.operation.name': `${queued}${command.name.toUpperCase()}`,
      'db.namespace': String(db ?? 0),
      'server.address': host,
      'server.port': port,
    };
    const span = tracer.startSpan(command.name, { kind: SpanKind.CLIENT, attributes }, active);
    // ends when the command's promise settles: once, whether the reply, a late reply after a
    // timeout or a reply transform that throws comes first (the caller's own handlers are left as they are)
    command.promise.then(
      () => span.end(),
      (err: unknown) => endFailed(span, err),
    );
    return send.apply(this, args);
  };
}

/** A failed command: Redis' error prefix (`ERR`, `WRONGTYPE`, `NOSCRIPT`) is its status code and type. */
function endFailed(span: Span, err: unknown): void {
  const prefix = err instanceof Error ? /^([A-Z][A-Z_]+) /.exec(err.message)?.[1] : undefined;
  if (prefix) span.setAttribute('db.response.status_code', prefix);
  if (err instanceof Error) span.recordException(err);
  span.setAttribute('error.type', prefix ?? (err instanceof Error ? err.constructor.name : 'error'));
  span.setStatus({ code: SpanStatusCode.ERROR, message: err instanceof Error ? err.message : String(err) });
  span.end();
}
