/**
 * One prom-client registry per service, served at GET /metrics.
 *
 * Metrics are created on an OpenMetrics registry so latency histograms can carry trace-id
 * exemplars. A scrape that asks for OpenMetrics in `Accept` (Prometheus does) gets them; any other
 * scrape gets the classic Prometheus text format, which is what `promtool check metrics` reads.
 */
import client from 'prom-client';

/*
 * Latency buckets. Prometheus reads a quantile by interpolating linearly inside the bucket that holds
 * it, so where most observations of a histogram fall its boundaries step by at most 4/3 (ten a
 * decade: 1, 1.25, 1.5, 2, 2.5, 3, 4, 5, 6, 7.5): p50, p95 and p99 then read within 10% of the
 * truth for latencies with some spread (packages/service-kit/test/metrics.test.ts). Time to first
 * token, whose p99 is a headline figure read from a few hundred turns, steps by 1.11 to 1.14 (twenty a
 * decade). Outside those ranges the steps are coarser, to keep the series few. Every latency SLO
 * threshold of alerts/slos.yaml is a boundary (alerts test).
 */

/** Ten a decade, steps of at most 4/3. */
const TEN_A_DECADE = [1, 1.25, 1.5, 2, 2.5, 3, 4, 5, 6, 7.5];
/** Twenty a decade (the R20 preferred numbers of ISO 3), steps of 1.11 to 1.14. */
const TWENTY_A_DECADE = [1, 1.12, 1.25, 1.4, 1.6, 1.8, 2, 2.24, 2.5, 2.8, 3.15, 3.55, 4, 4.5, 5, 5.6, 6.3, 7.1, 8, 9];

/** Boundaries from `from` up to `to`, both included, ten (steps of at most 4/3) or twenty (steps of at most 1.14) a decade. */
export function fineBuckets(from: number, to: number, perDecade: 10 | 20 = 10): number[] {
  const steps = perDecade === 20 ? TWENTY_A_DECADE : TEN_A_DECADE;
  const out: number[] = [];
  for (let decade = Math.floor(Math.log10(from)) - 1; 10 ** decade <= to; decade++) {
    for (const step of steps) {
      const bound = Number((step * 10 ** decade).toPrecision(3));
      if (bound >= from && bound <= to) out.push(bound);
    }
  }
  return out;
}

/**
 * HTTP requests, server and client side (REST calls take 1 to 50 ms, a password grant ~100 ms of
 * scrypt): fine from 1 ms to 1 s. Holds OpenTelemetry's advised buckets for http.server.request.duration.
 */
export const HTTP_DURATION_BUCKETS = [...fineBuckets(0.001, 1), 2.5, 5, 7.5, 10];
/**
 * Time to first token, wherever it is measured (the mock answers in 30 ms, real models in 0.2 to
 * 2 s, reasoning ones and overloaded ones in 5 to 30 s): twenty a decade from 50 ms to 10 s, ten a
 * decade from 10 ms and up to 60 s.
 */
export const TTFT_BUCKETS = [0.001, 0.0025, 0.005, ...fineBuckets(0.01, 0.04), ...fineBuckets(0.05, 10, 20), ...fineBuckets(12.5, 60)];
/** Turns and LLM calls until their last token (the mock's take 0.1 to 1 s, real ones 1 to 60 s): fine from 50 ms to 60 s. */
export const OPERATION_DURATION_BUCKETS = [0.005, 0.01, 0.025, ...fineBuckets(0.05, 60), 120, 300, 600];
/** Time per output token (the mock's 15 ms, real models 10 to 100 ms): fine from 5 ms to 250 ms. */
export const TPOT_BUCKETS = [0.001, 0.0025, ...fineBuckets(0.005, 0.25), 0.5, 1, 2.5];
/** Database operations, including the wait for a pool connection (0.5 to 20 ms): fine from 0.5 ms to 100 ms. */
export const DB_DURATION_BUCKETS = [0.00025, ...fineBuckets(0.0005, 0.1), 0.25, 0.5, 1, 2.5, 5];
/** GenAI semconv buckets for token counts. */
export const GENAI_TOKEN_BUCKETS = [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304];

export type Exemplar = { trace_id: string; span_id: string } | undefined;

export class ServiceMetrics {
  readonly registry: client.Registry<client.OpenMetricsContentType>;
  readonly service: string;
  /** http.server.request.duration: one RED histogram for every non-streaming route. */
  readonly httpDuration: client.Histogram<'service' | 'method' | 'route' | 'status_code'>;
  /** Duration of streaming responses (SSE, WebSocket): kept out of the request-latency SLI. */
  readonly streamDuration: client.Histogram<'service' | 'method' | 'route' | 'status_code'>;
  /** Outbound calls to other services and upstreams (peer is a bounded service name). */
  readonly clientDuration: client.Histogram<'service' | 'peer' | 'method' | 'route' | 'status_code'>;
  private renderQueue: Promise<unknown> = Promise.resolve();
  /** The h2c pools of this process's PeerClients (http-client.ts), read when the metrics are scraped. */
  private readonly h2cPools: { peer: string; stats: () => { connections: number; running: number; retiring: number } }[] = [];
  private h2cGauges = false;

  constructor(service: string) {
    this.service = service;
    this.registry = new client.Registry<client.OpenMetricsContentType>();
    this.registry.setContentType(client.openMetricsContentType);
    client.collectDefaultMetrics({ register: this.registry, eventLoopMonitoringPrecision: 10 });
    this.dropMisnamedGauges();
    this.httpDuration = this.histogram({
      name: 'http_server_request_duration_seconds',
      help: 'Duration of HTTP server requests (OpenTelemetry http.server.request.duration), by route template',
      labelNames: ['service', 'method', 'route', 'status_code'],
      buckets: HTTP_DURATION_BUCKETS,
      enableExemplars: true,
    });
    this.streamDuration = this.histogram({
      name: 'http_server_stream_duration_seconds',
      help: 'Duration of streaming HTTP responses (SSE) and WebSocket connections, by route template',
      labelNames: ['service', 'method', 'route', 'status_code'],
      // lifetimes from a second to hours, read for their order of magnitude (no SLO): coarse on purpose
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600],
    });
    this.clientDuration = this.histogram({
      name: 'http_client_request_duration_seconds',
      help: 'Duration of outbound HTTP requests to other services until response headers, by peer and route template',
      labelNames: ['service', 'peer', 'method', 'route', 'status_code'],
      buckets: HTTP_DURATION_BUCKETS,
      enableExemplars: true,
    });
  }

  /**
   * Reports an h2c pool of outbound connections (h2c-pool.ts) as `http_client_h2c_connections{peer,state}`
   * (`live`: taking new calls; `retiring`: told to go away or past their time, finishing their calls)
   * and `http_client_h2c_streams{peer}` (calls running on them), read at each scrape. Answers the
   * function that stops reporting it (its client closed).
   */
  watchH2cPool(peer: string, stats: () => { connections: number; running: number; retiring: number }): () => void {
    if (!this.h2cGauges) {
      this.h2cGauges = true;
      const pools = this.h2cPools;
      const service = this.service;
      const sum = (peerName: string, key: 'connections' | 'running' | 'retiring'): number =>
        pools.filter((p) => p.peer === peerName).reduce((n, p) => n + p.stats()[key], 0);
      const peers = (): Set<string> => new Set(pools.map((p) => p.peer));
      this.gauge({
        name: 'http_client_h2c_connections',
        help: 'Outbound HTTP/2 (h2c) connections to other services: live ones take new calls, retiring ones finish theirs',
        labelNames: ['service', 'peer', 'state'],
        collect() {
          this.reset();
          for (const p of peers()) {
            this.set({ service, peer: p, state: 'live' }, sum(p, 'connections'));
            this.set({ service, peer: p, state: 'retiring' }, sum(p, 'retiring'));
          }
        },
      });
      this.gauge({
        name: 'http_client_h2c_streams',
        help: 'Outbound calls running on HTTP/2 (h2c) connections to other services',
        labelNames: ['service', 'peer'],
        collect() {
          this.reset();
          for (const p of peers()) this.set({ service, peer: p }, sum(p, 'running'));
        },
      });
    }
    const entry = { peer, stats };
    this.h2cPools.push(entry);
    return () => {
      const at = this.h2cPools.indexOf(entry);
      if (at >= 0) this.h2cPools.splice(at, 1);
    };
  }

  /**
   * prom-client adds `nodejs_active_{handles,requests,resources}_total` gauges, which promtool
   * rejects (a `_total` suffix promises a counter). They are dropped: the same counts stand in the
   * per-type gauges `nodejs_active_handles{type}` etc., whose sum is the total.
   */
  private dropMisnamedGauges(): void {
    for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) {
      if (this.registry.getSingleMetric(name)) this.registry.removeSingleMetric(name);
    }
    // GC series appear at the first collection of each kind: start them at zero, so that dashboards
    // and alerts see "no GC yet" rather than nothing.
    const gc = this.registry.getSingleMetric('nodejs_gc_duration_seconds') as client.Histogram<'kind'> | undefined;
    for (const kind of ['minor', 'major', 'incremental', 'weakcb']) gc?.zero({ kind });
  }

  counter<L extends string>(cfg: Omit<client.CounterConfiguration<L>, 'registers'>): client.Counter<L> {
    return new client.Counter<L>({ ...cfg, registers: [this.registry] });
  }
  gauge<L extends string>(cfg: Omit<client.GaugeConfiguration<L>, 'registers'>): client.Gauge<L> {
    return new client.Gauge<L>({ ...cfg, registers: [this.registry] });
  }
  histogram<L extends string>(cfg: Omit<client.HistogramConfiguration<L>, 'registers'>): client.Histogram<L> {
    return new client.Histogram<L>({ ...cfg, registers: [this.registry] });
  }

  /**
   * Observes a histogram, with the trace ids as exemplar when known. Histograms created with
   * `enableExemplars` only take the object form, so every observation of them goes through here.
   */
  static observe<L extends string>(
    h: client.Histogram<L>,
    labels: Partial<Record<L, string | number>>,
    value: number,
    exemplar: Exemplar,
  ): void {
    if ((h as unknown as { enableExemplars?: boolean }).enableExemplars) {
      h.observe({ labels, value, exemplarLabels: (exemplar ?? {}) as unknown as Partial<Record<L, string | number>> });
    } else h.observe(labels, value);
  }

  /**
   * Renders the registry for a scraper. Renders are serialized: prom-client renames counters in
   * place for OpenMetrics (`x_total` → `x`), and the Prometheus rendering puts the suffix back.
   */
  render(accept: string | undefined): Promise<{ contentType: string; body: string }> {
    const openMetrics = /application\/openmetrics-text/i.test(accept ?? '');
    const job = this.renderQueue.then(async () => {
      const metrics = this.registry.getMetricsAsArray() as unknown as { type: string; name: string }[];
      if (openMetrics) {
        return { contentType: client.openMetricsContentType, body: await this.registry.metrics() };
      }
      const view = new client.Registry();
      for (const m of metrics) {
        if (m.type === 'counter' && !m.name.endsWith('_total')) m.name = `${m.name}_total`;
        view.registerMetric(m as unknown as client.Metric);
      }
      return { contentType: client.register.contentType, body: await view.metrics() };
    });
    this.renderQueue = job.catch(() => undefined);
    return job;
  }
}
