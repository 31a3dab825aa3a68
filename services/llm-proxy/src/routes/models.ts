/** GET /v1/models (OpenAI list shape) and upstream's GET /v1/llm/models (a bare list). Both list the model map's public names. */
import type { FastifyInstance } from 'fastify';
import type { LlmProxyConfig } from '../config.ts';

export function registerModels(
  app: FastifyInstance,
  { config, names }: { config: Pick<LlmProxyConfig, 'llmMode'>; names: readonly string[] },
): void {
  const created = Math.floor(Date.now() / 1000);
  const provider = config.llmMode === 'mock' ? 'mock' : 'openai';
  const models = names.map((id) => ({ id, object: 'model' as const, created, owned_by: `codelab-${provider}` }));
  app.get('/v1/models', async () => ({ object: 'list', data: models }));
  app.get('/v1/llm/models', { config: { public: true } }, async () =>
    models.map((m) => ({ ...m, name: m.id, provider, context_length: 128_000, is_available: true })),
  );
}
