/**
 * Agent runtime: sessions and their history in PostgreSQL, and the conversation turn that streams
 * the LLM's answer back as SSE. Every route needs the internal key (the gateway calls it).
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import { createService, migrate, openDatabase, openRedis, pingRedis, type Service } from '@codelab/service-kit';
import type { RuntimeConfig } from './config.ts';
import { LlmClient } from './llm-client.ts';
import { createRuntimeMetrics } from './metrics.ts';
import { registerAgentStream } from './routes/agent-stream.ts';
import { registerSessionRoutes } from './routes/sessions.ts';
import { SessionStore } from './store/sessions.ts';

const MIGRATIONS = fileURLToPath(new URL('./migrations', import.meta.url));

export async function buildApp(config: RuntimeConfig, deps: { logger?: Logger } = {}): Promise<Service> {
  const service = createService({ name: 'runtime', ...config, logger: deps.logger, requireInternalKey: config.internalApiKey });
  const { app, logger } = service;
  const db = await openDatabase({
    service: 'runtime',
    url: config.dbUrl,
    embeddedDataDir: path.join(config.dataDir, 'runtime', 'pg'),
    poolMax: config.dbPoolSize,
    logger,
    metrics: service.metrics,
  });
  app.addHook('onClose', () => db.close());
  await migrate(db, 'runtime', MIGRATIONS, logger);
  service.addReadinessCheck('database', () => db.ping());

  if (config.redisUrl) {
    const redis = openRedis(config.redisUrl, logger);
    app.addHook('onClose', async () => void redis.disconnect());
    service.addReadinessCheck('redis', () => pingRedis(redis));
  }

  const metrics = createRuntimeMetrics(service.metrics);
  const llm = new LlmClient({
    baseUrl: config.llmProxyUrl,
    internalApiKey: config.internalApiKey,
    model: config.llmModel,
    firstByteTimeoutMs: config.llmFirstByteTimeout * 1000,
    idleTimeoutMs: config.llmIdleTimeout * 1000,
    serviceMetrics: service.metrics,
    metrics,
  });
  app.addHook('onClose', () => llm.close());
  service.addReadinessCheck('llm-proxy', () => llm.checkHealth());

  const store = new SessionStore(db);
  registerSessionRoutes(app, store);
  registerAgentStream(app, { store, llm, metrics, heartbeatMs: config.sseHeartbeatInterval * 1000, isDraining: () => service.draining });
  return service;
}
