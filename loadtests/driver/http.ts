/**
 * HTTP for the scenarios: undici `request` over one pooled keep-alive Agent, timed and recorded
 * like k6's built-in HTTP metrics: `http_reqs` (Counter), `http_req_duration` (Trend, ms: request
 * sent → response body read, tagged with the request's `name`, `method` and `status`) and
 * `http_req_failed` (Rate: a network error, a timeout, or a status outside the expected ones —
 * k6's default is 200…399). Every response is consumed, so the connection goes back to the pool.
 */
import { Agent, request, type Dispatcher } from 'undici';
import type { Registry, Tags } from './metrics.ts';

export interface HttpOptions {
  /** Connections per origin (the run's max VUs is a good bound). */
  connections: number;
  /** Per-request timeout (headers and between body chunks), ms. */
  timeoutMs: number;
}

export interface RequestSpec {
  /** The `name` tag: one row per name in the report (k6 `tags: { name }`). */
  name: string;
  method?: Dispatcher.HttpMethod;
  url: string;
  headers?: Record<string, string>;
  /** A string or an object (sent as JSON) or URLSearchParams (sent as a form). */
  body?: string | object | URLSearchParams;
  /** Statuses that count as success (default 200…399). */
  expect?: number[];
  signal?: AbortSignal;
}

export interface Response {
  status: number;
  /** 0 when the request failed before a response. */
  ok: boolean;
  text: string;
  durationMs: number;
  error?: string;
  json<T = Record<string, unknown>>(): T | undefined;
}

export const HTTP_METRICS = [
  { name: 'http_reqs', type: 'counter', description: 'HTTP requests made' },
  { name: 'http_req_duration', type: 'trend', unit: 'ms', description: 'request sent → response body read' },
  { name: 'http_req_failed', type: 'rate', description: 'share of requests failed (network error, timeout, or unexpected status)' },
] as const;

function encode(body: RequestSpec['body'], headers: Record<string, string>): string | undefined {
  if (body === undefined) return undefined;
  if (typeof body === 'string') return body;
  if (body instanceof URLSearchParams) {
    headers['content-type'] ??= 'application/x-www-form-urlencoded';
    return body.toString();
  }
  headers['content-type'] ??= 'application/json';
  return JSON.stringify(body);
}

export const describeError = (err: unknown): string => {
  const e = err as { name?: string; code?: string; message?: string; cause?: { code?: string; message?: string } };
  if (e?.name === 'AbortError') return 'aborted (the run was cut)';
  return [e?.code ?? e?.cause?.code, e?.message ?? String(err)].filter(Boolean).join(' ');
};

export class Http {
  readonly agent: Agent;
  readonly timeoutMs: number;
  /** Responses per status of the recorded requests (0: no response). */
  readonly statuses = new Map<number, number>();

  private readonly registry: Registry | undefined;

  constructor(registry: Registry | undefined, opts: HttpOptions) {
    this.registry = registry;
    this.timeoutMs = opts.timeoutMs;
    this.agent = new Agent({
      connections: opts.connections,
      keepAliveTimeout: 10_000,
      headersTimeout: opts.timeoutMs,
      bodyTimeout: opts.timeoutMs,
      connectTimeout: Math.min(10_000, opts.timeoutMs),
    });
  }

  /** A request that is timed and recorded in the run's metrics. */
  async send(spec: RequestSpec, extraTags?: Tags): Promise<Response> {
    const res = await this.raw(spec);
    this.record(spec, res, extraTags);
    return res;
  }

  record(
    spec: Pick<RequestSpec, 'name' | 'method' | 'expect'>,
    res: Pick<Response, 'status' | 'ok' | 'durationMs'>,
    extraTags?: Tags,
  ): void {
    this.statuses.set(res.status, (this.statuses.get(res.status) ?? 0) + 1);
    if (!this.registry) return;
    const tags = { name: spec.name, method: spec.method ?? 'GET', status: String(res.status), ...extraTags };
    this.registry.add('http_reqs', 1, tags);
    this.registry.add('http_req_duration', res.durationMs, tags);
    this.registry.add('http_req_failed', !res.ok, tags);
  }

  isExpected(spec: Pick<RequestSpec, 'expect'>, status: number): boolean {
    return spec.expect ? spec.expect.includes(status) : status >= 200 && status < 400;
  }

  /** A request that is not recorded (setup, token refresh). */
  async raw(spec: RequestSpec): Promise<Response> {
    const headers = { ...spec.headers };
    const body = encode(spec.body, headers);
    const started = performance.now();
    let status = 0;
    let text = '';
    let error: string | undefined;
    try {
      const res = await request(spec.url, { dispatcher: this.agent, method: spec.method ?? 'GET', headers, body, signal: spec.signal });
      status = res.statusCode;
      text = await res.body.text();
    } catch (err) {
      error = describeError(err);
    }
    const durationMs = performance.now() - started;
    const ok = error === undefined && this.isExpected(spec, status);
    return {
      status,
      ok,
      text,
      durationMs,
      ...(error !== undefined ? { error } : {}),
      json<T>(): T | undefined {
        try {
          return JSON.parse(text) as T;
        } catch {
          return undefined;
        }
      },
    };
  }

  close(): Promise<void> {
    return this.agent.close();
  }
}
