/**
 * createService: the fastify app every service is built from. It wires, once for all services:
 * JSON logs with trace ids, the RED histogram and GET /metrics, GET /health and GET /ready with
 * the service's real dependency checks, internal-key authentication, one error format, and the
 * draining state used by graceful shutdown. A service's app.ts adds only its own routes:
 *
 *   const service = createService({ name: 'gateway', ...config, logger: deps.logger });
 */
import fastifyCors from '@fastify/cors';
import { randomUUID } from 'node:crypto';
import { context } from '@opentelemetry/api';
import Fastify, { LogController, type FastifyInstance, type FastifyReply, type FastifyRequest, type FastifyServerOptions } from 'fastify';
import type { Logger } from 'pino';
import { isDatabaseUnavailable } from './db-errors.ts';
import { AppError, kitErrors } from './errors.ts';
import { createLogger } from './logger.ts';
import { ServiceMetrics } from './metrics.ts';
import { activeTraceIds, fallbackTraceIds, type TraceIds } from './trace-context.ts';
import { endServerSpan, startServerSpan, type ServerSpan } from './http-spans.ts';
import { tracingEnabled } from './tracing.ts';
import { checkInternalKey, INTERNAL_AUTH_HEADER } from './internal-auth.ts';
import { createH2cCapableServer } from './h2c.ts';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Streaming routes (SSE, WebSocket) are measured by http_server_stream_duration_seconds instead. */
    streaming?: boolean;
    /** Reachable without the internal key. */
    public?: boolean;
  }
  interface FastifyRequest {
    /** Trace ids of this request (SDK span when tracing is on, stable fallback ids otherwise). */
    traceIds(): TraceIds;
    fallbackTrace: TraceIds | undefined;
    /** This request's SERVER span while it runs (tracing on, not a probe); ended with the response. */
    serverSpan: ServerSpan | undefined;
    /** Set by startSse: this response is a stream, measured as such. */
    streamingResponse: boolean;
  }
}

export type ReadinessCheck = () => Promise<void>;

export interface ServiceOptions {
  name: string;
  version: string;
  logLevel: string;
  environment?: string;
  lokiUrl?: string | undefined;
  /**
   * When set, every non-public route requires `X-Internal-Auth` with this key. (Named apart from
   * the `internalApiKey` setting so that `createService({ name, ...config })` never turns it on.)
   */
  requireInternalKey?: string | undefined;
  /** Inject a logger (tests); otherwise one is created. */
  logger?: Logger | undefined;
  bodyLimit?: number;
  fastify?: Partial<FastifyServerOptions>;
  /**
   * Browser origins allowed to call this service (CORS: the website's, e.g. http://127.0.0.1:3000
   * under `npm start`); empty or unset: no CORS headers (same-origin behind nginx).
   */
  corsOrigins?: readonly string[];
}

export interface Service {
  app: FastifyInstance;
  metrics: ServiceMetrics;
  logger: Logger;
  name: string;
  version: string;
  /** Registers a readiness check; it throws (with a short reason) when the dependency is not usable. */
  addReadinessCheck(name: string, check: ReadinessCheck): void;
  /** True once shutdown started: new work should be refused. */
  readonly draining: boolean;
  startDraining(): void;
}

const READY_CHECK_TIMEOUT_MS = 2000;

/**
 * One log line per request, written when it ends: fastify's `request completed` (or `request
 * errored`) carrying the request's own fields too, and no `incoming request` line before it.
 */
class OneLinePerRequest extends LogController {
  override incomingRequest(): void {}

  override requestCompleted(error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply): void {
    // written when the response has gone, outside the request's context: the line takes the trace
    // ids of the request's span (the logger reads the active one: logger.ts)
    const hop = request.serverSpan;
    if (hop) context.with(hop.ctx, () => this.write(error, request, reply));
    else this.write(error, request, reply);
  }

  private write(error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply): void {
    const fields = { req: request, res: { statusCode: reply.statusCode }, responseTime: reply.elapsedTime };
    if (error) reply.log.error({ ...fields, err: error }, 'request errored');
    else reply.log.info(fields, 'request completed');
  }
}
const KIT_PUBLIC_PATHS = new Set(['/health', '/ready', '/metrics']);

export function createService(opts: ServiceOptions): Service {
  const logger =
    opts.logger ?? createLogger({ service: opts.name, level: opts.logLevel, environment: opts.environment, lokiUrl: opts.lokiUrl });
  const app = Fastify({
    loggerInstance: logger,
    logController: new OneLinePerRequest(),
    bodyLimit: opts.bodyLimit ?? 1024 * 1024,
    // HTTP/1.1, and h2c on the same port for the peers that stream turns over it (h2c.ts)
    serverFactory: createH2cCapableServer,
    genReqId: (req) => {
      const incoming = req.headers['x-request-id'];
      return typeof incoming === 'string' && /^[\w.-]{1,128}$/.test(incoming) ? incoming : randomUUID();
    },
    // Trace ids on every request log line: from the active span (the logger's mixin) when tracing is on,
    // from the request's own fallback ids when it is off.
    childLoggerFactory(parent, bindings, childOpts, rawReq) {
      if (tracingEnabled()) return parent.child(bindings, childOpts);
      const ids = fallbackTraceIds((rawReq as { headers: Record<string, unknown> }).headers.traceparent);
      (rawReq as unknown as { fallbackTrace: TraceIds }).fallbackTrace = ids;
      return parent.child({ ...bindings, ...ids }, childOpts);
    },
    ...opts.fastify,
  });
  const metrics = new ServiceMetrics(opts.name);
  const checks = new Map<string, ReadinessCheck>();
  let draining = false;

  app.decorateRequest('fallbackTrace', undefined);
  app.decorateRequest('serverSpan', undefined);
  app.decorateRequest('streamingResponse', false);
  app.decorateRequest('traceIds', function traceIds(this: FastifyRequest): TraceIds {
    const active = activeTraceIds(this.serverSpan?.ctx ?? context.active());
    if (active) return active;
    this.fallbackTrace ??=
      (this.raw as unknown as { fallbackTrace?: TraceIds }).fallbackTrace ?? fallbackTraceIds(this.headers.traceparent);
    return this.fallbackTrace;
  });

  if (tracingEnabled()) {
    // A SERVER span per request, named after its route template (http-spans.ts). Its context is
    // made active for the hooks after this one and again for the handler: the body is read in
    // between, in the socket's context. Added first, so the other hooks run inside it.
    app.addHook('onRequest', (request, _reply, done) => {
      const hop = startServerSpan(request.raw, request.routeOptions.url);
      if (!hop) return done();
      request.serverSpan = hop;
      context.with(hop.ctx, done);
    });
    app.addHook('preHandler', (request, _reply, done) => {
      if (request.serverSpan) context.with(request.serverSpan.ctx, done);
      else done();
    });
  }

  // RED metrics, by route template (unmatched paths share one bounded label value).
  const observe = (request: FastifyRequest, status: number, seconds: number): void => {
    const route = request.routeOptions.url ?? '__unmatched__';
    const labels = { service: opts.name, method: request.method, route, status_code: String(status) };
    if (request.routeOptions.config?.streaming || request.streamingResponse) metrics.streamDuration.observe(labels, seconds);
    else ServiceMetrics.observe(metrics.httpDuration, labels, seconds, request.traceIds());
  };
  app.addHook('onResponse', async (request, reply) => {
    observe(request, reply.statusCode, reply.elapsedTime / 1000);
    endServerSpan(request.serverSpan, reply.statusCode);
  });
  app.addHook('onRequestAbort', async (request) => {
    observe(request, 499, (performance.now() - (request as unknown as { startedAt?: number }).startedAt!) / 1000);
    endServerSpan(request.serverSpan, 499, true);
  });
  app.addHook('onRequest', async (request) => {
    (request as unknown as { startedAt: number }).startedAt = performance.now();
  });

  if (opts.corsOrigins?.length) {
    // only the listed origins; credentials never (tokens travel in Authorization, not cookies)
    void app.register(fastifyCors, { origin: [...opts.corsOrigins], credentials: false, maxAge: 600 });
  }

  if (opts.requireInternalKey) {
    const key = opts.requireInternalKey;
    app.addHook('onRequest', async (request) => {
      if (request.routeOptions.config?.public || KIT_PUBLIC_PATHS.has(request.url.split('?')[0] ?? '')) return;
      if (!checkInternalKey(request.headers[INTERNAL_AUTH_HEADER], key)) {
        throw kitErrors.ERR_UNAUTHORIZED(`Missing or invalid ${INTERNAL_AUTH_HEADER} header`);
      }
    });
  }

  app.setErrorHandler((err: Error & { statusCode?: number; code?: string; validation?: unknown }, request, reply) => {
    if (err instanceof AppError) {
      if (err.statusCode >= 500) request.log.error({ err }, err.message);
      return reply.status(err.statusCode).send(err.toJSON());
    }
    if (err.validation) {
      return reply.status(400).send(kitErrors.ERR_VALIDATION(err.message).toJSON());
    }
    if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return reply.status(413).send(kitErrors.ERR_PAYLOAD_TOO_LARGE().toJSON());
    if (err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE')
      return reply.status(415).send(kitErrors.ERR_UNSUPPORTED_MEDIA_TYPE(err.message).toJSON());
    if (err.statusCode && err.statusCode >= 400 && err.statusCode < 500) {
      return reply.status(err.statusCode).send(kitErrors.ERR_VALIDATION(err.message).toJSON());
    }
    if (isDatabaseUnavailable(err)) {
      request.log.warn({ err }, 'the database cannot be reached');
      return reply.status(503).header('retry-after', '5').send(kitErrors.ERR_DATABASE_UNAVAILABLE().toJSON());
    }
    request.log.error({ err }, 'unhandled error');
    return reply.status(500).send(kitErrors.ERR_INTERNAL().toJSON());
  });
  app.setNotFoundHandler((request, reply) => {
    reply.status(404).send(kitErrors.ERR_NOT_FOUND(`Route ${request.method} ${request.url.split('?')[0]} not found`).toJSON());
  });

  app.get('/health', { config: { public: true }, logLevel: 'warn' }, async () => ({
    status: 'healthy',
    service: opts.name,
    version: opts.version,
  }));

  /** Runs every readiness check (each bounded in time): name → 'ok' or the error. */
  const runChecks = async (): Promise<{ results: Record<string, string>; failed: string[] }> => {
    const results: Record<string, string> = {};
    const failed: string[] = [];
    await Promise.all(
      [...checks].map(async ([name, check]) => {
        let timer: NodeJS.Timeout | undefined;
        try {
          await Promise.race([
            check(),
            new Promise((_, reject) => {
              timer = setTimeout(() => reject(new Error(`no answer within ${READY_CHECK_TIMEOUT_MS} ms`)), READY_CHECK_TIMEOUT_MS);
            }),
          ]);
          results[name] = 'ok';
        } catch (err) {
          results[name] = `error: ${(err as Error).message || String(err)}`;
          failed.push(name);
        } finally {
          clearTimeout(timer);
        }
      }),
    );
    return { results, failed };
  };

  app.get('/ready', { config: { public: true }, logLevel: 'warn' }, async (_request, reply) => {
    const { results, failed } = await runChecks();
    if (draining) failed.unshift('shutdown');
    const body = {
      status: failed.length ? 'not_ready' : 'ready',
      service: opts.name,
      version: opts.version,
      checks: results,
      ...(failed.length ? { failed } : {}),
    };
    return reply.status(failed.length ? 503 : 200).send(body);
  });

  // The same checks at every scrape, so that an alert can say which dependency fails.
  metrics.gauge({
    name: 'service_readiness_check',
    help: 'Readiness checks of the service by dependency: 1 passes, 0 fails (what GET /ready reports)',
    labelNames: ['service', 'check'],
    async collect() {
      const { results } = await runChecks();
      this.reset();
      for (const [check, result] of Object.entries(results)) this.set({ service: opts.name, check }, result === 'ok' ? 1 : 0);
      this.set({ service: opts.name, check: 'shutdown' }, draining ? 0 : 1);
    },
  });

  app.get('/metrics', { config: { public: true }, logLevel: 'warn' }, async (request, reply) => {
    const { contentType, body } = await metrics.render(request.headers.accept);
    return reply.header('content-type', contentType).send(body);
  });

  return {
    app,
    metrics,
    logger,
    name: opts.name,
    version: opts.version,
    addReadinessCheck: (name, check) => void checks.set(name, check),
    get draining() {
      return draining;
    },
    startDraining: () => {
      draining = true;
    },
  };
}
