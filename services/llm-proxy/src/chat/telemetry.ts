/**
 * What one chat completion reports, recorded as it goes and once when it ends (`finish`): its span
 * (`chat <model>`, gen_ai attributes), the request count and duration by outcome, token usage, and
 * for a stream the time to first token (with the trace as exemplar), the upstream's time to its
 * first chunk, the proxy's overhead and the time per output token.
 *
 * Outcomes: `ok`, `client_disconnected`, the OpenAI error code of an OpenAIError, `internal_error`,
 * or the outcome a provider's `cut` event names (the mock's `injected_disconnect`).
 */
import { SpanKind, SpanStatusCode, trace, type Span } from '@opentelemetry/api';
import { activeTraceIds, ServiceMetrics, startSpan } from '@codelab/service-kit';
import type { ChatCompletionRequest } from '@codelab/protocol';
import { OpenAIError } from '../errors.ts';
import type { LlmProxyMetrics } from '../metrics.ts';
import type { Provider, ProviderStream } from '../providers/provider.ts';
import type { Answer } from './answer.ts';

const tracer = trace.getTracer('codelab-llm-proxy');

/** The outcome of a request that failed with `err`: a client that left counts as such whatever the error. */
export function outcomeOf(err: unknown, clientGone: AbortSignal): string {
  return clientGone.aborted ? 'client_disconnected' : err instanceof OpenAIError ? err.def.code : 'internal_error';
}

export interface ChatTelemetryDeps {
  metrics: LlmProxyMetrics;
  provider: Provider;
  /** LLM_PROXY__CAPTURE_MESSAGE_CONTENT: the span records the prompt and the answer. */
  captureMessageContent: boolean;
}

export class ChatTelemetry {
  /** The request's `model` label (a configured public name, or `other`). */
  readonly model: string;
  private readonly deps: ChatTelemetryDeps;
  /** The `stream` label: the client asked for a stream. */
  private readonly streamed: string;
  private readonly answer: Answer;
  private readonly span: Span;
  private readonly started = performance.now();
  private stream: ProviderStream | undefined;
  private firstAt = 0;
  private lastAt = 0;
  private outputs = 0;
  private ended = false;

  /** Starts the clock and the span. */
  constructor(deps: ChatTelemetryDeps, request: ChatCompletionRequest, answer: Answer) {
    this.deps = deps;
    this.streamed = String(request.stream === true);
    this.answer = answer;
    this.model = deps.metrics.modelLabel(request.model);
    this.span = startSpan(tracer, `chat ${request.model}`, { kind: SpanKind.INTERNAL }, () => ({
      'gen_ai.operation.name': 'chat',
      'gen_ai.provider.name': deps.provider.semconvName,
      'gen_ai.request.model': request.model,
      ...(request.max_tokens ? { 'gen_ai.request.max_tokens': request.max_tokens } : {}),
      ...(request.temperature !== undefined ? { 'gen_ai.request.temperature': request.temperature } : {}),
      ...(request.top_p !== undefined ? { 'gen_ai.request.top_p': request.top_p } : {}),
      ...(deps.captureMessageContent ? { 'gen_ai.input.messages': JSON.stringify(request.messages) } : {}),
    }));
  }

  private get labels(): { model: string; provider: string } {
    return { model: this.model, provider: this.deps.provider.name };
  }

  /** The provider's stream, once it was asked: the upstream model that answered and its time to first chunk. */
  providerStream(stream: ProviderStream): void {
    this.stream = stream;
  }

  /** A streaming client got its first output token: writes may be batched from now on. */
  get firstOutputSent(): boolean {
    return this.firstAt !== 0;
  }

  /** A chunk with output (content or a tool call) was sent to a streaming client. */
  outputSent(): void {
    const now = performance.now();
    this.outputs++;
    this.lastAt = now;
    if (this.firstAt) return;
    this.firstAt = now;
    const { metrics } = this.deps;
    const ttft = (now - this.started) / 1000;
    ServiceMetrics.observe(metrics.timeToFirstToken, this.labels, ttft, activeTraceIds());
    const upstream = this.stream?.upstreamTtftMs();
    if (upstream !== undefined) {
      metrics.upstreamTimeToFirstChunk.observe(this.labels, upstream / 1000);
      metrics.overhead.observe(this.labels, Math.max(0, ttft - upstream / 1000));
    }
  }

  /** A streamed answer asked for a write interval (ms): on the span. */
  writeInterval(ms: number): void {
    this.span.setAttribute('codelab.llm.write_interval_ms', ms);
  }

  /** A streamed answer ended after `writes` socket writes. */
  streamWritten(writes: number): void {
    this.deps.metrics.streamWrites.observe(this.labels, writes);
  }

  /** An upstream's SSE text with `events` events was forwarded as it is. */
  forwarded(events: number): void {
    this.outputs += events;
    this.lastAt = performance.now();
  }

  /** gen_ai.server.time_per_output_token: one observation per successful stream, after the first token. */
  streamCompleted(): void {
    const tokens = this.answer.usage?.completion_tokens ?? this.outputs;
    if (this.firstAt && tokens > 1)
      this.deps.metrics.timePerOutputToken.observe(this.labels, (this.lastAt - this.firstAt) / 1000 / (tokens - 1));
  }

  /** The request ended with `outcome`: counts it, and ends the span (an error unless `ok`). Only the first call counts. */
  finish(outcome: string, err?: unknown): void {
    if (this.ended) return;
    this.ended = true;
    const { metrics, captureMessageContent } = this.deps;
    const { model, provider } = this.labels;
    const stream = this.streamed;
    const { answer, span } = this;
    metrics.requests.inc({ model, provider, stream, outcome });
    metrics.duration.observe({ model, provider, stream, outcome }, (performance.now() - this.started) / 1000);
    if (answer.usage) {
      metrics.tokenUsage.observe({ model, provider, token_type: 'input' }, answer.usage.prompt_tokens);
      metrics.tokenUsage.observe({ model, provider, token_type: 'output' }, answer.usage.completion_tokens);
      span.setAttributes({
        'gen_ai.usage.input_tokens': answer.usage.prompt_tokens,
        'gen_ai.usage.output_tokens': answer.usage.completion_tokens,
      });
    }
    if (answer.id) span.setAttribute('gen_ai.response.id', answer.id);
    if (answer.finish) span.setAttribute('gen_ai.response.finish_reasons', [answer.finish]);
    const answered = this.stream?.upstreamModel();
    if (answered) span.setAttribute('gen_ai.response.model', answered);
    if (captureMessageContent) {
      span.setAttribute(
        'gen_ai.output.messages',
        JSON.stringify([{ role: 'assistant', content: answer.content, ...(answer.tools.length ? { tool_calls: answer.tools } : {}) }]),
      );
    }
    if (outcome !== 'ok') {
      span.setAttribute('error.type', outcome);
      span.setStatus({ code: SpanStatusCode.ERROR, message: (err as Error | undefined)?.message ?? outcome });
    }
    span.end();
  }
}
