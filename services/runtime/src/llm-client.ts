/**
 * The runtime's client of the llm-proxy: always `stream: true`, yielding each token as it arrives,
 * the tool calls once their streamed pieces are complete, the usage and the finish reason.
 * Upstream errors (an HTTP error status, or a final `data: {"error":…}` event mid-stream, or a
 * stream without `[DONE]`) become LlmError with the proxy's status, code and message (never
 * assistant text). That message is the raw cause, for logs and spans; what a user is shown is
 * `userText`, one readable sentence per kind of failure (LLM_FAILURE_TEXT).
 */
import { SpanKind, SpanStatusCode, context, trace } from '@opentelemetry/api';
import {
  PeerClient,
  PeerUnavailableError,
  sseEventsIn,
  sseRuns,
  startSpan,
  type PeerOptions,
  type ServiceMetrics,
} from '@codelab/service-kit';
import {
  MAX_WRITE_INTERVAL_MS,
  openAIErrorOf,
  readOpenAIErrorBody,
  ToolCallAssembler,
  WRITE_INTERVAL_HEADER,
  type ChatCompletionChunk,
  type ChatMessage,
  type ToolCall,
  type Usage,
} from '@codelab/protocol';
import type { RuntimeMetrics } from './metrics.ts';

const tracer = trace.getTracer('codelab-runtime');

/**
 * How an LLM call failed (a bounded value: the `error.type` of spans and logs):
 * - unreachable: the llm-proxy could not be reached;
 * - timeout: no answer (headers) within AGENT_RUNTIME__LLM_FIRST_BYTE_TIMEOUT, or the proxy's 504;
 * - busy: the proxy refused for load (429, 503) before answering;
 * - refused: any other error status before answering;
 * - interrupted: the answer had started and broke off (an error event, a closed socket such as
 *   undici's "other side closed", silence past AGENT_RUNTIME__LLM_IDLE_TIMEOUT, no `[DONE]`).
 */
export type LlmFailure = 'unreachable' | 'timeout' | 'busy' | 'refused' | 'interrupted';

/** What a user is told for each kind of failure (never the raw cause). */
export const LLM_FAILURE_TEXT: Record<LlmFailure, string> = {
  unreachable: 'The language model cannot be reached right now',
  timeout: 'The language model took too long to answer',
  busy: 'The language model is overloaded right now',
  refused: 'The language model could not answer',
  interrupted: 'The language model stopped answering mid-answer',
};

export class LlmError extends Error {
  readonly status: number | undefined;
  /** The proxy's OpenAI error code (e.g. `upstream_timeout`), when it sent one. */
  readonly code: string | undefined;
  readonly failure: LlmFailure;
  constructor(message: string, status?: number, options?: { cause?: unknown; code?: string | null; failure?: LlmFailure }) {
    super(message, options?.cause !== undefined ? { cause: options.cause } : undefined);
    this.name = 'LlmError';
    this.status = status;
    this.code = options?.code ?? undefined;
    this.failure = options?.failure ?? 'refused';
  }

  /** A readable sentence for the user (no raw cause): `LLM_FAILURE_TEXT` of the failure. */
  get userText(): string {
    return LLM_FAILURE_TEXT[this.failure];
  }
}

/** The kind of an HTTP error status the proxy answered before streaming. */
function statusFailure(status: number, code: string | null): LlmFailure {
  if (status === 504 || code === 'upstream_timeout') return 'timeout';
  if (status === 429 || status === 503) return 'busy';
  return 'refused';
}

export type LlmEvent =
  | { kind: 'token'; token: string }
  | { kind: 'tool_calls'; calls: ToolCall[] }
  | { kind: 'usage'; usage: Usage }
  | { kind: 'finish'; reason: string };

export interface LlmClientOptions {
  baseUrl: string;
  internalApiKey: string;
  model: string;
  firstByteTimeoutMs: number;
  idleTimeoutMs: number;
  /** Keep-alive connections to the llm-proxy (over HTTP/1.1 each streaming call holds one). */
  connections?: number;
  /** LLM calls per connection over h2c (PeerOptions.h2cStreams); 0 or absent: HTTP/1.1. */
  h2cStreams?: number;
  /**
   * After the first output, the llm-proxy writes at most this often (ms; WRITE_INTERVAL_HEADER):
   * the turn gathers tokens into frames at this interval anyway. 0: every chunk as it comes.
   */
  writeIntervalMs?: number;
  serviceMetrics: ServiceMetrics;
  metrics: RuntimeMetrics;
  /** Where a peer that does not speak h2c is reported. */
  log?: PeerOptions['log'];
}

export class LlmClient {
  private readonly peer: PeerClient;
  private readonly opts: LlmClientOptions;

  /** The write-interval header of every call, when one is asked for. */
  private readonly writeInterval: Record<string, string> | undefined;

  constructor(opts: LlmClientOptions) {
    this.opts = opts;
    const ms = Math.min(Math.round(opts.writeIntervalMs ?? 0), MAX_WRITE_INTERVAL_MS);
    this.writeInterval = ms > 0 ? { [WRITE_INTERVAL_HEADER]: String(ms) } : undefined;
    this.peer = new PeerClient({
      peer: 'llm-proxy',
      baseUrl: opts.baseUrl,
      internalApiKey: opts.internalApiKey,
      metrics: opts.serviceMetrics,
      headersTimeoutMs: opts.firstByteTimeoutMs,
      bodyTimeoutMs: opts.idleTimeoutMs,
      // a stream holds its connection for the whole answer: as many as turns may run at once
      connections: opts.connections,
      h2cStreams: opts.h2cStreams,
      log: opts.log,
    });
  }

  get model(): string {
    return this.opts.model;
  }

  /**
   * Streams one chat completion. The span `chat {model}` covers the whole stream. `tools` are
   * OpenAI function specs; `extra` more request fields (e.g. the classifier's temperature).
   *
   * The request is encoded here, when the call is made: the stream keeps its bytes (outside the
   * JavaScript heap), not the prompt's objects. A prompt carries the session's history; objects
   * kept for a whole answer outlive the garbage collector's young generation, and a runtime that
   * promoted every turn's history into the old one paid for it with full collections, each a
   * stall of every turn in flight (bench:ttft's open rounds).
   */
  streamChat(
    messages: ChatMessage[],
    signal?: AbortSignal,
    opts: { tools?: unknown[]; extra?: Record<string, unknown> } = {},
  ): AsyncGenerator<LlmEvent> {
    const body = {
      ...opts.extra,
      model: this.opts.model,
      messages,
      stream: true,
      stream_options: { include_usage: true },
      ...(opts.tools?.length ? { tools: opts.tools } : {}),
    };
    return this.stream(Buffer.from(JSON.stringify(body)), signal);
  }

  private async *stream(body: Buffer, signal: AbortSignal | undefined): AsyncGenerator<LlmEvent> {
    const model = this.opts.model;
    const span = startSpan(tracer, `chat ${model}`, { kind: SpanKind.CLIENT }, () => ({
      'gen_ai.operation.name': 'chat',
      'gen_ai.provider.name': 'codelab.llm-proxy',
      'gen_ai.request.model': model,
    }));
    const ctx = trace.setSpan(context.active(), span);
    const started = performance.now();
    let outcome = 'ok';
    let firstToken = true;
    /** The proxy answered 200: from then on a failure breaks an answer that had started. */
    let streaming = false;
    try {
      const res = await context.with(ctx, () =>
        this.peer.request({
          method: 'POST',
          path: '/v1/chat/completions',
          route: '/v1/chat/completions',
          ...(this.writeInterval ? { headers: this.writeInterval } : {}),
          body,
          ...(signal ? { signal } : {}),
        }),
      );
      if (res.statusCode !== 200) {
        const { message, code } = readOpenAIErrorBody(await res.body.text());
        throw new LlmError(`LLM proxy answered ${res.statusCode}${code ? ` (${code})` : ''}: ${message}`, res.statusCode, {
          code,
          failure: statusFailure(res.statusCode, code),
        });
      }
      streaming = true;
      const tools = new ToolCallAssembler();
      let done = false;
      // The stream is read to its end, [DONE] included: leaving the loop early destroys the body
      // with an AbortError whose stack trace cost about 1% of the runtime's CPU, on every LLM call.
      // The llm-proxy ends its response with [DONE]; whatever follows it is ignored, and a stream
      // that breaks after it has given its whole answer.
      // (runs of whole events, each parsed here: one async step per socket read, not one per event)
      try {
        for await (const run of sseRuns(res.body))
          for (const ev of sseEventsIn(run)) {
            if (done) continue;
            if (ev.data === '[DONE]') {
              done = true;
              continue;
            }
            let chunk: ChatCompletionChunk;
            try {
              chunk = JSON.parse(ev.data) as ChatCompletionChunk;
            } catch {
              continue;
            }
            const error = openAIErrorOf(chunk);
            if (error) {
              throw new LlmError(`LLM stream failed${error.code ? ` (${error.code})` : ''}: ${error.message ?? 'unknown error'}`, 502, {
                code: error.code,
                failure: 'interrupted',
              });
            }
            if (chunk.usage) {
              span.setAttributes({
                'gen_ai.usage.input_tokens': chunk.usage.prompt_tokens,
                'gen_ai.usage.output_tokens': chunk.usage.completion_tokens,
              });
              yield { kind: 'usage', usage: chunk.usage };
            }
            const choice = chunk.choices?.[0];
            if (choice?.delta.tool_calls?.length) {
              if (firstToken) {
                firstToken = false;
                this.opts.metrics.llmTimeToFirstChunk.observe({ model }, (performance.now() - started) / 1000);
              }
              tools.add(choice.delta.tool_calls);
            }
            const token = choice?.delta.content;
            if (token) {
              if (firstToken) {
                firstToken = false;
                this.opts.metrics.llmTimeToFirstChunk.observe({ model }, (performance.now() - started) / 1000);
              }
              yield { kind: 'token', token };
            }
            if (choice?.finish_reason) {
              const calls = tools.take();
              if (calls.length) yield { kind: 'tool_calls', calls };
              span.setAttribute('gen_ai.response.finish_reasons', [choice.finish_reason]);
              yield { kind: 'finish', reason: choice.finish_reason };
            }
          }
      } catch (err) {
        if (!done) throw err;
      }
      if (!done)
        throw new LlmError('LLM stream ended before [DONE] (the llm-proxy or its upstream broke off)', 502, { failure: 'interrupted' });
    } catch (err) {
      outcome = 'error';
      // the raw cause (e.g. undici's "other side closed") stays here, in the span and the caller's log
      const failure: LlmFailure =
        err instanceof LlmError
          ? err.failure
          : streaming
            ? 'interrupted'
            : err instanceof PeerUnavailableError && err.timeout
              ? 'timeout'
              : 'unreachable';
      span.recordException(err as Error);
      span.setAttribute('error.type', failure);
      span.setStatus({ code: SpanStatusCode.ERROR, message: (err as Error).message });
      if (err instanceof LlmError) throw err;
      throw new LlmError((err as Error).message, undefined, { cause: err, failure });
    } finally {
      this.opts.metrics.llmDuration.observe({ model, outcome }, (performance.now() - started) / 1000);
      span.end();
    }
  }

  checkHealth(): Promise<void> {
    return this.peer.checkHealth();
  }

  close(): Promise<void> {
    return this.peer.close();
  }
}
