/**
 * One IDE WebSocket connection (`/api/v1/ws/:sessionId`): frames in, turns out.
 *
 * Frames are handled strictly in order: each valid frame is forwarded to the runtime's
 * `/agent/message/stream`, and the SSE chunks of its turn are relayed as frames, token by token,
 * before the next frame is taken. Bad frames are answered in their place in that order with an
 * `error` frame, and the connection stays usable.
 *
 * Tracing: every inbound frame gets its own span (`ws.message <type>`), the parent of the runtime
 * call; it continues the trace of a `traceparent` field in the frame, or of the handshake's
 * `traceparent` header, and otherwise starts a new trace linked to the upgrade request. The
 * connection itself is never one endless span.
 */
import type { FastifyBaseLogger, FastifyRequest } from 'fastify';
import type { WebSocket } from 'ws';
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, context, propagation, trace, type Context, type Link } from '@opentelemetry/api';
import { AppError, parseSse, ServiceMetrics, type ErrorFactory, activeTraceIds } from '@codelab/service-kit';
import { WS_CLOSE, withoutNulls, type InboundFrame, type StreamChunk } from '@codelab/protocol';
import { gatewayErrors } from '../errors.ts';
import type { GatewayMetrics } from '../metrics.ts';
import type { RuntimeClient } from '../runtime-client.ts';
import { parseFrame } from './frames.ts';

const tracer = trace.getTracer('codelab-gateway');

export interface ConversationDeps {
  runtime: RuntimeClient;
  metrics: GatewayMetrics;
  serviceMetrics: ServiceMetrics;
  maxQueuedFrames: number;
  /** Bytes that may wait to be sent to this client before it is dropped as a slow reader. */
  maxBufferedBytes: number;
  isDraining: () => boolean;
  /** Work in progress on every connection, awaited by graceful shutdown. */
  inFlight: Set<Promise<void>>;
}

type QueueItem = { kind: 'frame'; frame: InboundFrame; receivedAt: number } | { kind: 'error'; error: ErrorFactory; message: string };

export function handleConversation(socket: WebSocket, request: FastifyRequest<{ Params: { sessionId: string } }>, deps: ConversationDeps): void {
  const { sessionId } = request.params;
  const userId = request.principal?.sub;
  const log: FastifyBaseLogger = request.log.child({ session_id: sessionId });
  const handshakeContext = propagation.extract(ROOT_CONTEXT, request.headers);
  const upgradeSpan = trace.getSpan(context.active())?.spanContext();
  const links: Link[] = upgradeSpan ? [{ context: upgradeSpan }] : [];
  const closed = new AbortController();
  const opened = performance.now();
  const queue: QueueItem[] = [];
  let pumping: Promise<void> | undefined;

  deps.metrics.connections.inc();
  log.info('websocket connected');

  /** Sends a frame; `raw` is the runtime's chunk JSON, forwarded as is (the runtime never writes null fields). */
  const send = (chunk: StreamChunk, raw?: string): void => {
    if (socket.readyState !== socket.OPEN) return;
    // A client that does not read must not make the gateway buffer without bound.
    if (socket.bufferedAmount > deps.maxBufferedBytes) {
      deps.metrics.slowReaderDrops.inc();
      log.warn({ buffered_bytes: socket.bufferedAmount }, 'websocket closed: the client reads too slowly');
      socket.close(gatewayErrors.GW_ERR_WS_SLOW_READER.def.closeCode!, 'slow reader');
      closed.abort();
      return;
    }
    socket.send(raw ?? JSON.stringify(withoutNulls(chunk)));
    deps.metrics.frame('out', chunk.type);
  };
  const sendError = (code: string, message: string): void => send({ type: 'error', content: message, error: message, code, is_final: true });

  // Someone else's session: the socket is closed with 4403 before any frame is read.
  const access = deps.runtime.access(sessionId, userId).then(
    (a) => {
      if (a.allowed) return true;
      deps.metrics.wsSessionDenied.inc();
      log.warn('websocket refused: the session belongs to another user');
      socket.close(gatewayErrors.GW_ERR_FORBIDDEN_SESSION.def.closeCode, 'forbidden');
      return false;
    },
    (err: Error) => {
      log.warn({ err: { message: err.message } }, 'session access check failed');
      sendError(gatewayErrors.GW_ERR_RUNTIME_UNAVAILABLE.code, err.message);
      socket.close(WS_CLOSE.INTERNAL_ERROR, 'runtime unavailable');
      return false;
    },
  );

  const runTurn = async (frame: InboundFrame, receivedAt: number): Promise<void> => {
    const { traceparent, tracestate, ...message } = frame;
    const parent: Context = traceparent ? propagation.extract(ROOT_CONTEXT, { traceparent, ...(tracestate ? { tracestate } : {}) }) : handshakeContext;
    const span = tracer.startSpan(
      `ws.message ${frame.type}`,
      { kind: SpanKind.SERVER, links, attributes: { 'codelab.session.id': sessionId, 'ws.message.type': frame.type, 'network.io.direction': 'receive' } },
      parent,
    );
    let outcome = 'ok';
    await context.with(trace.setSpan(parent, span), async () => {
      try {
        const res = await deps.runtime.openTurn({ session_id: sessionId, message: message as InboundFrame }, userId, closed.signal);
        if (res.statusCode >= 400) {
          const text = await res.body.text();
          let detail = text.slice(0, 300);
          let code = gatewayErrors.GW_ERR_AGENT_ERROR.code;
          try {
            const body = JSON.parse(text) as { error?: { code?: string; message?: string } };
            detail = body.error?.message ?? detail;
            code = body.error?.code ?? code;
          } catch {
            /* not JSON */
          }
          outcome = 'agent_error';
          sendError(code, `Agent error: ${res.statusCode}: ${detail}`);
          return;
        }
        let final = false;
        let firstToken = true;
        for await (const ev of parseSse(res.body)) {
          if (ev.data === '[DONE]' || ev.event === 'done') break;
          let chunk: StreamChunk;
          try {
            chunk = JSON.parse(ev.data) as StreamChunk;
          } catch {
            log.warn({ data: ev.data.slice(0, 200) }, 'runtime sent a chunk that is not JSON; skipped');
            continue;
          }
          if (firstToken && chunk.token) {
            firstToken = false;
            ServiceMetrics.observe(deps.metrics.timeToFirstToken, {}, (performance.now() - receivedAt) / 1000, activeTraceIds());
          }
          send(chunk, ev.data);
          if (chunk.type === 'error') outcome = 'error';
          if (chunk.is_final) final = true;
        }
        if (!final && !closed.signal.aborted) {
          outcome = 'interrupted';
          sendError(gatewayErrors.GW_ERR_STREAM_INTERRUPTED.code, gatewayErrors.GW_ERR_STREAM_INTERRUPTED.def.message);
        }
      } catch (err) {
        if (closed.signal.aborted) {
          outcome = 'client_gone';
          return;
        }
        outcome = 'error';
        const e = err instanceof AppError ? err : gatewayErrors.GW_ERR_STREAM_INTERRUPTED(`Streaming error: ${(err as Error).message}`);
        log.warn({ err }, 'turn failed');
        span.recordException(err as Error);
        sendError(e.code, e.message);
      } finally {
        if (outcome !== 'ok') span.setStatus({ code: SpanStatusCode.ERROR, message: outcome });
        span.setAttribute('codelab.turn.outcome', outcome);
        span.end();
        deps.metrics.turnDuration.observe({ outcome }, (performance.now() - receivedAt) / 1000);
      }
    });
  };

  const pump = async (): Promise<void> => {
    if (!(await access)) {
      queue.length = 0; // refused connection: nothing it sent is processed
      return;
    }
    for (let item = queue.shift(); item; item = queue.shift()) {
      if (item.kind === 'error') sendError(item.error.code, item.message);
      else await runTurn(item.frame, item.receivedAt);
    }
  };
  const schedule = (): void => {
    if (pumping) return;
    const p = pump()
      .catch((err: unknown) => log.error({ err }, 'frame processing failed'))
      .finally(() => {
        deps.inFlight.delete(p);
        pumping = undefined;
        if (queue.length > 0) schedule();
      });
    pumping = p;
    deps.inFlight.add(p);
  };

  socket.on('message', (data: Buffer, isBinary: boolean) => {
    if (deps.isDraining()) {
      sendError(gatewayErrors.GW_ERR_SHUTTING_DOWN.code, gatewayErrors.GW_ERR_SHUTTING_DOWN.def.message);
      return;
    }
    if (queue.length >= deps.maxQueuedFrames) {
      deps.metrics.frame('in', 'other');
      sendError(gatewayErrors.GW_ERR_WS_QUEUE_FULL.code, `${gatewayErrors.GW_ERR_WS_QUEUE_FULL.def.message} (at most ${deps.maxQueuedFrames})`);
      return;
    }
    if (isBinary) {
      deps.metrics.frame('in', 'binary');
      queue.push({ kind: 'error', error: gatewayErrors.GW_ERR_WS_BINARY_FRAME, message: gatewayErrors.GW_ERR_WS_BINARY_FRAME.def.message });
    } else {
      const parsed = parseFrame(data.toString('utf8'));
      deps.metrics.frame('in', parsed.ok ? parsed.frame.type : 'invalid');
      queue.push(parsed.ok ? { kind: 'frame', frame: parsed.frame, receivedAt: performance.now() } : { kind: 'error', error: parsed.error, message: parsed.message });
    }
    schedule();
  });

  socket.on('close', (code: number) => {
    closed.abort();
    queue.length = 0;
    deps.metrics.connections.dec();
    deps.metrics.closed(code);
    deps.serviceMetrics.streamDuration.observe(
      { service: deps.serviceMetrics.service, method: 'GET', route: '/api/v1/ws/:sessionId', status_code: '101' },
      (performance.now() - opened) / 1000,
    );
    log.info({ code }, 'websocket closed');
  });
  socket.on('error', (err: Error) => log.warn({ err: { message: err.message } }, 'websocket error'));
}
