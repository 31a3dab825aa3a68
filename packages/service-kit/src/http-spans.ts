/**
 * The HTTP spans of every hop, made by the kit: one SERVER span per request a service answers
 * (named `POST /sessions/:id`, its route template) and one CLIENT span per request PeerClient makes
 * (`POST /agent/message/stream`), the W3C `traceparent` read from the one and written into the
 * other. Nothing here runs when tracing is off (`tracingEnabled()`).
 *
 * Why not @opentelemetry/instrumentation-http and -undici, which made these spans before: they
 * patch every request and response of the process (the emitters re-bound to the request's
 * context, each header read through a getter, the request's url parsed, a dozen attributes set
 * even on spans that are not sampled) and name a span after its method only, so the kit renamed it
 * afterwards. With traces on and nothing sampled, instrumentation-http alone was 1.6-2.6% of each
 * service's CPU in the bench:telemetry profiles of 2026-12-06, instrumentation-undici 0.5-1.4%
 * more. Here a request costs a header parse, a span the sampler usually drops (without
 * attributes: they are set on the spans it keeps), and two context switches; a call to a peer
 * inside a dropped span costs the traceparent header alone. The attributes are the stable HTTP
 * semantic conventions' required ones.
 * (@fastify/otel would add a span per hook and per handler under the request's span.)
 */
import type { IncomingMessage } from 'node:http';
import {
  context,
  propagation,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  type Attributes,
  type Context,
  type Span,
} from '@opentelemetry/api';
import { inSampledSpan, startSpan } from './spans.ts';
import { tracingEnabled } from './tracing.ts';

const tracer = trace.getTracer('codelab-service-kit');

/** A server span and the context its request's work runs in. */
export interface ServerSpan {
  span: Span;
  ctx: Context;
  /** Set by endServerSpan: a request that was aborted may still see its response end. */
  ended: boolean;
}

/**
 * Paths no span is made for, served or called (a `/ready` asks its peers' `/health`): scrapes and
 * probes would be most of a trace backend's spans.
 */
const QUIET_PATHS = new Set(['/metrics', '/health', '/ready', '/api/v1/health']);

/**
 * The SERVER span of an incoming request, child of the caller's `traceparent` (a new trace without
 * one); undefined when tracing is off or for a probe. `route` is the matched route template
 * (undefined when no route matched: the span is named after the method only).
 */
export function startServerSpan(req: IncomingMessage, route: string | undefined): ServerSpan | undefined {
  if (!tracingEnabled()) return undefined;
  const url = req.url ?? '/';
  const query = url.indexOf('?');
  const path = query === -1 ? url : url.slice(0, query);
  if (QUIET_PATHS.has(path)) return undefined;
  const method = req.method ?? 'GET';
  const parent = propagation.extract(ROOT_CONTEXT, req.headers);
  const attributes = (): Attributes => {
    const attributes: Attributes = {
      'http.request.method': method,
      'url.path': path, // never the query: a browser's ?access_token= travels there
      'url.scheme': 'http',
      'network.peer.address': req.socket?.remoteAddress,
    };
    if (route) attributes['http.route'] = route;
    const userAgent = req.headers['user-agent'];
    if (userAgent) attributes['user_agent.original'] = userAgent;
    return attributes;
  };
  const span = startSpan(tracer, route ? `${method} ${route}` : method, { kind: SpanKind.SERVER }, attributes, parent);
  return { span, ctx: trace.setSpan(parent, span), ended: false };
}

/**
 * Ends a server span (once) with the response's status: 5xx is an error on the server's side, 4xx
 * the caller's (semantic conventions); `aborted` when the caller went away first. A WebSocket
 * upgrade's span ends with its 101, when the handler took the socket over.
 */
export function endServerSpan(hop: ServerSpan | undefined, statusCode: number, aborted = false): void {
  if (!hop || hop.ended) return;
  hop.ended = true;
  const { span } = hop;
  span.setAttribute('http.response.status_code', statusCode);
  if (aborted) {
    span.setAttribute('error.type', 'aborted');
    span.setStatus({ code: SpanStatusCode.ERROR, message: 'the client closed the connection first' });
  } else if (statusCode >= 500) {
    span.setAttribute('error.type', String(statusCode));
    span.setStatus({ code: SpanStatusCode.ERROR });
  }
  span.end();
}

/**
 * The CLIENT span of a request to a peer, child of the active context, with `traceparent` (and
 * baggage) written into `headers`; undefined when tracing is off or for a probe of the peer.
 * Named `METHOD route-template`. Inside a span the sampler dropped, no span either: the active
 * context goes into the headers as it is (not sampled, so the peer records nothing of it).
 */
export function startClientSpan(
  peer: string,
  baseUrl: URL,
  method: string,
  route: string,
  path: string,
  headers: Record<string, string>,
): Span | undefined {
  if (!tracingEnabled() || QUIET_PATHS.has(route)) return undefined;
  const active = context.active();
  if (trace.getSpan(active) && !inSampledSpan(active)) {
    propagation.inject(active, headers);
    return undefined;
  }
  const span = startSpan(
    tracer,
    `${method} ${route}`,
    { kind: SpanKind.CLIENT },
    () => ({
      'http.request.method': method,
      'server.address': baseUrl.hostname,
      'server.port': Number(baseUrl.port) || (baseUrl.protocol === 'https:' ? 443 : 80),
      'url.full': `${baseUrl.origin}${path}`, // the path only: no query
      'url.template': route,
      'peer.service': peer,
    }),
    active,
  );
  propagation.inject(trace.setSpan(active, span), headers);
  return span;
}

/**
 * Ends a client span: at the end of the response's body (a stream ends when its last byte came,
 * or broke), or at once when no response came (`error`). 4xx and 5xx are errors of a client span.
 */
export function endClientSpan(span: Span, statusCode: number | undefined, error?: Error | null): void {
  if (statusCode !== undefined) span.setAttribute('http.response.status_code', statusCode);
  if (error) {
    span.setAttribute('error.type', error.name === 'AbortError' ? 'aborted' : error.constructor.name);
    span.recordException(error);
    span.setStatus({ code: SpanStatusCode.ERROR, message: error.message });
  } else if (statusCode !== undefined && statusCode >= 400) {
    span.setAttribute('error.type', String(statusCode));
    span.setStatus({ code: SpanStatusCode.ERROR });
  }
  span.end();
}
