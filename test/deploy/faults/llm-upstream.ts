/**
 * The fault stack's LLM: the llm-proxy in upstream mode (as in production) in front of a second
 * llm-proxy on the mock, `llm-upstream`, the faulty provider. The mock's directives in a user
 * message pass through to it unchanged, so a witness can ask for a 5xx, a cut or a stall; stopping
 * `llm-upstream` takes the provider away altogether, which opens the proxy's circuit breaker.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';

/** Seconds: the breaker's probe interval, and the gap between two chunks after which a stream counts as stalled. */
const BREAKER_RESET_SECONDS = 5;
export const IDLE_TIMEOUT_SECONDS = 3;

/** Writes the Compose overlay into `dir`; its path. Compose fills in `${…}` from the stack's environment. */
export function writeLlmUpstreamOverlay(dir: string): string {
  const file = path.join(dir, 'llm-upstream.override.yml');
  writeFileSync(
    file,
    `services:
  llm-proxy:
    environment:
      LLM_PROXY__LLM_MODE: openai
      LLM_PROXY__LITELLM_PROXY_URL: http://llm-upstream:8002
      LLM_PROXY__LITELLM_API_KEY: \${CODELAB_INTERNAL_API_KEY}
      LLM_PROXY__BREAKER_RESET_TIMEOUT: '${BREAKER_RESET_SECONDS}'
      LLM_PROXY__IDLE_TIMEOUT: '${IDLE_TIMEOUT_SECONDS}'
    depends_on:
      llm-upstream: { condition: service_healthy }
  llm-upstream:
    image: \${CODELAB_IMAGE_PREFIX:-codelab}/llm-proxy:\${CODELAB_VERSION:-latest}
    restart: unless-stopped
    read_only: true
    tmpfs: [/tmp]
    environment:
      LLM_PROXY__INTERNAL_API_KEY: \${CODELAB_INTERNAL_API_KEY}
      LLM_PROXY__ENVIRONMENT: production
      # a slow-enough mock for turns to be caught mid-way
      LLM_PROXY__MOCK_TOKEN_DELAY_MS: '2'
    deploy:
      resources:
        limits: { cpus: '1', memory: 512M }
`,
  );
  return file;
}
