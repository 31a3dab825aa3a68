/**
 * A CLIENT span per PostgreSQL statement, made by the kit's Database (db.ts) where every statement
 * already passes to be timed, and only inside a span of a sampled trace (a sampled request or turn):
 * a statement outside any trace, or in one the sampler dropped, costs one lookup of the active
 * span. Named as @opentelemetry/instrumentation-pg named them (`pg.query:SELECT codelab`), with the
 * stable database semantic conventions' attributes: the statement's text (parameterised: the
 * values are never in it), its operation, the database and the server.
 *
 * Why not instrumentation-pg, which made these before: it wraps every query and pool checkout of
 * the process, sampled or not (a non-recording span, the callback bound to its context): 1.8% of
 * the runtime's CPU with traces on at 10% in the bench:telemetry profile of 2026-12-06.
 */
import { context, SpanKind, SpanStatusCode, trace, type Span } from '@opentelemetry/api';
import { inSampledSpan } from './spans.ts';

const tracer = trace.getTracer('codelab-service-kit');

/** Where the statements go: fixed per pool. */
export interface DbTarget {
  /** The database's name (`db.namespace`). */
  database: string;
  host: string;
  port: number;
  /** The pool's bounded name (`db.client.connection.pool.name`). */
  pool: string;
}

/** The target of a connection string (`postgres://user@host:5432/name`). */
export function dbTargetOf(url: string, pool: string): DbTarget {
  try {
    const u = new URL(url);
    return { database: decodeURIComponent(u.pathname.slice(1)) || 'postgres', host: u.hostname, port: Number(u.port) || 5432, pool };
  } catch {
    return { database: 'postgres', host: 'unknown', port: 5432, pool };
  }
}

/**
 * The span of one statement, or undefined when no span of a sampled trace is active (then nothing
 * else is done: not even the statement's first word is read).
 */
export function startDbSpan(target: DbTarget, text: string): Span | undefined {
  const active = context.active(); // without tracing, the root context: no span in it
  if (!inSampledSpan(active)) return undefined;
  // its first keyword, upper case (`SELECT`, `WITH`, `BEGIN`)
  const operation = (/^\s*(\w+)/.exec(text)?.[1] ?? 'QUERY').toUpperCase();
  return tracer.startSpan(
    `pg.query:${operation} ${target.database}`,
    {
      kind: SpanKind.CLIENT,
      attributes: {
        'db.system.name': 'postgresql',
        'db.namespace': target.database,
        'db.operation.name': operation,
        'db.query.text': text,
        'db.client.connection.pool.name': target.pool,
        'server.address': target.host,
        'server.port': target.port,
      },
    },
    active,
  );
}

/** Ends a statement's span; a failed one carries its SQLSTATE (`db.response.status_code`). */
export function endDbSpan(span: Span, err?: unknown): void {
  if (err !== undefined) {
    const code = (err as { code?: unknown }).code;
    if (typeof code === 'string') span.setAttribute('db.response.status_code', code);
    span.setAttribute('error.type', typeof code === 'string' ? code : err instanceof Error ? err.constructor.name : 'error');
    span.setStatus({ code: SpanStatusCode.ERROR, message: err instanceof Error ? err.message : String(err) });
  }
  span.end();
}
