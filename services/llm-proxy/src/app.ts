/**
 * llm-proxy: an OpenAI-compatible chat-completions endpoint in front of LLM providers; here the
 * deterministic mock. Callers authenticate with the internal key, as `X-Internal-Auth` or as an
 * OpenAI-style `Authorization: Bearer` key, so the official SDK works unchanged.
 */
import type { Logger } from 'pino';
import { checkInternalKey, createService, INTERNAL_AUTH_HEADER, type Service } from '@codelab/service-kit';
import type { LlmProxyConfig } from './config.ts';
import { OpenAIError } from './errors.ts';
import { createLlmProxyMetrics } from './metrics.ts';
import { registerChatCompletions } from './routes/chat-completions.ts';
import { registerModels } from './routes/models.ts';

export async function buildApp(config: LlmProxyConfig, deps: { logger?: Logger } = {}): Promise<Service> {
  const service = createService({ name: 'llm-proxy', ...config, logger: deps.logger, bodyLimit: 8 * 1024 * 1024 });
  const { app } = service;
  const metrics = createLlmProxyMetrics(service.metrics, config.models);

  await app.register(async (api) => {
    api.addHook('onRequest', async (request) => {
      if (request.routeOptions.config?.public) return;
      const bearer = /^Bearer\s+(.+)$/i.exec(request.headers.authorization ?? '')?.[1];
      if (!checkInternalKey(request.headers[INTERNAL_AUTH_HEADER] ?? bearer, config.internalApiKey)) {
        throw new OpenAIError('LLMP_ERR_UNAUTHORIZED', `Missing or invalid API key (send ${INTERNAL_AUTH_HEADER} or Authorization: Bearer).`);
      }
    });
    api.setErrorHandler((err: Error & { validation?: unknown; statusCode?: number; validationContext?: string }, request, reply) => {
      if (err instanceof OpenAIError) return reply.status(err.statusCode).send(err.toJSON());
      if (err.validation || (err.statusCode && err.statusCode < 500)) {
        return reply.status(err.statusCode && err.statusCode !== 500 ? err.statusCode : 400).send(new OpenAIError('LLMP_ERR_INVALID_REQUEST', err.message).toJSON());
      }
      request.log.error({ err }, 'unhandled error');
      return reply.status(500).send(new OpenAIError('LLMP_ERR_INTERNAL', 'The server had an error while processing your request.').toJSON());
    });
    registerChatCompletions(api, { config, metrics });
    registerModels(api, config);
  });
  return service;
}
