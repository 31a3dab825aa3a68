/**
 * llm-proxy metrics, after the OpenTelemetry GenAI conventions: server side towards the runtime
 * (`gen_ai_server_*`), client side towards the upstream (`gen_ai_client_operation_time_to_first_chunk_seconds`).
 * Labels are bounded: `model` takes configured public names or `other`, `provider` is `mock` or
 * `openai`, `upstream` takes upstream model names of the model map or `other`.
 */
import {
  fineBuckets,
  GENAI_TOKEN_BUCKETS,
  OPERATION_DURATION_BUCKETS,
  TPOT_BUCKETS,
  TTFT_BUCKETS,
  type ServiceMetrics,
} from '@codelab/service-kit';

/** The proxy's own added latency (seconds, 0.1 to 2 ms without queueing): fine from 0.1 ms to 10 ms, up to 1 s. */
export const OVERHEAD_BUCKETS = [...fineBuckets(0.0001, 0.01), 0.025, 0.05, 0.1, 0.25, 0.5, 1];

export function createLlmProxyMetrics(m: ServiceMetrics, models: readonly string[], upstreams: readonly string[] = []) {
  const allowed = new Set(models);
  const allowedUpstreams = new Set(upstreams);
  return {
    modelLabel: (model: string): string => (allowed.has(model) ? model : 'other'),
    upstreamLabel: (upstream: string): string => (allowedUpstreams.has(upstream) ? upstream : 'other'),
    requests: m.counter({
      name: 'llm_proxy_requests_total',
      help: 'Chat completion requests by model, provider, streaming or not, and outcome (ok, client_disconnected, or the OpenAI error code)',
      labelNames: ['model', 'provider', 'stream', 'outcome'],
    }),
    inflight: m.gauge({
      name: 'llm_proxy_inflight_requests',
      help: 'Chat completion requests being answered now (past the queue)',
      labelNames: ['model'],
    }),
    queued: m.gauge({ name: 'llm_proxy_queued_requests', help: 'Chat completion requests waiting in the concurrency queue' }),
    retries: m.counter({
      name: 'llm_proxy_upstream_retries_total',
      help: 'Retried upstream attempts by upstream model and reason',
      labelNames: ['upstream', 'reason'],
    }),
    fallbacks: m.counter({
      name: 'llm_proxy_upstream_fallbacks_total',
      help: 'Times an upstream model gave up and the next one of the model map was tried',
      labelNames: ['upstream'],
    }),
    breakerState: m.gauge({
      name: 'llm_proxy_circuit_breaker_state',
      help: 'Circuit breaker state per upstream model: 0 closed, 1 half-open, 2 open',
      labelNames: ['upstream'],
    }),
    duration: m.histogram({
      name: 'gen_ai_server_request_duration_seconds',
      help: 'Time to answer a chat completion, until the last chunk (gen_ai.server.request.duration)',
      labelNames: ['model', 'provider', 'stream', 'outcome'],
      buckets: OPERATION_DURATION_BUCKETS,
    }),
    timeToFirstToken: m.histogram({
      name: 'gen_ai_server_time_to_first_token_seconds',
      help: 'Time from request to the first output token sent to the client (gen_ai.server.time_to_first_token)',
      labelNames: ['model', 'provider'],
      buckets: TTFT_BUCKETS,
      enableExemplars: true,
    }),
    upstreamTimeToFirstChunk: m.histogram({
      name: 'gen_ai_client_operation_time_to_first_chunk_seconds',
      help: 'Time from the upstream request (the answering attempt) to its first output chunk (gen_ai.client.operation.time_to_first_chunk)',
      labelNames: ['model', 'provider'],
      buckets: TTFT_BUCKETS,
    }),
    overhead: m.histogram({
      name: 'llm_proxy_overhead_seconds',
      help: "The proxy's own added time to first token: client-side TTFT minus the answering upstream attempt's TTFT (includes queueing, retries and backoff)",
      labelNames: ['model', 'provider'],
      buckets: OVERHEAD_BUCKETS,
    }),
    timePerOutputToken: m.histogram({
      name: 'gen_ai_server_time_per_output_token_seconds',
      help: 'Time per output token after the first, one observation per successful stream: (last output - first output) / (output tokens - 1) (gen_ai.server.time_per_output_token)',
      labelNames: ['model', 'provider'],
      buckets: TPOT_BUCKETS,
    }),
    streamWrites: m.histogram({
      name: 'llm_proxy_stream_writes',
      help: 'Socket writes per streamed answer (the first output, each batch written after it, the end): fewer than its chunks when the client asked for a write interval (x-codelab-write-interval-ms)',
      labelNames: ['model', 'provider'],
      buckets: [1, 2, 3, 5, 10, 20, 50, 100, 200, 500, 1000],
    }),
    tokenUsage: m.histogram({
      name: 'gen_ai_client_token_usage',
      help: 'Tokens used per request by type, input or output (gen_ai.client.token.usage)',
      labelNames: ['model', 'provider', 'token_type'],
      buckets: GENAI_TOKEN_BUCKETS,
    }),
  };
}

export type LlmProxyMetrics = ReturnType<typeof createLlmProxyMetrics>;
