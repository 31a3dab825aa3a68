/** /ready checks the runtime's real dependencies: PostgreSQL, the llm-proxy, and Redis when configured. */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { listen, type Service } from '@codelab/service-kit';
import { missingServer, silentLogger, TEST_INTERNAL_KEY } from '@codelab/service-kit/testing';
import { buildApp as buildLlmProxy } from '@codelab/llm-proxy/app';
import { readLlmProxyConfig } from '@codelab/llm-proxy/config';
import { buildApp } from '../src/app.ts';
import { readRuntimeConfig } from '../src/config.ts';

const redisUrl = inject('redisUrl');

describe.skipIf(missingServer('Redis', 'TEST_REDIS_URL', redisUrl))('runtime readiness with Redis', () => {
  let llm: Service;
  let llmUrl: string;
  const runtimes: Service[] = [];
  beforeAll(async () => {
    llm = await buildLlmProxy(readLlmProxyConfig({ LLM_PROXY__INTERNAL_API_KEY: TEST_INTERNAL_KEY }), { logger: silentLogger() });
    llmUrl = await listen(llm, { host: '127.0.0.1', port: 0 });
  });
  afterAll(async () => {
    for (const r of runtimes) await r.app.close();
    await llm.app.close();
  });
  const runtime = async (redis: string) => {
    const r = await buildApp(
      readRuntimeConfig({
        AGENT_RUNTIME__INTERNAL_API_KEY: TEST_INTERNAL_KEY,
        AGENT_RUNTIME__DB_URL: inject('databaseUrl'),
        AGENT_RUNTIME__DB_POOL_SIZE: '1',
        AGENT_RUNTIME__LLM_PROXY_URL: llmUrl,
        AGENT_RUNTIME__REDIS_URL: redis,
      }),
      { logger: silentLogger() },
    );
    runtimes.push(r);
    return r;
  };

  it('is ready when PostgreSQL, the llm-proxy and Redis answer', async () => {
    const r = await runtime(redisUrl!);
    // the first PING may race the connection; readiness settles within a second
    let res = await r.app.inject({ method: 'GET', url: '/ready' });
    for (let i = 0; i < 20 && res.statusCode !== 200; i++) {
      await new Promise((ok) => setTimeout(ok, 100));
      res = await r.app.inject({ method: 'GET', url: '/ready' });
    }
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ status: 'ready', checks: { postgres: 'ok', 'llm-proxy': 'ok', redis: 'ok' } });
  });

  it('answers 503 naming redis when Redis is unreachable, and keeps serving', async () => {
    const r = await runtime('redis://127.0.0.1:9/0');
    const res = await r.app.inject({ method: 'GET', url: '/ready' });
    expect(res.statusCode).toBe(503);
    expect(res.json()).toMatchObject({ status: 'not_ready', failed: ['redis'], checks: { postgres: 'ok', 'llm-proxy': 'ok' } });
    expect((await r.app.inject({ method: 'GET', url: '/health' })).statusCode).toBe(200);
  });
});
