/**
 * POST /v1/chat/completions: OpenAI-compatible, streaming (SSE chunks, then `[DONE]`) or not.
 * Answers come from the mock LLM, token by token with the configured latency profile; a client
 * that disconnects stops the generation at once.
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import type { FastifyInstance } from 'fastify';
import { activeTraceIds, ServiceMetrics, startSse } from '@codelab/service-kit';
import type { ChatCompletion, ChatCompletionChunk, ChatCompletionRequest, Usage } from '@codelab/protocol';
import type { LlmProxyConfig } from '../config.ts';
import { OpenAIError } from '../errors.ts';
import type { LlmProxyMetrics } from '../metrics.ts';
import { countPromptTokens, mockReply, tokenize } from '../mock-llm.ts';

const tracer = trace.getTracer('codelab-llm-proxy');

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

export const chatRequestSchema = {
  type: 'object',
  required: ['model', 'messages'],
  properties: {
    model: { type: 'string', minLength: 1 },
    messages: { type: 'array', minItems: 1, items: messageSchema },
    stream: { type: 'boolean' },
    stream_options: { type: 'object', properties: { include_usage: { type: 'boolean' } } },
    temperature: { type: 'number', minimum: 0, maximum: 2 },
    max_tokens: { type: 'integer', minimum: 1 },
    tools: { type: 'array' },
    tool_choice: {},
  },
} as const;

interface Deps {
  config: LlmProxyConfig;
  metrics: LlmProxyMetrics;
}

export function registerChatCompletions(app: FastifyInstance, { config, metrics }: Deps): void {
  const served = new Set(config.models);

  app.post<{ Body: ChatCompletionRequest }>('/v1/chat/completions', { schema: { body: chatRequestSchema } }, async (request, reply) => {
    const body = request.body;
    if (!served.has(body.model)) {
      throw new OpenAIError('LLMP_ERR_MODEL_NOT_FOUND', `The model '${body.model}' does not exist or you do not have access to it.`, 'model');
    }
    const model = metrics.modelLabel(body.model);
    const stream = body.stream === true;
    const started = performance.now();
    const reply_text = mockReply(body.messages);
    const tokens = tokenize(reply_text);
    const usage: Usage = { prompt_tokens: countPromptTokens(body.messages), completion_tokens: tokens.length, total_tokens: 0 };
    usage.total_tokens = usage.prompt_tokens + usage.completion_tokens;
    const id = `chatcmpl-${randomUUID()}`;
    const created = Math.floor(Date.now() / 1000);

    const span = tracer.startSpan(`chat ${body.model}`, {
      kind: SpanKind.INTERNAL,
      attributes: {
        'gen_ai.operation.name': 'chat',
        'gen_ai.provider.name': 'codelab.mock',
        'gen_ai.request.model': body.model,
        'gen_ai.response.id': id,
        ...(body.max_tokens ? { 'gen_ai.request.max_tokens': body.max_tokens } : {}),
        ...(body.temperature !== undefined ? { 'gen_ai.request.temperature': body.temperature } : {}),
      },
    });
    const finish = (outcome: string): void => {
      const seconds = (performance.now() - started) / 1000;
      metrics.requests.inc({ model, stream: String(stream), outcome });
      metrics.duration.observe({ model, stream: String(stream), outcome }, seconds);
      metrics.inflight.dec({ model });
      span.setAttributes({
        'gen_ai.usage.input_tokens': usage.prompt_tokens,
        'gen_ai.usage.output_tokens': usage.completion_tokens,
        'gen_ai.response.finish_reasons': [outcome === 'ok' ? 'stop' : outcome],
      });
      if (outcome !== 'ok') span.setStatus({ code: SpanStatusCode.ERROR, message: outcome });
      span.end();
    };
    metrics.inflight.inc({ model });

    if (!stream) {
      try {
        await sleep(config.mockTtftMs + config.mockTokenDelayMs * Math.max(0, tokens.length - 1));
      } catch {
        finish('client_disconnected');
        throw new OpenAIError('LLMP_ERR_INTERNAL', 'aborted');
      }
      metrics.tokenUsage.observe({ model, token_type: 'input' }, usage.prompt_tokens);
      metrics.tokenUsage.observe({ model, token_type: 'output' }, usage.completion_tokens);
      finish('ok');
      const completion: ChatCompletion = {
        id,
        object: 'chat.completion',
        created,
        model: body.model,
        choices: [{ index: 0, message: { role: 'assistant', content: reply_text }, finish_reason: 'stop' }],
        usage,
      };
      return reply.send(completion);
    }

    const sse = startSse(reply);
    const chunk = (delta: ChatCompletionChunk['choices'][number]['delta'], finish_reason: string | null = null): ChatCompletionChunk => ({
      id,
      object: 'chat.completion.chunk',
      created,
      model: body.model,
      choices: [{ index: 0, delta, finish_reason }],
    });
    try {
      await sse.send(chunk({ role: 'assistant', content: '' }));
      let last = started;
      for (let i = 0; i < tokens.length; i++) {
        const delay = i === 0 ? config.mockTtftMs : config.mockTokenDelayMs;
        if (delay > 0) await sleep(delay, undefined, { signal: sse.signal });
        if (sse.closed) throw new Error('client disconnected');
        await sse.send(chunk({ content: tokens[i]! }));
        const now = performance.now();
        if (i === 0) ServiceMetrics.observe(metrics.timeToFirstToken, { model }, (now - started) / 1000, activeTraceIds());
        else metrics.timePerOutputToken.observe({ model }, (now - last) / 1000);
        last = now;
      }
      await sse.send(chunk({}, 'stop'));
      if (body.stream_options?.include_usage) {
        await sse.send({ id, object: 'chat.completion.chunk', created, model: body.model, choices: [], usage } satisfies ChatCompletionChunk);
      }
      await sse.send('[DONE]');
      metrics.tokenUsage.observe({ model, token_type: 'input' }, usage.prompt_tokens);
      metrics.tokenUsage.observe({ model, token_type: 'output' }, usage.completion_tokens);
      finish('ok');
    } catch (err) {
      finish(sse.closed ? 'client_disconnected' : 'error');
      if (!sse.closed) request.log.error({ err }, 'stream failed');
    } finally {
      sse.end();
    }
  });
}
