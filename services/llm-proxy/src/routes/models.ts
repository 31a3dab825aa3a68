/** GET /v1/models (OpenAI list shape) and upstream's GET /v1/llm/models (a bare list). */
import type { FastifyInstance } from 'fastify';
import type { LlmProxyConfig } from '../config.ts';

export function registerModels(app: FastifyInstance, config: LlmProxyConfig): void {
  const created = Math.floor(Date.now() / 1000);
  const models = config.models.map((id) => ({ id, object: 'model' as const, created, owned_by: `codelab-${config.llmMode}` }));
  app.get('/v1/models', async () => ({ object: 'list', data: models }));
  app.get('/v1/llm/models', { config: { public: true } }, async () => models);
}
