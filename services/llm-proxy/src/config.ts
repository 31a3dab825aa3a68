import { commonSettings, defineSettings, readConfig, setting } from '@codelab/service-kit/config';

export const llmProxySettings = defineSettings({
  ...commonSettings({ port: 8002 }),
  /** Where answers come from. `mock` is deterministic; the upstream modes arrive with the LLM proxy issue. */
  llmMode: setting.oneOf(['mock'] as const, { fallback: 'mock' }),
  /** Model names this proxy serves (the metric label allow-list; anything else is `other`). */
  models: setting.list({ fallback: ['fake-llm', 'mock-llm'] }),
  /** Mock latency profile: time to first token and delay between tokens. */
  mockTtftMs: setting.int({ min: 0, max: 600_000, fallback: 30 }),
  mockTokenDelayMs: setting.int({ min: 0, max: 60_000, fallback: 15 }),
});

export function readLlmProxyConfig(env: NodeJS.ProcessEnv = process.env) {
  return readConfig('LLM_PROXY', llmProxySettings, env);
}

export type LlmProxyConfig = ReturnType<typeof readLlmProxyConfig>;
