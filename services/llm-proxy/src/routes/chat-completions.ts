/**
 * POST /v1/chat/completions: OpenAI-compatible, streaming (SSE chunks, then `[DONE]`) or not.
 *
 * Every request passes the concurrency limiter, then the provider (mock or upstream) streams
 * OpenAI chunks, through named stages (../chat/): the first output (first-output.ts: nothing is
 * sent before it, so any failure until then is an HTTP error with an OpenAI error object, and the
 * upstream provider may retry it), then the JSON reply (json-reply.ts) or the SSE stream
 * (sse-stream.ts: a failure after the first output ends the stream with a last
 * `data: {"error":{…}}` event and no `[DONE]`), with telemetry throughout (telemetry.ts). A client
 * that disconnects aborts the provider (and the upstream request) at once.
 */
import type { FastifyInstance } from 'fastify';
import { MAX_WRITE_INTERVAL_MS, WRITE_INTERVAL_HEADER, type ChatCompletionRequest } from '@codelab/protocol';
import { Answer } from '../chat/answer.ts';
import type { ChatExchange } from '../chat/exchange.ts';
import { awaitFirstOutput } from '../chat/first-output.ts';
import { replyJson } from '../chat/json-reply.ts';
import { streamSse } from '../chat/sse-stream.ts';
import { ChatTelemetry, outcomeOf } from '../chat/telemetry.ts';
import type { LlmProxyConfig } from '../config.ts';
import { OpenAIError } from '../errors.ts';
import type { LlmProxyMetrics } from '../metrics.ts';
import type { ModelMap } from '../model-map.ts';
import type { Provider, ProviderEvent } from '../providers/provider.ts';
import type { ConcurrencyLimiter } from '../resilience/concurrency-limiter.ts';

const messageSchema = {
  type: 'object',
  required: ['role'],
  properties: {
    role: { type: 'string', enum: ['system', 'user', 'assistant', 'tool', 'developer'] },
    content: { anyOf: [{ type: 'string' }, { type: 'null' }, { type: 'array' }] },
    name: { type: 'string' },
    tool_call_id: { type: 'string' },
    tool_calls: { type: 'array' },
  },
} as const;

const chatRequestSchema = {
  type: 'object',
  required: ['model', 'messages'],
  properties: {
    model: { type: 'string', minLength: 1 },
    messages: { type: 'array', minItems: 1, items: messageSchema },
    stream: { type: 'boolean' },
    stream_options: { type: 'object', properties: { include_usage: { type: 'boolean' } } },
    temperature: { type: 'number', minimum: 0, maximum: 2 },
    top_p: { type: 'number', minimum: 0, maximum: 1 },
    max_tokens: { type: 'integer', minimum: 1 },
    max_completion_tokens: { type: 'integer', minimum: 1 },
    tools: { type: 'array', items: { type: 'object', required: ['type'], properties: { type: { type: 'string' } } } },
    tool_choice: { anyOf: [{ type: 'string', enum: ['none', 'auto', 'required'] }, { type: 'object' }] },
  },
} as const;

export interface ChatCompletionsDeps {
  config: LlmProxyConfig;
  metrics: LlmProxyMetrics;
  provider: Provider;
  modelMap: ModelMap;
  limiter: ConcurrencyLimiter;
}

/** The write interval a streaming request asked for (WRITE_INTERVAL_HEADER): whole milliseconds, 0 to MAX_WRITE_INTERVAL_MS. */
function writeIntervalOf(value: string | string[] | undefined): number {
  if (value === undefined) return 0;
  const text = Array.isArray(value) ? value.join(',') : value;
  const ms = /^\s*\d{1,4}\s*$/.test(text) ? Number(text) : Number.NaN;
  if (!(ms <= MAX_WRITE_INTERVAL_MS)) {
    throw new OpenAIError(
      'LLMP_ERR_INVALID_REQUEST',
      `The ${WRITE_INTERVAL_HEADER} header must be whole milliseconds from 0 to ${MAX_WRITE_INTERVAL_MS}, not '${text.slice(0, 40)}'.`,
      WRITE_INTERVAL_HEADER,
    );
  }
  return ms;
}

export function registerChatCompletions(app: FastifyInstance, { config, metrics, provider, modelMap, limiter }: ChatCompletionsDeps): void {
  app.post<{ Body: ChatCompletionRequest }>('/v1/chat/completions', { schema: { body: chatRequestSchema } }, async (request, reply) => {
    // what is read of the request after the provider took it (the prompt is not kept: below)
    const { model, stream: streamed } = request.body;
    const includeUsage = request.body.stream_options?.include_usage === true;
    const route = modelMap.get(model);
    if (!route) {
      throw new OpenAIError('LLMP_ERR_MODEL_NOT_FOUND', `The model '${model}' does not exist or you do not have access to it.`, 'model');
    }
    const writeIntervalMs = writeIntervalOf(request.headers[WRITE_INTERVAL_HEADER]);
    const answer = new Answer();
    const telemetry = new ChatTelemetry({ metrics, provider, captureMessageContent: config.captureMessageContent }, request.body, answer);
    const abort = new AbortController();
    reply.raw.on('close', () => {
      // (not `writableFinished`: an HTTP/2 response's turns true when the client resets the stream)
      if (!reply.raw.writableEnded) abort.abort(new Error('client disconnected'));
    });
    /** Before any output: the error handler answers the error's status; a client that left gets nothing. */
    const failBeforeOutput = (err: unknown) => {
      telemetry.finish(outcomeOf(err, abort.signal), err);
      if (abort.signal.aborted) return reply.hijack();
      throw err;
    };

    let release: () => void;
    try {
      release = await limiter.acquire(abort.signal);
    } catch (err) {
      return failBeforeOutput(err);
    }
    metrics.inflight.inc({ model: telemetry.model });
    const stream = provider.stream({ request: request.body, route, headers: request.headers, signal: abort.signal });
    // The provider has read the request: its prompt goes now. Fastify's request lives as long as
    // the answer, and a prompt kept for a whole answer outlives the young generation: every one
    // would be promoted, and collected later by full collections that stall every stream.
    (request as { body: unknown }).body = undefined;
    telemetry.providerStream(stream);
    try {
      let first: ProviderEvent[];
      try {
        first = await awaitFirstOutput(stream.events);
      } catch (err) {
        return failBeforeOutput(err);
      }
      if (abort.signal.aborted) {
        telemetry.finish('client_disconnected');
        return reply.hijack();
      }
      const exchange: ChatExchange = {
        model,
        includeUsage,
        reply,
        log: request.log,
        providerName: provider.name,
        first,
        events: stream.events,
        clientGone: abort.signal,
        answer,
        telemetry,
        writeIntervalMs,
      };
      return streamed === true ? await streamSse(exchange) : await replyJson(exchange);
    } finally {
      await stream.events.return(undefined).catch(() => undefined);
      metrics.inflight.dec({ model: telemetry.model });
      release();
    }
  });
}
