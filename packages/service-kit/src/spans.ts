/**
 * How a service starts a span of its own work (a turn, an agent's step, a model call): like
 * `tracer.startSpan`, but the attributes are built and set only when the sampler keeps the span.
 * The SDK copies and checks the attributes given at the start of every span, dropped ones too,
 * and a request or turn the sampler dropped should cost as little as tracing off. (The samplers
 * the kit sets up, tracing.ts, decide on the trace id and the parent alone, never on attributes.)
 */
import type { Attributes, Context, Span, SpanOptions, Tracer } from '@opentelemetry/api';

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
