/**
 * Outbound HTTP to another service: one pooled keep-alive undici client per peer, the internal key
 * on every call, timeouts, and `http_client_request_duration_seconds{peer,route}` measured to
 * response headers, and with tracing on a CLIENT span per call (http-spans.ts) that carries its
 * `traceparent` to the peer and ends with the answer's last byte.
 */
import { Pool, errors as undiciErrors, type Dispatcher } from 'undici';
import { INTERNAL_AUTH_HEADER } from './internal-auth.ts';
import { endClientSpan, startClientSpan } from './http-spans.ts';
import { H2C_MAX_STREAMS } from './h2c.ts';
import { H2cPool } from './h2c-pool.ts';
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
  /**
   * Speak HTTP/2 without TLS (h2c, prior knowledge) to a peer that is one of ours (h2c.ts), up to
   * this many calls on one connection at once (0 or absent: HTTP/1.1, a connection per call in
   * flight). Streams sharing a connection share its socket writes and reads: the frames of many
   * streams leave in one write. A connection is retired (gracefully: its calls finish) after
   * H2C_CONNECTION_TTL_MS, so that callers spread again over the peer's replicas, which a load
   * balancer in between assigns per connection. `connections` bounds the connections. An https
   * peer negotiates its protocol as usual; a peer that refuses the HTTP/2 preface (it speaks only
   * HTTP/1.1) is called over HTTP/1.1 from then on, and `log` is told.
   */
  h2cStreams?: number;
  /** Where the client says what the operator should know (a peer that does not speak h2c). */
  log?: { warn(obj: object, msg: string): void };
}

/** How long an h2c connection takes new calls (ms): then it finishes its calls and a new one (maybe to another replica) takes over. */
export const H2C_CONNECTION_TTL_MS = 60_000;
/**
 * How often an h2c connection is PINGed (ms): a stalled one (a partition) is reset within two
 * intervals even when no call on it times out. One 17-byte frame each way per connection.
 */
export const H2C_PING_INTERVAL_MS = 10_000;

export interface PeerRequest {
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  path: string;
  /** Route template for the metric label, e.g. "/sessions/:id/history". */
  route: string;
  query?: Record<string, string | number | boolean | undefined>;
  /** Sent as JSON; a Buffer is JSON already encoded, sent as it is. */
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

/** One call on its way: what `begin` prepared. */
interface Call {
  started: number;
  headers: Record<string, string>;
  body: string | Buffer | undefined;
  path: string;
  labels: { service: string; peer: string; method: string; route: string };
  span: ReturnType<typeof startClientSpan>;
}

export class PeerClient {
  readonly peer: string;
  readonly baseUrl: string;
  private readonly url: URL;
  private readonly pool: Dispatcher;
  private readonly opts: PeerOptions;
  /** Stops reporting the h2c pool's gauges (when closed). */
  private readonly unwatch: () => void = () => undefined;

  constructor(opts: PeerOptions) {
    this.opts = opts;
    this.peer = opts.peer;
    this.baseUrl = opts.baseUrl.replace(/\/+$/, '');
    this.url = new URL(this.baseUrl);
    const timeouts = {
      connectTimeout: opts.connectTimeoutMs ?? 5_000,
      headersTimeout: opts.headersTimeoutMs ?? 30_000,
      bodyTimeout: opts.bodyTimeoutMs ?? 60_000,
    };
    if (opts.h2cStreams) {
      const pool = new H2cPool(this.baseUrl, {
        streams: Math.min(opts.h2cStreams, H2C_MAX_STREAMS),
        connections: opts.connections ?? 64,
        ttlMs: H2C_CONNECTION_TTL_MS,
        pingIntervalMs: H2C_PING_INTERVAL_MS,
        onHttp1: () =>
          opts.log?.warn(
            { peer: opts.peer, url: this.baseUrl },
            'the peer refused HTTP/2 (h2c): it is called over HTTP/1.1 from now on; set its *_H2C_STREAMS setting to 0 for a peer that is not one of ours',
          ),
        client: { ...timeouts, keepAliveTimeout: 30_000 },
      });
      this.unwatch = opts.metrics.watchH2cPool(opts.peer, () => pool.stats);
      this.pool = pool;
    } else this.pool = new Pool(this.baseUrl, { ...timeouts, connections: opts.connections ?? 64, keepAliveTimeout: 30_000 });
  }

  async request(req: PeerRequest): Promise<PeerResponse> {
    const call = this.begin(req);
    try {
      const res = await this.pool.request({
        method: req.method,
        path: call.path,
        headers: call.headers,
        body: call.body,
        signal: req.signal,
      });
      if (call.span) res.body.once('close', () => endClientSpan(call.span!, res.statusCode, res.body.errored));
      this.answered(call, res.statusCode);
      return { statusCode: res.statusCode, headers: res.headers, body: res.body };
    } catch (err) {
      throw this.failed(call, err as Error, req.signal);
    }
  }

  /**
   * Request and read the answer whole, as the bytes that came, with its content type (a relay sends
   * a JSON answer on as it came: not decoded, parsed, encoded again). The body is gathered by a
   * dispatch handler, without the body stream `request` answers with (a Readable and its events,
   * per call). A failure while the body comes (the peer breaks off, or is silent past the body
   * timeout) is a PeerUnavailableError too.
   */
  bytes(req: PeerRequest): Promise<{ statusCode: number; contentType: string | undefined; body: Buffer }> {
    const call = this.begin(req);
    const { signal } = req;
    return new Promise((resolve, reject) => {
      /** The call ended (answered, failed or aborted): whatever undici reports after that is ignored. */
      let settled = false;
      let statusCode: number | undefined;
      let contentType: string | undefined;
      const chunks: Buffer[] = [];
      let controller: Dispatcher.DispatchController | undefined;
      const fail = (err: Error): void => {
        if (settled) return;
        settled = true;
        signal?.removeEventListener('abort', onAbort);
        if (statusCode === undefined) return reject(this.failed(call, err, signal));
        // the answer had started: its status was counted; the span ends with the error
        if (call.span) endClientSpan(call.span, statusCode, err);
        reject(signal?.aborted ? (signal.reason as Error) : new PeerUnavailableError(this.peer, err));
      };
      // Before undici starts the request (it waits for a free connection), there is nothing to abort
      // yet: the call ends now, and the request is aborted when it starts (onRequestStart).
      const onAbort = (): void => {
        if (controller) controller.abort(signal!.reason as Error);
        else fail(signal!.reason as Error);
      };
      if (signal?.aborted) return fail(signal.reason as Error);
      signal?.addEventListener('abort', onAbort, { once: true });
      // (undici reports a request it refuses outright, e.g. a header it cannot send, to onResponseError)
      this.pool.dispatch(
        { method: req.method, path: call.path, headers: call.headers, body: call.body ?? null },
        {
          onRequestStart: (c) => {
            controller = c;
            if (signal?.aborted) c.abort(signal.reason as Error);
          },
          onResponseStart: (_c, status, headers) => {
            if (status < 200 || settled) return; // an informational answer (103 Early Hints): the real one follows
            statusCode = status;
            const type = headers['content-type'];
            contentType = typeof type === 'string' ? type : undefined;
            this.answered(call, status);
          },
          onResponseData: (_c, chunk) => {
            if (!settled) chunks.push(chunk);
          },
          onResponseEnd: () => {
            if (settled) return;
            const body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
            settled = true;
            signal?.removeEventListener('abort', onAbort);
            if (call.span) endClientSpan(call.span, statusCode, undefined);
            resolve({ statusCode: statusCode!, contentType, body });
          },
          onResponseError: (_c, err) => fail(err),
        },
      );
    });
  }

  /** Request and read the answer whole as text (`bytes`, decoded as UTF-8), with its content type. */
  async text(req: PeerRequest): Promise<{ statusCode: number; contentType: string | undefined; text: string }> {
    const { statusCode, contentType, body } = await this.bytes(req);
    return { statusCode, contentType, text: body.toString() };
  }

  /** What every call starts with: its headers (the internal key, a JSON body's type), body, path with query, metric labels, span. */
  private begin(req: PeerRequest): Call {
    const started = performance.now();
    const headers: Record<string, string> = { ...req.headers };
    if (this.opts.internalApiKey) headers[INTERNAL_AUTH_HEADER] = this.opts.internalApiKey;
    let body: string | Buffer | undefined;
    if (req.body !== undefined) {
      body = Buffer.isBuffer(req.body) ? req.body : JSON.stringify(req.body);
      headers['content-type'] ??= 'application/json';
    }
    const search = new URLSearchParams();
    for (const [k, v] of Object.entries(req.query ?? {})) if (v !== undefined) search.set(k, String(v));
    const qs = search.toString();
    const labels = { service: this.opts.metrics.service, peer: this.peer, method: req.method, route: req.route };
    const span = startClientSpan(this.peer, this.url, req.method, req.route, req.path, headers);
    return { started, headers, body, path: qs ? `${req.path}?${qs}` : req.path, labels, span };
  }

  /** The answer's headers came: http_client_request_duration_seconds with its status. */
  private answered(call: Call, statusCode: number): void {
    ServiceMetrics.observe(
      this.opts.metrics.clientDuration,
      { ...call.labels, status_code: String(statusCode) },
      (performance.now() - call.started) / 1000,
      activeTraceIds(),
    );
  }

  /** No answer came: counted as `aborted` or `error`, the span ended; the caller's abort as it is, anything else a PeerUnavailableError. */
  private failed(call: Call, e: Error, signal: AbortSignal | undefined): Error {
    const aborted = e.name === 'AbortError' || signal?.aborted === true;
    ServiceMetrics.observe(
      this.opts.metrics.clientDuration,
      { ...call.labels, status_code: aborted ? 'aborted' : 'error' },
      (performance.now() - call.started) / 1000,
      activeTraceIds(),
    );
    if (call.span) endClientSpan(call.span, undefined, e);
    if (!aborted) return new PeerUnavailableError(this.peer, e);
    // the caller's abort, with its reason (not what it caused: a connect cut short, say)
    return signal?.aborted ? (signal.reason as Error) : e;
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
    this.unwatch();
    return this.pool.close();
  }
}
