/** PromQL of the LLM dashboard, against the metrics of `services/llm-proxy/src/metrics.ts`. */
import { quantile, sumRate } from '../lib.ts';

const MODEL = 'model=~"$model"';
/** The llm-proxy's `gen_ai_client_operation_*` series carry `provider` (the runtime's do not). */
const PROXY_SIDE = `${MODEL}, provider!=""`;

/** The q-quantile of time to first token sent to the client, by model. */
export function timeToFirstToken(q: number): string {
  return quantile(q, 'gen_ai_server_time_to_first_token_seconds', ['model'], MODEL);
}

/** The q-quantile of time per output token after the first, by model. */
export function timePerOutputToken(q: number): string {
  return quantile(q, 'gen_ai_server_time_per_output_token_seconds', ['model'], MODEL);
}

/** Output tokens per second served, by model. */
export function outputTokensPerSecond(): string {
  return sumRate('gen_ai_client_token_usage_sum', ['model'], `${MODEL}, token_type="output"`);
}

/** Decode speed of one stream (tokens per second), from the median time per output token. */
export function streamTokensPerSecond(): string {
  return `1 / ${timePerOutputToken(0.5)}`;
}

/** Tokens per second by model and token type (input, output). */
export function tokenUsageRate(): string {
  return sumRate('gen_ai_client_token_usage_sum', ['model', 'token_type'], MODEL);
}

/** The q-quantile of tokens per request by token type. */
export function tokensPerRequest(q: number): string {
  return quantile(q, 'gen_ai_client_token_usage', ['token_type'], MODEL);
}

/** Chat completion requests per second by model and outcome. */
export function requestsByOutcome(): string {
  return sumRate('llm_proxy_requests_total', ['model', 'outcome'], MODEL);
}

/** Share of requests that failed (neither `ok` nor a client disconnect), by model. */
export function errorRatio(): string {
  const all = sumRate('llm_proxy_requests_total', ['model'], MODEL);
  const errors = sumRate('llm_proxy_requests_total', ['model'], `${MODEL}, outcome!~"ok|client_disconnected"`);
  return `(${errors} or ${all} * 0) / ${all}`;
}

/** The q-quantile of the time to answer a request until its last chunk, by model. */
export function requestDuration(q: number): string {
  return quantile(q, 'gen_ai_server_request_duration_seconds', ['model'], MODEL);
}

/** Circuit breaker state per upstream model: 0 closed, 1 half-open, 2 open. */
export function breakerState(): string {
  return 'max by (upstream) (llm_proxy_circuit_breaker_state)';
}

/** Requests being answered now, by model. */
export function inflight(): string {
  return `sum by (model) (llm_proxy_inflight_requests{${MODEL}})`;
}

/** Requests waiting in the concurrency queue. */
export function queued(): string {
  return 'sum(llm_proxy_queued_requests)';
}

/** The q-quantile of the proxy's own added time to first token. */
export function proxyOverhead(q: number): string {
  return quantile(q, 'llm_proxy_overhead_seconds', [], MODEL);
}

/** The q-quantile of the upstream's time to first chunk (the answering attempt), by model. */
export function upstreamTimeToFirstChunk(q: number): string {
  return quantile(q, 'gen_ai_client_operation_time_to_first_chunk_seconds', ['model'], PROXY_SIDE);
}

/** Retried upstream attempts per second by upstream model and reason. */
export function upstreamRetries(): string {
  return sumRate('llm_proxy_upstream_retries_total', ['upstream', 'reason']);
}

/** Fallbacks to the next upstream model per second, by the upstream that gave up. */
export function upstreamFallbacks(): string {
  return sumRate('llm_proxy_upstream_fallbacks_total', ['upstream']);
}
