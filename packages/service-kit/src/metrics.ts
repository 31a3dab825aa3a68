/**
 * One prom-client registry per service, served at GET /metrics.
 *
 * Metrics are created on an OpenMetrics registry so latency histograms can carry trace-id
 * exemplars. A scrape that asks for OpenMetrics in `Accept` (Prometheus does) gets them; any other
 * scrape gets the classic Prometheus text format, which is what `promtool check metrics` reads.
 */
import client from 'prom-client';

/** OpenTelemetry's advised buckets for http.server.request.duration (seconds), 5 ms … 10 s. */
export const HTTP_DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10];
/** GenAI semconv buckets for durations (operation duration, time to first chunk). */
export const GENAI_DURATION_BUCKETS = [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92];
/** GenAI semconv buckets for server-side time to first token. */
export const GENAI_TTFT_BUCKETS = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10];
/** GenAI semconv buckets for time per output token. */
export const GENAI_TPOT_BUCKETS = [0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 2.5];
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
  static observe<L extends string>(h: client.Histogram<L>, labels: Partial<Record<L, string | number>>, value: number, exemplar: Exemplar): void {
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
