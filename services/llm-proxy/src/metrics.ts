/**
 * llm-proxy metrics, after the OpenTelemetry GenAI conventions (server side: the proxy serves the
 * runtime). The model label only takes configured model names, anything else is `other`.
 */
import { GENAI_DURATION_BUCKETS, GENAI_TOKEN_BUCKETS, GENAI_TPOT_BUCKETS, GENAI_TTFT_BUCKETS, type ServiceMetrics } from '@codelab/service-kit';

export function createLlmProxyMetrics(m: ServiceMetrics, models: readonly string[]) {
  const allowed = new Set(models);
  return {
    modelLabel: (model: string): string => (allowed.has(model) ? model : 'other'),
    requests: m.counter({
      name: 'llm_proxy_requests_total',
      help: 'Chat completion requests by model, streaming or not, and outcome',
      labelNames: ['model', 'stream', 'outcome'],
    }),
    inflight: m.gauge({ name: 'llm_proxy_inflight_requests', help: 'Chat completion requests being answered now', labelNames: ['model'] }),
    duration: m.histogram({
      name: 'gen_ai_server_request_duration_seconds',
      help: 'Time to answer a chat completion, until the last chunk (gen_ai.server.request.duration)',
      labelNames: ['model', 'stream', 'outcome'],
      buckets: GENAI_DURATION_BUCKETS,
    }),
    timeToFirstToken: m.histogram({
      name: 'gen_ai_server_time_to_first_token_seconds',
      help: 'Time from request to the first output token of a streamed answer (gen_ai.server.time_to_first_token)',
      labelNames: ['model'],
      buckets: GENAI_TTFT_BUCKETS,
      enableExemplars: true,
    }),
    timePerOutputToken: m.histogram({
      name: 'gen_ai_server_time_per_output_token_seconds',
      help: 'Time between output tokens after the first (gen_ai.server.time_per_output_token)',
      labelNames: ['model'],
      buckets: GENAI_TPOT_BUCKETS,
    }),
    tokenUsage: m.histogram({
      name: 'gen_ai_client_token_usage',
      help: 'Tokens used per request by type, input or output (gen_ai.client.token.usage)',
      labelNames: ['model', 'token_type'],
      buckets: GENAI_TOKEN_BUCKETS,
    }),
  };
}

export type LlmProxyMetrics = ReturnType<typeof createLlmProxyMetrics>;
