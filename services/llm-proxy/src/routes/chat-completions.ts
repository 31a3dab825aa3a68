/**
 * POST /v1/chat/completions: OpenAI-compatible, streaming (SSE chunks, then `[DONE]`) or not.
 *
 * Every request passes the concurrency limiter, then the provider (mock or upstream) streams
 * OpenAI chunks. Nothing is sent to the client before the first output chunk, so any failure
 * until then is an HTTP error with an OpenAI error object (and the upstream provider may retry
 * it); a failure after that ends the stream with a last `data: {"error":{…}}` event and no
 * `[DONE]`. A client that disconnects aborts the provider (and the upstream request) at once.
 */
import { SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import type { FastifyInstance } from 'fastify';
import { activeTraceIds, ServiceMetrics, startSse } from '@codelab/service-kit';
import type { ChatCompletion, ChatCompletionChunk, ChatCompletionRequest, ToolCall, Usage } from '@codelab/protocol';
import type { LlmProxyConfig } from '../config.ts';
import { OpenAIError } from '../errors.ts';
import type { LlmProxyMetrics } from '../metrics.ts';
import type { ModelMap } from '../model-map.ts';
import { hasOutput } from '../providers/openai-upstream.ts';
import type { Provider, ProviderEvent } from '../providers/provider.ts';
import type { ConcurrencyLimiter } from '../resilience/concurrency-limiter.ts';

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
    top_p: { type: 'number', minimum: 0, maximum: 1 },
    max_tokens: { type: 'integer', minimum: 1 },
    max_completion_tokens: { type: 'integer', minimum: 1 },
    tools: { type: 'array', items: { type: 'object', required: ['type'], properties: { type: { type: 'string' } } } },
    tool_choice: { anyOf: [{ type: 'string', enum: ['none', 'auto', 'required'] }, { type: 'object' }] },
  },
} as const;

interface Deps {
  config: LlmProxyConfig;
  metrics: LlmProxyMetrics;
  provider: Provider;
  modelMap: ModelMap;
  limiter: ConcurrencyLimiter;
}

/** Builds the non-streaming answer from the chunks. */
class Aggregate {
  content = '';
  readonly tools: ToolCall[] = [];
  finish: string | null = null;
  usage: Usage | undefined;
  id: string | undefined;
  created: number | undefined;
  add(c: ChatCompletionChunk): void {
    this.id ??= c.id;
    this.created ??= c.created;
    if (c.usage) this.usage = c.usage;
    const choice = c.choices?.[0];
    if (!choice) return;
    if (choice.delta?.content) this.content += choice.delta.content;
    for (const d of choice.delta?.tool_calls ?? []) {
      const t = (this.tools[d.index] ??= { id: '', type: 'function', function: { name: '', arguments: '' } });
      if (d.id) t.id = d.id;
      if (d.function?.name) t.function.name += d.function.name;
      if (d.function?.arguments) t.function.arguments += d.function.arguments;
    }
    if (choice.finish_reason) this.finish = choice.finish_reason;
  }
}

export function registerChatCompletions(app: FastifyInstance, { config, metrics, provider, modelMap, limiter }: Deps): void {
  app.post<{ Body: ChatCompletionRequest }>('/v1/chat/completions', { schema: { body: chatRequestSchema } }, async (request, reply) => {
    const body = request.body;
    const route = modelMap.get(body.model);
    if (!route) {
      throw new OpenAIError('LLMP_ERR_MODEL_NOT_FOUND', `The model '${body.model}' does not exist or you do not have access to it.`, 'model');
    }
    const model = metrics.modelLabel(body.model);
    const providerLabel = provider.name;
    const stream = body.stream === true;
    const started = performance.now();
    const abort = new AbortController();
    reply.raw.on('close', () => {
      if (!reply.raw.writableFinished) abort.abort(new Error('client disconnected'));
    });

    const span = tracer.startSpan(`chat ${body.model}`, {
      kind: SpanKind.INTERNAL,
      attributes: {
        'gen_ai.operation.name': 'chat',
        'gen_ai.provider.name': provider.semconvName,
        'gen_ai.request.model': body.model,
        ...(body.max_tokens ? { 'gen_ai.request.max_tokens': body.max_tokens } : {}),
        ...(body.temperature !== undefined ? { 'gen_ai.request.temperature': body.temperature } : {}),
        ...(body.top_p !== undefined ? { 'gen_ai.request.top_p': body.top_p } : {}),
        ...(config.captureMessageContent ? { 'gen_ai.input.messages': JSON.stringify(body.messages) } : {}),
      },
    });
    const agg = new Aggregate();
    let ended = false;
    const finish = (outcome: string, err?: Error): void => {
      if (ended) return;
      ended = true;
      const seconds = (performance.now() - started) / 1000;
      metrics.requests.inc({ model, provider: providerLabel, stream: String(stream), outcome });
      metrics.duration.observe({ model, provider: providerLabel, stream: String(stream), outcome }, seconds);
      if (agg.usage) {
        metrics.tokenUsage.observe({ model, provider: providerLabel, token_type: 'input' }, agg.usage.prompt_tokens);
        metrics.tokenUsage.observe({ model, provider: providerLabel, token_type: 'output' }, agg.usage.completion_tokens);
        span.setAttributes({ 'gen_ai.usage.input_tokens': agg.usage.prompt_tokens, 'gen_ai.usage.output_tokens': agg.usage.completion_tokens });
      }
      if (agg.id) span.setAttribute('gen_ai.response.id', agg.id);
      if (agg.finish) span.setAttribute('gen_ai.response.finish_reasons', [agg.finish]);
      const answered = ps?.upstreamModel();
      if (answered) span.setAttribute('gen_ai.response.model', answered);
      if (config.captureMessageContent) {
        span.setAttribute('gen_ai.output.messages', JSON.stringify([{ role: 'assistant', content: agg.content, ...(agg.tools.length ? { tool_calls: agg.tools } : {}) }]));
      }
      if (outcome !== 'ok') {
        span.setAttribute('error.type', outcome);
        span.setStatus({ code: SpanStatusCode.ERROR, message: err?.message ?? outcome });
      }
      span.end();
    };
    const outcomeOf = (err: unknown): string => (abort.signal.aborted ? 'client_disconnected' : err instanceof OpenAIError ? err.def.code : 'internal_error');

    let release: (() => void) | undefined;
    let ps: ReturnType<Provider['stream']> | undefined;
    try {
      release = await limiter.acquire(abort.signal);
    } catch (err) {
      finish(outcomeOf(err), err as Error);
      if (abort.signal.aborted) return reply.hijack();
      throw err;
    }
    metrics.inflight.inc({ model });
    ps = provider.stream({ request: body, route, headers: request.headers, signal: abort.signal });
    const events = ps.events;
    const pending: ProviderEvent[] = [];
    try {
      try {
        for (;;) {
          const next = await events.next();
          if (next.done) break;
          pending.push(next.value);
          if (next.value.type !== 'chunk' || hasOutput(next.value.chunk) || next.value.chunk.usage) break;
        }
      } catch (err) {
        finish(outcomeOf(err), err as Error);
        if (abort.signal.aborted) return reply.hijack();
        throw err;
      }
      if (abort.signal.aborted) {
        finish('client_disconnected');
        return reply.hijack();
      }

      if (!stream) {
        try {
          for (const ev of pending) if (ev.type === 'chunk') agg.add(ev.chunk);
          if (pending.some((e) => e.type === 'disconnect')) throw new Disconnect();
          for (;;) {
            const next = await events.next();
            if (next.done) break;
            if (next.value.type === 'disconnect') throw new Disconnect();
            if (next.value.type !== 'chunk') throw new Error(`provider ${provider.name} sent ${next.value.type} text to a non-streaming request`);
            agg.add(next.value.chunk);
          }
          if (abort.signal.aborted) throw new Error('client disconnected');
        } catch (err) {
          if (err instanceof Disconnect) {
            finish('injected_disconnect');
            reply.hijack();
            reply.raw.destroy();
            return;
          }
          finish(outcomeOf(err), err as Error);
          if (abort.signal.aborted) return reply.hijack();
          throw err;
        }
        finish('ok');
        const tool_calls = agg.tools.filter(Boolean);
        const completion: ChatCompletion = {
          id: agg.id ?? `chatcmpl-${crypto.randomUUID()}`,
          object: 'chat.completion',
          created: agg.created ?? Math.floor(Date.now() / 1000),
          model: body.model,
          choices: [{ index: 0, message: { role: 'assistant', content: agg.content || (tool_calls.length ? null : ''), ...(tool_calls.length ? { tool_calls } : {}) }, finish_reason: agg.finish ?? 'stop' }],
          usage: agg.usage ?? { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 },
        };
        return reply.send(completion);
      }

      // the first output is at hand: the headers leave with it
      const sse = startSse(reply, {}, { flushHeaders: false });
      const includeUsage = body.stream_options?.include_usage === true;
      let firstAt = 0;
      let lastAt = 0;
      let outputs = 0;
      // After the first token, writes made in one event-loop turn leave in one syscall.
      let corked = false;
      const uncork = (): void => {
        corked = false;
        reply.raw.uncork();
      };
      const cork = (): void => {
        if (firstAt && !corked) {
          corked = true;
          reply.raw.cork();
          setImmediate(uncork);
        }
      };
      const write = async (ev: ProviderEvent): Promise<void> => {
        if (ev.type === 'disconnect') throw new Disconnect();
        if (ev.type === 'sse') {
          // already framed by the upstream: forwarded as it is
          if (ev.usage) agg.usage = ev.usage;
          if (ev.finish) agg.finish = ev.finish;
          outputs += ev.events;
          lastAt = performance.now();
          cork();
          return sse.raw(ev.text);
        }
        let c = ev.chunk;
        let raw = ev.raw;
        agg.add(c);
        if (!c.choices?.length && c.usage && !includeUsage) return;
        if (!includeUsage && c.usage) {
          c = { ...c, usage: undefined };
          raw = undefined;
        }
        cork();
        await sse.send(raw ?? c);
        const choice = c.choices?.[0];
        if (choice && (choice.delta?.content || choice.delta?.tool_calls?.length)) {
          const now = performance.now();
          outputs++;
          lastAt = now;
          if (!firstAt) {
            firstAt = now;
            const ttft = (now - started) / 1000;
            ServiceMetrics.observe(metrics.timeToFirstToken, { model, provider: providerLabel }, ttft, activeTraceIds());
            const upstream = ps!.upstreamTtftMs();
            if (upstream !== undefined) {
              metrics.upstreamTimeToFirstChunk.observe({ model, provider: providerLabel }, upstream / 1000);
              metrics.overhead.observe({ model, provider: providerLabel }, Math.max(0, ttft - upstream / 1000));
            }
          }
        }
      };
      /** gen_ai.server.time_per_output_token: one observation per successful stream, after the first token. */
      const observeTimePerOutputToken = (): void => {
        const tokens = agg.usage?.completion_tokens ?? outputs;
        if (firstAt && tokens > 1) metrics.timePerOutputToken.observe({ model, provider: providerLabel }, (lastAt - firstAt) / 1000 / (tokens - 1));
      };
      try {
        // the headers, the opener and the first output leave in one syscall
        reply.raw.cork();
        try {
          for (const ev of pending) await write(ev);
        } finally {
          reply.raw.uncork();
        }
        for (;;) {
          if (sse.closed) throw new Error('client disconnected');
          const next = await events.next();
          if (next.done) break;
          await write(next.value);
        }
        if (sse.closed || abort.signal.aborted) throw new Error('client disconnected');
        // [DONE], what is still corked and the chunked terminator leave in one write
        sse.end('data: [DONE]\n\n');
        corked = false;
        observeTimePerOutputToken();
        finish('ok');
      } catch (err) {
        if (err instanceof Disconnect) {
          finish('injected_disconnect');
          // what was written goes out first, then the connection drops without the chunked terminator
          await new Promise<void>((resolve) => reply.raw.write('', () => resolve()));
          reply.raw.destroy();
          return;
        }
        const outcome = sse.closed || abort.signal.aborted ? 'client_disconnected' : outcomeOf(err);
        finish(outcome, err as Error);
        if (outcome !== 'client_disconnected') {
          const e = err instanceof OpenAIError ? err : new OpenAIError('LLMP_ERR_INTERNAL', 'The server had an error while processing your request.');
          if (!(err instanceof OpenAIError)) request.log.error({ err }, 'stream failed');
          await sse.send(e.toJSON());
        }
      } finally {
        sse.end();
      }
    } finally {
      await events.return(undefined).catch(() => undefined);
      metrics.inflight.dec({ model });
      release();
    }
  });
}

class Disconnect extends Error {}
