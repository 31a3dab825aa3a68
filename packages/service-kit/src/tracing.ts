/**
 * OpenTelemetry tracing bootstrap.
 *
 * Called by a service's `main.ts` *before* it imports anything else (the app is imported
 * dynamically afterwards), so the ESM loader hook and the CJS require hooks are in place when
 * fastify, pg, ioredis, undici and pino load.
 *
 * Tracing is on only when the standard OTLP variables ask for it (`OTEL_EXPORTER_OTLP_ENDPOINT` or
 * `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, not disabled by `OTEL_SDK_DISABLED=true` or
 * `OTEL_TRACES_EXPORTER=none`). When it is off nothing is loaded or patched: it costs nothing.
 */
import { register } from 'node:module';

let sdkShutdown: (() => Promise<void>) | undefined;
let enabled = false;

export function tracingRequested(env: NodeJS.ProcessEnv = process.env): boolean {
  if ((env.OTEL_SDK_DISABLED ?? '').toLowerCase() === 'true') return false;
  if ((env.OTEL_TRACES_EXPORTER ?? '').toLowerCase() === 'none') return false;
  return Boolean(env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim() || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?.trim());
}

export function tracingEnabled(): boolean {
  return enabled;
}

export interface TracingOptions {
  serviceName: string;
  serviceVersion: string;
}

export async function startTracing(opts: TracingOptions): Promise<boolean> {
  if (enabled || !tracingRequested()) return enabled;
  // ESM hook: named imports of builtins (node:http) are only patched with it.
  register('@opentelemetry/instrumentation/hook.mjs', import.meta.url);

  const [{ NodeSDK }, { OTLPTraceExporter }, { BatchSpanProcessor }, { resourceFromAttributes }, http, undici, pg, ioredis, pino, fastifyOtel] =
    await Promise.all([
      import('@opentelemetry/sdk-node'),
      import('@opentelemetry/exporter-trace-otlp-http'),
      import('@opentelemetry/sdk-trace-base'),
      import('@opentelemetry/resources'),
      import('@opentelemetry/instrumentation-http'),
      import('@opentelemetry/instrumentation-undici'),
      import('@opentelemetry/instrumentation-pg'),
      import('@opentelemetry/instrumentation-ioredis'),
      import('@opentelemetry/instrumentation-pino'),
      import('@fastify/otel'),
    ]);

  const quietPaths = new Set(['/metrics', '/health', '/ready', '/api/v1/health']);
  const sdk = new NodeSDK({
    resource: resourceFromAttributes({
      'service.name': process.env.OTEL_SERVICE_NAME || opts.serviceName,
      'service.version': opts.serviceVersion,
      'service.namespace': 'codelab',
    }),
    spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter(), { scheduledDelayMillis: 500 })],
    instrumentations: [
      new http.HttpInstrumentation({
        ignoreIncomingRequestHook: (req) => quietPaths.has((req.url ?? '').split('?')[0] ?? ''),
      }),
      new undici.UndiciInstrumentation(),
      // no span per pool checkout: a query span says what the database did
      new pg.PgInstrumentation({ requireParentSpan: true, ignoreConnectSpans: true }),
      new ioredis.IORedisInstrumentation({ requireParentSpan: true }),
      // trace_id / span_id on every log line written inside a span; logs go to stdout/Loki, not OTLP.
      new pino.PinoInstrumentation({ disableLogSending: true }),
      // a request span and its handler span; no span per lifecycle hook (auth, metrics, … run on
      // every request: a dozen spans each that say little and cost CPU on every call)
      new fastifyOtel.FastifyOtelInstrumentation({
        registerOnInitialization: true,
        instrumentHooks: false,
        ignorePaths: (opts: { url: string }) => quietPaths.has(opts.url),
      }),
    ],
    // Metrics are served by prom-client at /metrics; logs by pino.
    metricReaders: [],
    logRecordProcessors: [],
  });
  sdk.start();
  enabled = true;
  sdkShutdown = () => sdk.shutdown();
  return true;
}

/** Flushes and stops the SDK (no-op when tracing is off). */
export async function shutdownTracing(): Promise<void> {
  if (!sdkShutdown) return;
  const stop = sdkShutdown;
  sdkShutdown = undefined;
  await stop().catch(() => undefined);
}
