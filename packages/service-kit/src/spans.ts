/**
 * How a service starts a span of its own work (a turn, an agent's step, a model call): like
 * `tracer.startSpan`, but the attributes are built and set only when the sampler keeps the span.
 * The SDK copies and checks the attributes given at the start of every span, dropped ones too,
 * and a request or turn the sampler dropped should cost as little as tracing off. (The samplers
 * the kit sets up, tracing.ts, decide on the trace id and the parent alone, never on attributes.)
 */
import { trace, TraceFlags, type Attributes, type Context, type Span, type SpanOptions, type Tracer } from '@opentelemetry/api';

/**
 * Whether `ctx` holds a span of a trace the sampler kept: the kit's PostgreSQL, Redis and peer-call
 * spans are made only then (a child of a dropped span would be dropped too). The sampled flag, not
 * `isRecording()`: a request's span may have ended while its work goes on (the gateway's upgrade
 * span ends with its 101, and the connection's first calls run in its context), and the calls made
 * then are still part of the kept trace.
 */
export function inSampledSpan(ctx: Context): boolean {
  const span = trace.getSpan(ctx);
  return span !== undefined && (span.spanContext().traceFlags & TraceFlags.SAMPLED) !== 0;
}

export function startSpan(
  tracer: Tracer,
  name: string,
  options: Omit<SpanOptions, 'attributes'>,
  attributes: () => Attributes,
  parent?: Context,
): Span {
  const span = tracer.startSpan(name, options, parent);
  if (span.isRecording()) span.setAttributes(attributes());
  return span;
}
