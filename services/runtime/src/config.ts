import { commonSettings, defineSettings, readConfig, setting } from '@codelab/service-kit/config';

export const runtimeSettings = defineSettings({
  ...commonSettings({ port: 8001 }),
  /** PostgreSQL URL; unset starts the embedded engine with its data under CODELAB_DATA_DIR/runtime. */
  dbUrl: setting.url({ protocols: ['postgres:', 'postgresql:'] }),
  dbPoolSize: setting.int({ min: 1, max: 200, fallback: 10 }),
  /** Optional; when set, /ready checks it (cross-instance coordination arrives with the agents issue). */
  redisUrl: setting.url({ protocols: ['redis:', 'rediss:'] }),
  llmProxyUrl: setting.url({ fallback: 'http://127.0.0.1:8002' }),
  llmModel: setting.string({ fallback: 'fake-llm' }),
  /** Longest wait for the LLM's response headers, and then for each next chunk (seconds). */
  llmFirstByteTimeout: setting.number({ min: 0.1, max: 3600, fallback: 60 }),
  llmIdleTimeout: setting.number({ min: 0.1, max: 3600, fallback: 120 }),
  /** SSE keep-alive comment interval while a turn is silent (seconds). */
  sseHeartbeatInterval: setting.number({ min: 0.05, max: 300, fallback: 15 }),
});

export function readRuntimeConfig(env: NodeJS.ProcessEnv = process.env) {
  return readConfig('AGENT_RUNTIME', runtimeSettings, env);
}

export type RuntimeConfig = ReturnType<typeof readRuntimeConfig>;
