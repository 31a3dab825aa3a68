/** LLM proxy: time to first token, time per output token, tokens, requests by outcome, breaker, queue, proxy overhead. */
import { RowBuilder, type Dashboard } from '@grafana/grafana-foundation-sdk/dashboard';
import { codelabDashboard, finish, labelVariable, latency, stat, timeseries, UNITS } from './lib.ts';
import * as q from './queries/llm.ts';

export const uid = 'codelab-llm';

const BREAKER = {
  '0': { text: 'closed', color: 'green' },
  '1': { text: 'half-open', color: 'orange' },
  '2': { text: 'open', color: 'red' },
};

export function llmDashboard(): Dashboard {
  return finish(
    codelabDashboard(
      uid,
      'CodeLab / LLM',
      'The llm-proxy: latency of streamed answers, token throughput and usage, requests by outcome, the upstream circuit breakers, queueing, and the proxy’s own overhead.',
      ['llm-proxy'],
    )
      .withVariable(labelVariable('model', 'llm_proxy_requests_total', 'model', 'Public model name (configured names, or `other`)'))
      .withRow(new RowBuilder('Latency'))
      .withPanel(
        latency({
          title: 'Time to first token',
          description:
            'Time from a chat completion request to the first output token sent to the client, by model (p50, p95, p99). Exemplars open the trace.',
          queries: [
            { expr: q.timeToFirstToken(0.5), legend: '{{model}} p50' },
            { expr: q.timeToFirstToken(0.95), legend: '{{model}} p95' },
            { expr: q.timeToFirstToken(0.99), legend: '{{model}} p99' },
          ],
          w: 8,
        }),
      )
      .withPanel(
        latency({
          title: 'Time per output token',
          description: 'Time between output chunks after the first, by model (p50, p95).',
          queries: [
            { expr: q.timePerOutputToken(0.5), legend: '{{model}} p50' },
            { expr: q.timePerOutputToken(0.95), legend: '{{model}} p95' },
          ],
          w: 8,
        }),
      )
      .withPanel(
        latency({
          title: 'Request duration',
          description: 'Time to answer a chat completion until its last chunk, by model (p50, p95).',
          queries: [
            { expr: q.requestDuration(0.5), legend: '{{model}} p50' },
            { expr: q.requestDuration(0.95), legend: '{{model}} p95' },
          ],
          w: 8,
        }),
      )
      .withPanel(
        latency({
          title: 'Proxy overhead',
          description:
            'The proxy’s own added time to first token: client-side TTFT minus the answering upstream attempt’s TTFT, including queueing, retries and back-off (p50, p95, p99).',
          queries: [
            { expr: q.proxyOverhead(0.5), legend: 'p50' },
            { expr: q.proxyOverhead(0.95), legend: 'p95' },
            { expr: q.proxyOverhead(0.99), legend: 'p99' },
          ],
        }),
      )
      .withPanel(
        latency({
          title: 'Upstream time to first chunk',
          description: 'Time from the upstream request (the answering attempt) to its first output chunk, by model (p50, p95).',
          queries: [
            { expr: q.upstreamTimeToFirstChunk(0.5), legend: '{{model}} p50' },
            { expr: q.upstreamTimeToFirstChunk(0.95), legend: '{{model}} p95' },
          ],
        }),
      )
      .withRow(new RowBuilder('Tokens'))
      .withPanel(
        timeseries({
          title: 'Output tokens per second',
          description: 'Output tokens served per second, by model (all streams together).',
          unit: UNITS.tokensPerSecond,
          queries: [{ expr: q.outputTokensPerSecond(), legend: '{{model}}' }],
          w: 8,
        }),
      )
      .withPanel(
        timeseries({
          title: 'Stream decode speed',
          description: 'Tokens per second of one stream, from the median time per output token, by model.',
          unit: UNITS.tokensPerSecond,
          queries: [{ expr: q.streamTokensPerSecond(), legend: '{{model}}' }],
          w: 8,
        }),
      )
      .withPanel(
        timeseries({
          title: 'Token usage',
          description: 'Tokens per second by model and token type (input, output).',
          unit: UNITS.tokensPerSecond,
          queries: [{ expr: q.tokenUsageRate(), legend: '{{model}} {{token_type}}' }],
          w: 8,
        }),
      )
      .withPanel(
        timeseries({
          title: 'Tokens per request p95',
          description: '95th percentile of tokens per request by token type (from the histogram buckets: powers of 4).',
          unit: UNITS.count,
          queries: [{ expr: q.tokensPerRequest(0.95), legend: '{{token_type}}' }],
        }),
      )
      .withRow(new RowBuilder('Requests and upstreams'))
      .withPanel(
        timeseries({
          title: 'Requests by outcome',
          description: 'Chat completion requests per second by model and outcome (ok, client_disconnected, or the OpenAI error code).',
          unit: UNITS.reqps,
          queries: [{ expr: q.requestsByOutcome(), legend: '{{model}} {{outcome}}' }],
          w: 8,
        }),
      )
      .withPanel(
        timeseries({
          title: 'Error ratio',
          description: 'Share of requests that failed (neither ok nor a client disconnect), by model.',
          unit: UNITS.percentUnit,
          queries: [{ expr: q.errorRatio(), legend: '{{model}}' }],
          min: 0,
          w: 8,
        }),
      )
      .withPanel(
        stat({
          title: 'Circuit breaker state',
          description:
            'Circuit breaker state per upstream model: closed (0) lets requests through, half-open (1) lets a probe through, open (2) fails fast.',
          unit: UNITS.none,
          queries: [{ expr: q.breakerState(), legend: '{{upstream}}' }],
          mappings: BREAKER,
          thresholds: [
            { value: null, color: 'green' },
            { value: 1, color: 'orange' },
            { value: 2, color: 'red' },
          ],
          w: 8,
          h: 8,
        }),
      )
      .withPanel(
        timeseries({
          title: 'In flight and queued',
          description: 'Requests being answered now, by model, and requests waiting in the concurrency queue.',
          unit: UNITS.count,
          queries: [
            { expr: q.inflight(), legend: 'in flight {{model}}' },
            { expr: q.queued(), legend: 'queued' },
          ],
          min: 0,
          w: 8,
        }),
      )
      .withPanel(
        timeseries({
          title: 'Upstream retries',
          description: 'Retried upstream attempts per second, by upstream model and reason.',
          unit: UNITS.perSecond,
          queries: [{ expr: q.upstreamRetries(), legend: '{{upstream}} {{reason}}' }],
          w: 8,
        }),
      )
      .withPanel(
        timeseries({
          title: 'Upstream fallbacks',
          description:
            'Times per second an upstream model gave up and the next one of the model map was tried, by the upstream that gave up.',
          unit: UNITS.perSecond,
          queries: [{ expr: q.upstreamFallbacks(), legend: '{{upstream}}' }],
          w: 8,
        }),
      ),
  );
}
