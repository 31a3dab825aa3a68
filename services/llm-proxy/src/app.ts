/**
 * llm-proxy: an OpenAI-compatible chat-completions endpoint in front of LLM providers (the
 * deterministic mock, or any OpenAI-compatible upstream). Callers authenticate with the internal
 * key, as `X-Internal-Auth` or as an OpenAI-style `Authorization: Bearer` key, so the official SDK
 * works unchanged.
 */
import type { Logger } from 'pino';
import { checkInternalKey, createService, INTERNAL_AUTH_HEADER, type Service } from '@codelab/service-kit';
import type { LlmProxyConfig } from './config.ts';
import { OpenAIError } from './errors.ts';
import { createLlmProxyMetrics } from './metrics.ts';
import { loadModelMap } from './model-map.ts';
import { MockProvider } from './providers/mock.ts';
import { OpenAIUpstreamProvider } from './providers/openai-upstream.ts';
import type { Provider } from './providers/provider.ts';
import { ConcurrencyLimiter } from './resilience/concurrency-limiter.ts';
import { registerChatCompletions } from './routes/chat-completions.ts';
import { registerModels } from './routes/models.ts';

export async function buildApp(config: LlmProxyConfig, deps: { logger?: Logger } = {}): Promise<Service> {
  const modelMap = loadModelMap(config.modelMapFile, config.models);
  const service = createService({ name: 'llm-proxy', ...config, logger: deps.logger, bodyLimit: 8 * 1024 * 1024 });
  const { app } = service;
  const upstreams = [...new Set([...modelMap.values()].flatMap((r) => r.targets))];
  const metrics = createLlmProxyMetrics(service.metrics, [...modelMap.keys()], upstreams);
  const provider: Provider =
    config.llmMode === 'mock'
      ? new MockProvider(config)
      : new OpenAIUpstreamProvider(config, metrics, service.metrics, app.log as unknown as Logger, upstreams);
  const limiter = new ConcurrencyLimiter({
    maxConcurrent: config.maxConcurrentRequests,
    maxQueued: config.maxQueuedRequests,
    queueTimeoutMs: config.queueTimeout * 1000,
    onChange: (_running, queued) => metrics.queued.set(queued),
  });
  metrics.queued.set(0);
  // Zero-valued series from the start, so dashboards and alerts see every upstream (the mock: always closed).
  for (const u of upstreams) {
    const upstream = metrics.upstreamLabel(u);
    metrics.breakerState.set({ upstream }, 0);
    metrics.fallbacks.inc({ upstream }, 0);
    for (const reason of ['connect_error', 'status_429', 'status_5xx']) metrics.retries.inc({ upstream, reason }, 0);
  }
  app.addHook('onClose', () => provider.close());

  await app.register(async (api) => {
    api.addHook('onRequest', async (request) => {
      if (request.routeOptions.config?.public) return;
      const bearer = /^Bearer\s+(.+)$/i.exec(request.headers.authorization ?? '')?.[1];
      if (!checkInternalKey(request.headers[INTERNAL_AUTH_HEADER] ?? bearer, config.internalApiKey)) {
        throw new OpenAIError(
          'LLMP_ERR_UNAUTHORIZED',
          `Missing or invalid API key (send ${INTERNAL_AUTH_HEADER} or Authorization: Bearer).`,
        );
      }
    });
    api.setErrorHandler((err: Error & { validation?: unknown; statusCode?: number; validationContext?: string }, request, reply) => {
      if (err instanceof OpenAIError) {
        if (err.retryAfter !== undefined) void reply.header('retry-after', String(Math.ceil(err.retryAfter)));
        return reply.status(err.statusCode).send(err.toJSON());
      }
      if (err.validation || (err.statusCode && err.statusCode < 500)) {
        return reply
          .status(err.statusCode && err.statusCode !== 500 ? err.statusCode : 400)
          .send(new OpenAIError('LLMP_ERR_INVALID_REQUEST', err.message).toJSON());
      }
      request.log.error({ err }, 'unhandled error');
      return reply
        .status(500)
        .send(new OpenAIError('LLMP_ERR_INTERNAL', 'The server had an error while processing your request.').toJSON());
    });
    registerChatCompletions(api, { config, metrics, provider, modelMap, limiter });
    registerModels(api, { config, names: [...modelMap.keys()] });
  });
  return service;
}
