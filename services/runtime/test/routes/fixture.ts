/**
 * Shared set-up of the runtime route suites: a runtime app on the run's PostgreSQL, a direct
 * connection to the same database (to insert rows where the turn engine would), and per-test users
 * so that suites running at the same time never see each other's data (every read is scoped to
 * the caller's sessions).
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { listen, openDatabase, ServiceMetrics, type Database, type Service } from '@codelab/service-kit';
import { silentLogger, TEST_INTERNAL_KEY } from '@codelab/service-kit/testing';
import { buildApp as buildLlmProxy } from '@codelab/llm-proxy/app';
import { readLlmProxyConfig } from '@codelab/llm-proxy/config';
import { buildApp } from '../../src/app.ts';
import { readRuntimeConfig } from '../../src/config.ts';
import type { NewToolCall } from '../../src/store/tool-calls.ts';

export const KEY = { 'x-internal-auth': TEST_INTERNAL_KEY };

export function startRuntime(databaseUrl: string, env: Record<string, string> = {}, logger: Logger = silentLogger()): Promise<Service> {
  return buildApp(
    readRuntimeConfig({
      AGENT_RUNTIME__INTERNAL_API_KEY: TEST_INTERNAL_KEY,
      AGENT_RUNTIME__DB_URL: databaseUrl,
      AGENT_RUNTIME__DB_POOL_SIZE: '2',
      ...env,
    }),
    { logger },
  );
}

/** An llm-proxy in mock mode in this process, answering at once (no time to first token, none between tokens) unless `env` says otherwise. */
export async function startMockLlm(env: Record<string, string> = {}): Promise<{ service: Service; url: string }> {
  const service = await buildLlmProxy(
    readLlmProxyConfig({
      LLM_PROXY__INTERNAL_API_KEY: TEST_INTERNAL_KEY,
      LLM_PROXY__MOCK_TTFT_MS: '0',
      LLM_PROXY__MOCK_TOKEN_DELAY_MS: '0',
      ...env,
    }),
    { logger: silentLogger() },
  );
  return { service, url: await listen(service, { host: '127.0.0.1', port: 0 }) };
}

export function openTestDb(databaseUrl: string): Promise<Database> {
  return openDatabase({ service: 'test', url: databaseUrl, poolMax: 2, logger: silentLogger(), metrics: new ServiceMetrics('test') });
}

/** A fresh user: the headers its calls carry. */
export function newUser(): { sub: string; headers: Record<string, string> } {
  const sub = `user-${randomUUID()}`;
  return { sub, headers: { ...KEY, 'x-codelab-user': sub } };
}

/** Creates a session for the user through the API; returns its id. */
export async function createSession(service: Service, headers: Record<string, string>, prefix = 's'): Promise<string> {
  const id = `${prefix}-${randomUUID()}`;
  const res = await service.app.inject({ method: 'POST', url: '/sessions', headers, payload: { session_id: id } });
  if (res.statusCode !== 201) throw new Error(`session creation answered ${res.statusCode}: ${res.body}`);
  return id;
}

export const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

/** A write_file call of the coder that needs approval, queued (as a turn inserts it: ToolCallStore.insertBatch). */
export function queuedWrite(callId: string, args: Record<string, unknown>, position = 0): NewToolCall {
  return {
    callId,
    position,
    agent: 'coder',
    toolName: 'write_file',
    arguments: args,
    requiresApproval: true,
    approvalReason: null,
    status: 'queued',
  };
}
