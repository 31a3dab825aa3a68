/**
 * OpenTelemetry tracing bootstrap.
 *
 * Called by a service's `main.ts` before it imports the app (which is imported dynamically
 * afterwards), so that the logger and the clients the app makes see tracing on. No module is
 * patched: the HTTP spans of every hop, the PostgreSQL statements' and the Redis commands' spans
 * are the kit's own (http-spans.ts, db-spans.ts, redis-spans.ts), made only inside a span of a
 * sampled trace, and the trace ids on log lines come from the kit's logger (logger.ts). The
 * instrumentations that did this before (ioredis, pino) needed module loader hooks
 * (import-in-the-middle), which wrap every module the process imports.
 *
 * Tracing is on only when the standard OTLP variables ask for it (`OTEL_EXPORTER_OTLP_ENDPOINT` or
 * `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, not disabled by `OTEL_SDK_DISABLED=true` or
 * `OTEL_TRACES_EXPORTER=none`). When it is off nothing is loaded or patched: it costs nothing.
 *
 * The SDK is put together from its pieces (the trace SDK, the OTLP/HTTP exporter, the
 * context manager, the propagators) rather than `@opentelemetry/sdk-node`, which loads (and ships in every
 * image) the gRPC, protobuf, Zipkin and Prometheus exporters and the metrics and logs SDKs this
 * platform does not use. The standard variables that applied through the Node SDK still apply:
 * `OTEL_TRACES_SAMPLER`/`_ARG`, `OTEL_PROPAGATORS` (`tracecontext`, `baggage`, `none`),
 * `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_SERVICE_NAME`, `OTEL_BSP_*`, the span limits, `OTEL_LOG_LEVEL`
 * and the exporter's own `OTEL_EXPORTER_OTLP_*` (endpoint, headers, timeout, compression).
 */
import type { TextMapPropagator } from '@opentelemetry/api';
import type { Sampler } from '@opentelemetry/sdk-trace';

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
  const [api, core, { AsyncLocalStorageContextManager }, sdk, { OTLPTraceExporter }, resources] = await Promise.all([
    import('@opentelemetry/api'),
    import('@opentelemetry/core'),
    import('@opentelemetry/context-async-hooks'),
    import('@opentelemetry/sdk-trace'),
    import('@opentelemetry/exporter-trace-otlp-http'),
    import('@opentelemetry/resources'),
  ]);
  const { getNumberFromEnv, getStringFromEnv, getStringListFromEnv } = core;

  const logLevel = getStringFromEnv('OTEL_LOG_LEVEL');
  if (logLevel) api.diag.setLogger(new api.DiagConsoleLogger(), { logLevel: core.diagLogLevelFromString(logLevel) });

  const contextManager = new AsyncLocalStorageContextManager();
  contextManager.enable();
  api.context.setGlobalContextManager(contextManager);

  // OTEL_PROPAGATORS (default tracecontext,baggage); the B3 propagators are not installed.
  const propagators: TextMapPropagator[] = [];
  const propagatorNames = getStringListFromEnv('OTEL_PROPAGATORS') ?? [];
  for (const name of new Set(propagatorNames.length > 0 ? propagatorNames : ['tracecontext', 'baggage'])) {
    if (name === 'tracecontext') propagators.push(new core.W3CTraceContextPropagator());
    else if (name === 'baggage') propagators.push(new core.W3CBaggagePropagator());
    else if (name !== 'none') api.diag.warn(`OTEL_PROPAGATORS: "${name}" is not supported (tracecontext, baggage, none)`);
  }
  if (!propagatorNames.includes('none') && propagators.length > 0) {
    api.propagation.setGlobalPropagator(propagators.length === 1 ? propagators[0]! : new core.CompositePropagator({ propagators }));
  }

  // Resource: this service, the host and the process; OTEL_RESOURCE_ATTRIBUTES and
  // OTEL_SERVICE_NAME win (the env detector is merged last).
  const resource = resources
    .resourceFromAttributes({
      'service.name': process.env.OTEL_SERVICE_NAME || opts.serviceName,
      'service.version': opts.serviceVersion,
      'service.namespace': 'codelab',
    })
    .merge(resources.detectResources({ detectors: [resources.processDetector, resources.hostDetector, resources.envDetector] }));

  const ratio = (): number => {
    const arg = getNumberFromEnv('OTEL_TRACES_SAMPLER_ARG');
    return arg !== undefined && arg >= 0 && arg <= 1 ? arg : 1;
  };
  const samplers: Record<string, () => Sampler> = {
    always_on: () => new sdk.AlwaysOnSampler(),
    always_off: () => new sdk.AlwaysOffSampler(),
    traceidratio: () => new sdk.TraceIdRatioBasedSampler(ratio()),
    parentbased_always_on: () => new sdk.ParentBasedSampler({ root: new sdk.AlwaysOnSampler() }),
    parentbased_always_off: () => new sdk.ParentBasedSampler({ root: new sdk.AlwaysOffSampler() }),
    parentbased_traceidratio: () => new sdk.ParentBasedSampler({ root: new sdk.TraceIdRatioBasedSampler(ratio()) }),
  };
  const samplerName = getStringFromEnv('OTEL_TRACES_SAMPLER');
  if (samplerName && !samplers[samplerName])
    api.diag.error(`unknown OTEL_TRACES_SAMPLER value "${samplerName}", using parentbased_always_on`);

  const positive = (name: string): number | undefined => {
    const value = getNumberFromEnv(name);
    return value !== undefined && value > 0 ? value : undefined;
  };
  const provider = new sdk.TracerProvider({
    resource,
    sampler: (samplers[samplerName ?? ''] ?? samplers.parentbased_always_on!)(),
    spanLimits: {
      attributeCountLimit: getNumberFromEnv('OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT') ?? getNumberFromEnv('OTEL_ATTRIBUTE_COUNT_LIMIT'),
      attributeValueLengthLimit:
        getNumberFromEnv('OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT') ?? getNumberFromEnv('OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT'),
      eventCountLimit: getNumberFromEnv('OTEL_SPAN_EVENT_COUNT_LIMIT'),
      linkCountLimit: getNumberFromEnv('OTEL_SPAN_LINK_COUNT_LIMIT'),
      attributePerEventCountLimit:
        getNumberFromEnv('OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT') ?? getNumberFromEnv('OTEL_SPAN_ATTRIBUTE_PER_EVENT_COUNT_LIMIT'),
      attributePerLinkCountLimit:
        getNumberFromEnv('OTEL_LINK_ATTRIBUTE_COUNT_LIMIT') ?? getNumberFromEnv('OTEL_SPAN_ATTRIBUTE_PER_LINK_COUNT_LIMIT'),
    },
    spanProcessors: [
      new sdk.BatchSpanProcessor({
        exporter: new OTLPTraceExporter(),
        scheduledDelayMillis: positive('OTEL_BSP_SCHEDULE_DELAY') ?? 500,
        maxQueueSize: positive('OTEL_BSP_MAX_QUEUE_SIZE'),
        maxExportBatchSize: positive('OTEL_BSP_MAX_EXPORT_BATCH_SIZE'),
        exportTimeoutMillis: positive('OTEL_BSP_EXPORT_TIMEOUT'),
      }),
    ],
  });
  api.trace.setGlobalTracerProvider(provider);
  enabled = true;
  sdkShutdown = () => provider.shutdown();
  return true;
}

/** Flushes and stops the SDK (no-op when tracing is off). */
export async function shutdownTracing(): Promise<void> {
  if (!sdkShutdown) return;
  const stop = sdkShutdown;
  sdkShutdown = undefined;
  await stop().catch(() => undefined);
}
