/**
 * Outbound HTTP to another service: one pooled keep-alive undici client per peer, the internal key
 * on every call, timeouts, and `http_client_request_duration_seconds{peer,route}` measured to
 * response headers, and with tracing on a CLIENT span per call (http-spans.ts) that carries its
 * `traceparent` to the peer and ends with the answer's last byte.
 */
import { Pool, errors as undiciErrors, type Dispatcher } from 'undici';
import { INTERNAL_AUTH_HEADER } from './internal-auth.ts';
import { endClientSpan, startClientSpan } from './http-spans.ts';
import { ServiceMetrics } from './metrics.ts';
import { activeTraceIds } from './trace-context.ts';

export interface PeerOptions {
  /** Bounded peer name used as a metric label (e.g. "runtime", "llm-proxy"). */
  peer: string;
  baseUrl: string;
  internalApiKey?: string | undefined;
  metrics: ServiceMetrics;
  connections?: number;
  /** Time allowed to connect (ms). */
  connectTimeoutMs?: number;
  /** Time allowed until response headers (ms). */
  headersTimeoutMs?: number;
  /** Longest silence between body chunks (ms); 0 disables. */
  bodyTimeoutMs?: number;
}

export interface PeerRequest {
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  path: string;
  /** Route template for the metric label, e.g. "/sessions/:id/history". */
  route: string;
  query?: Record<string, string | number | boolean | undefined>;
  body?: unknown;
  headers?: Record<string, string>;
  signal?: AbortSignal;
}

export interface PeerResponse {
  statusCode: number;
  headers: Record<string, string | string[] | undefined>;
  body: Dispatcher.ResponseData['body'];
}

/** The peer could not be reached or did not answer in time. */
export class PeerUnavailableError extends Error {
  readonly peer: string;
  readonly timeout: boolean;
  constructor(peer: string, cause: Error) {
    const timeout =
      cause instanceof undiciErrors.HeadersTimeoutError ||
      cause instanceof undiciErrors.ConnectTimeoutError ||
      cause instanceof undiciErrors.BodyTimeoutError;
    super(`${peer} ${timeout ? 'did not answer in time' : 'is unreachable'}: ${cause.message}`, { cause });
    this.name = 'PeerUnavailableError';
    this.peer = peer;
    this.timeout = timeout;
  }
}

/** A peer's answer as JSON: undefined when empty, an ERR_BAD_UPSTREAM_BODY error body when it is not JSON. */
export function parseAnswer(text: string): unknown {
  try {
    return text ? JSON.parse(text) : undefined;
  } catch {
    return { error: { code: 'ERR_BAD_UPSTREAM_BODY', message: text.slice(0, 200) } };
  }
}

/** The content type is JSON's (`application/json`, with or without parameters, or a `+json` type). */
export function isJsonType(type: string | undefined): boolean {
  return type !== undefined && /^application\/(?:[\w.+-]+\+)?json\s*(?:;|$)/i.test(type);
}

export class PeerClient {
  readonly peer: string;
  readonly baseUrl: string;
  private readonly url: URL;
  private readonly pool: Pool;
  private readonly opts: PeerOptions;

  constructor(opts: PeerOptions) {
    this.opts = opts;
    this.peer = opts.peer;
    this.baseUrl = opts.baseUrl.replace(/\/+$/, '');
    this.url = new URL(this.baseUrl);
    this.pool = new Pool(this.baseUrl, {
      connections: opts.connections ?? 64,
      keepAliveTimeout: 30_000,
      connectTimeout: opts.connectTimeoutMs ?? 5_000,
      headersTimeout: opts.headersTimeoutMs ?? 30_000,
      bodyTimeout: opts.bodyTimeoutMs ?? 60_000,
    });
  }

  async request(req: PeerRequest): Promise<PeerResponse> {
    const started = performance.now();
    const headers: Record<string, string> = { ...req.headers };
    if (this.opts.internalApiKey) headers[INTERNAL_AUTH_HEADER] = this.opts.internalApiKey;
    let body: string | undefined;
    if (req.body !== undefined) {
      body = JSON.stringify(req.body);
      headers['content-type'] ??= 'application/json';
    }
    const search = new URLSearchParams();
    for (const [k, v] of Object.entries(req.query ?? {})) if (v !== undefined) search.set(k, String(v));
    const qs = search.toString();
    const labels = { service: this.opts.metrics.service, peer: this.peer, method: req.method, route: req.route };
    const span = startClientSpan(this.peer, this.url, req.method, req.route, req.path, headers);
    try {
      const res = await this.pool.request({
        method: req.method,
        path: qs ? `${req.path}?${qs}` : req.path,
        headers,
        body,
        signal: req.signal,
      });
      if (span) res.body.once('close', () => endClientSpan(span, res.statusCode, res.body.errored));
      ServiceMetrics.observe(
        this.opts.metrics.clientDuration,
        { ...labels, status_code: String(res.statusCode) },
        (performance.now() - started) / 1000,
        activeTraceIds(),
      );
      return { statusCode: res.statusCode, headers: res.headers, body: res.body };
    } catch (err) {
      const e = err as Error;
      const aborted = e.name === 'AbortError' || req.signal?.aborted === true;
      ServiceMetrics.observe(
        this.opts.metrics.clientDuration,
        { ...labels, status_code: aborted ? 'aborted' : 'error' },
        (performance.now() - started) / 1000,
        activeTraceIds(),
      );
      if (span) endClientSpan(span, undefined, e);
      if (aborted) throw e;
      throw new PeerUnavailableError(this.peer, e);
    }
  }

  /** Request and read the answer as text, with its content type (a relay sends a JSON answer on as it came, unparsed). */
  async text(req: PeerRequest): Promise<{ statusCode: number; contentType: string | undefined; text: string }> {
    const res = await this.request(req);
    const type = res.headers['content-type'];
    return { statusCode: res.statusCode, contentType: typeof type === 'string' ? type : undefined, text: await res.body.text() };
  }

  /** Request and parse a JSON answer (any status). */
  async json<T = unknown>(req: PeerRequest): Promise<{ statusCode: number; body: T }> {
    const { statusCode, text } = await this.text(req);
    return { statusCode, body: parseAnswer(text) as T };
  }

  /** Readiness: the peer's /health answers 200. */
  async checkHealth(): Promise<void> {
    const res = await this.request({ method: 'GET', path: '/health', route: '/health' });
    await res.body.dump();
    if (res.statusCode !== 200) throw new Error(`${this.peer} /health answered ${res.statusCode}`);
  }

  close(): Promise<void> {
    return this.pool.close();
  }
}
