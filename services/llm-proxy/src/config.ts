import { commonSettings, defineSettings, readConfig, setting } from '@codelab/service-kit/boot';

export const llmProxySettings = defineSettings({
  ...commonSettings({ port: 8002 }),
  /** Where answers come from: `mock` (deterministic), or `openai` (any OpenAI-compatible upstream; `litellm` is an alias). */
  llmMode: setting.oneOf(['mock', 'openai', 'litellm'] as const, { fallback: 'mock' }),
  /** Model names this proxy serves when there is no model map (the metric label allow-list; anything else is `other`). */
  models: setting.list({ fallback: ['fake-llm', 'mock-llm'] }),
  /** JSON file mapping public model names to upstream models with ordered fallbacks (see services/llm-proxy/README.md). */
  modelMapFile: setting.string(),
  /** OpenAI-compatible upstream (LiteLLM, vLLM, Ollama, OpenAI): base URL, with or without `/v1`. */
  litellmProxyUrl: setting.url({ fallback: 'http://127.0.0.1:4000' }),
  litellmApiKey: setting.string({ secret: true }),
  /** Keep-alive connections per upstream. */
  upstreamConnections: setting.int({ min: 1, max: 4096, fallback: 256 }),
  /** Timeouts (seconds): connect, first token, idle gap between chunks, whole request. */
  connectTimeout: setting.number({ min: 0.001, max: 600, fallback: 5 }),
  firstTokenTimeout: setting.number({ min: 0.001, max: 3600, fallback: 60 }),
  idleTimeout: setting.number({ min: 0.001, max: 3600, fallback: 60 }),
  requestTimeout: setting.number({ min: 0.001, max: 86_400, fallback: 600 }),
  /** Retries of a failed upstream attempt (connect error, 429, 5xx before the first byte), jittered exponential backoff. */
  maxRetries: setting.int({ min: 0, max: 10, fallback: 2 }),
  retryBaseDelayMs: setting.int({ min: 0, max: 60_000, fallback: 100 }),
  retryMaxDelayMs: setting.int({ min: 0, max: 600_000, fallback: 2_000 }),
  /** Circuit breaker per upstream model: consecutive failures that open it, seconds before one probe is let through. */
  breakerFailureThreshold: setting.int({ min: 1, max: 1000, fallback: 5 }),
  breakerResetTimeout: setting.number({ min: 0.001, max: 3600, fallback: 30 }),
  /** Concurrency limit and bounded queue (both modes): over the queue 429, waiting longer than the queue timeout 503. */
  maxConcurrentRequests: setting.int({ min: 1, max: 100_000, fallback: 256 }),
  maxQueuedRequests: setting.int({ min: 0, max: 100_000, fallback: 256 }),
  queueTimeout: setting.number({ min: 0.001, max: 3600, fallback: 30 }),
  /** Put message contents on spans (`gen_ai.input.messages`, `gen_ai.output.messages`). */
  captureMessageContent: setting.bool({ fallback: false }),
  /** Mock latency profile: time to first token and delay between tokens (ms), fixed or drawn from a seeded distribution. */
  mockTtftMs: setting.int({ min: 0, max: 600_000, fallback: 30 }),
  mockTokenDelayMs: setting.int({ min: 0, max: 60_000, fallback: 15 }),
  mockLatencyDistribution: setting.oneOf(['fixed', 'uniform', 'exponential'] as const, { fallback: 'fixed' }),
  /** Mock fault injection: share of requests failing with MOCK_ERROR_STATUS, stalling MOCK_STALL_MS, disconnecting mid-stream. */
  mockErrorRate: setting.number({ min: 0, max: 1, fallback: 0 }),
  mockErrorStatus: setting.int({ min: 400, max: 599, fallback: 503 }),
  mockStallRate: setting.number({ min: 0, max: 1, fallback: 0 }),
  mockStallMs: setting.int({ min: 0, max: 3_600_000, fallback: 30_000 }),
  mockDisconnectRate: setting.number({ min: 0, max: 1, fallback: 0 }),
  mockSeed: setting.int({ min: 0, max: 2 ** 31 - 1, fallback: 42 }),
});

export function readLlmProxyConfig(env: NodeJS.ProcessEnv = process.env) {
  return readConfig('LLM_PROXY', llmProxySettings, env);
}

export type LlmProxyConfig = ReturnType<typeof readLlmProxyConfig>;
