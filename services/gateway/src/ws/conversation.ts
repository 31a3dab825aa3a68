/**
 * One IDE WebSocket connection (`/api/v1/ws/:sessionId[?last_seq=N]`): frames in, turns out.
 *
 * Turn frames are handled strictly in order: each is forwarded to the runtime and the chunks of
 * its turn are relayed before the next is taken (turn.ts); at most GATEWAY__WS_MAX_QUEUED_FRAMES
 * wait, more are refused. Bad frames are answered in their place in that order with an `error`
 * frame (`is_final: true`: the frame's answer), and the connection stays usable. Control frames
 * are answered at once, even while a turn streams: `ping` and `cancel` (control.ts); `resume`
 * goes ahead of the queued turn frames. Their answers (and errors) carry no seq and end no turn.
 *
 * On connect, after the access check (someone else's session closes with 4403; skipped for a
 * `new_…` path id, whose session does not exist yet): with `?last_seq=` the missed frames are
 * replayed, otherwise pending approvals are re-sent (resume.ts), before any turn frame. Protocol
 * pings (heartbeat.ts) drop peers that stopped answering.
 *
 * Tracing: every inbound turn frame gets its own span (`ws.message <type>`), the parent of the
 * runtime call, continuing a `traceparent` in the frame or the handshake, else linked to the
 * upgrade; `cancel` and `resume` get short spans of their own. The connection is never one span.
 */
import type { FastifyRequest } from 'fastify';
import type { WebSocket } from 'ws';
import { ROOT_CONTEXT, context, propagation, trace, type Link } from '@opentelemetry/api';
import type { ErrorFactory, ServiceMetrics } from '@codelab/service-kit';
import { WS_CLOSE, type ControlFrame, type TurnFrame } from '@codelab/protocol';
import { gatewayErrors } from '../errors.ts';
import type { GatewayMetrics } from '../metrics.ts';
import type { RuntimeClient } from '../runtime-client.ts';
import { Connection } from './connection.ts';
import { answerPing, cancelTurn } from './control.ts';
import { FrameQueue } from './frame-queue.ts';
import { isControlFrame, isControlType, parseFrame } from './frames.ts';
import type { Heartbeat } from './heartbeat.ts';
import { replayFrames, resendPendingApprovals } from './resume.ts';
import { runTurn } from './turn.ts';

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
  /** Protocol pings shared by every connection (none: no heartbeats). */
  heartbeat?: Heartbeat;
}

export type ConversationRequest = FastifyRequest<{ Params: { sessionId: string }; Querystring: { last_seq?: number } }>;

type QueueItem = { kind: 'frame'; frame: TurnFrame; receivedAt: number } | { kind: 'error'; error: ErrorFactory; message: string };

export function handleConversation(socket: WebSocket, request: ConversationRequest, deps: ConversationDeps): void {
  const { runtime, metrics } = deps;
  const upgradeSpan = trace.getSpan(context.active())?.spanContext();
  const links: Link[] = upgradeSpan ? [{ context: upgradeSpan }] : [];
  const conn = new Connection({
    socket,
    pathId: request.params.sessionId,
    userId: request.principal?.sub,
    log: request.log,
    metrics,
    maxBufferedBytes: deps.maxBufferedBytes,
    handshakeContext: propagation.extract(ROOT_CONTEXT, request.headers),
    links,
  });
  const lastSeq = request.query?.last_seq;
  const opened = performance.now();
  const queue = new FrameQueue<QueueItem>(deps.maxQueuedFrames, metrics.queuedFrames);
  /** A resume frame waiting to go ahead of the queued turn frames (a later one replaces it). */
  let pendingResume: Extract<ControlFrame, { type: 'resume' }> | undefined;
  /** A turn or a replay is streaming to this client. */
  let busy = false;
  let pumping: Promise<void> | undefined;

  metrics.connections.inc();
  conn.log.info({ last_seq: lastSeq }, 'websocket connected');
  deps.heartbeat?.track(socket, () => conn.log.warn('websocket terminated: the client answered no ping within GATEWAY__WS_CLOSE_TIMEOUT'));

  const track = (work: Promise<void>): void => {
    const p = work.catch((err: unknown) => conn.log.error({ err }, 'frame processing failed')).finally(() => deps.inFlight.delete(p));
    deps.inFlight.add(p);
  };

  // Someone else's session: the socket is closed with 4403 before any frame is read. Then what the
  // client missed (replay) or still has to decide (pending approvals), before any turn frame.
  const ready = (async (): Promise<boolean> => {
    let exists = true;
    if (!conn.autoSession) {
      try {
        const access = await runtime.access(conn.pathId, conn.userId);
        if (!access.allowed) {
          metrics.wsSessionDenied.inc();
          conn.log.warn('websocket refused: the session belongs to another user');
          socket.close(gatewayErrors.GW_ERR_FORBIDDEN_SESSION.def.closeCode, 'forbidden');
          return false;
        }
        exists = access.exists;
      } catch (err) {
        conn.log.warn({ err: { message: (err as Error).message } }, 'session access check failed');
        conn.sendControlError(gatewayErrors.GW_ERR_RUNTIME_UNAVAILABLE.code, (err as Error).message);
        socket.close(WS_CLOSE.INTERNAL_ERROR, 'runtime unavailable');
        return false;
      }
    }
    if (lastSeq !== undefined) {
      busy = true;
      await replayFrames(conn, runtime, metrics, lastSeq).finally(() => (busy = false));
    } else if (exists) {
      await resendPendingApprovals(conn, runtime, metrics);
    }
    return true;
  })();

  const pump = async (): Promise<void> => {
    if (!(await ready)) {
      queue.clear(); // refused connection: nothing it sent is processed
      return;
    }
    for (;;) {
      if (!conn.isOpen) return;
      const resume = pendingResume;
      if (resume) {
        pendingResume = undefined;
        busy = true;
        await replayFrames(conn, runtime, metrics, resume.last_seq, resume).finally(() => (busy = false));
        continue;
      }
      const item = queue.shift();
      if (!item) return;
      if (item.kind === 'error') conn.sendError(item.error.code, item.message);
      else {
        busy = true;
        await runTurn(conn, runtime, metrics, item.frame, item.receivedAt).finally(() => (busy = false));
      }
    }
  };
  const schedule = (): void => {
    if (pumping) return;
    const p = pump()
      .catch((err: unknown) => conn.log.error({ err }, 'frame processing failed'))
      .finally(() => {
        deps.inFlight.delete(p);
        pumping = undefined;
        if (conn.isOpen && (queue.length > 0 || pendingResume)) schedule();
      });
    pumping = p;
    deps.inFlight.add(p);
  };

  const enqueue = (item: QueueItem): void => {
    if (!queue.push(item)) {
      metrics.queueFull.inc();
      conn.sendError(gatewayErrors.GW_ERR_WS_QUEUE_FULL.code, `${gatewayErrors.GW_ERR_WS_QUEUE_FULL.def.message} (at most ${deps.maxQueuedFrames})`);
      return;
    }
    if (busy) metrics.framesQueued.inc();
    schedule();
  };

  const control = (frame: ControlFrame): void => {
    if (frame.type === 'ping') answerPing(conn, frame);
    else if (frame.type === 'cancel') track(cancelTurn(conn, runtime, metrics, frame));
    else if (deps.isDraining()) conn.sendControlError(gatewayErrors.GW_ERR_SHUTTING_DOWN.code, gatewayErrors.GW_ERR_SHUTTING_DOWN.def.message);
    else {
      pendingResume = frame;
      schedule();
    }
  };

  socket.on('message', (data: Buffer, isBinary: boolean) => {
    if (isBinary) {
      metrics.frame('in', 'binary');
      if (deps.isDraining()) conn.sendError(gatewayErrors.GW_ERR_SHUTTING_DOWN.code, gatewayErrors.GW_ERR_SHUTTING_DOWN.def.message);
      else enqueue({ kind: 'error', error: gatewayErrors.GW_ERR_WS_BINARY_FRAME, message: gatewayErrors.GW_ERR_WS_BINARY_FRAME.def.message });
      return;
    }
    const parsed = parseFrame(data.toString('utf8'));
    metrics.frame('in', parsed.ok ? parsed.frame.type : 'invalid');
    if (parsed.ok && isControlFrame(parsed.frame)) return control(parsed.frame);
    // a malformed control frame is answered at once too, as a control answer
    if (!parsed.ok && parsed.type !== undefined && isControlType(parsed.type)) return conn.sendControlError(parsed.error.code, parsed.message);
    if (deps.isDraining()) return conn.sendError(gatewayErrors.GW_ERR_SHUTTING_DOWN.code, gatewayErrors.GW_ERR_SHUTTING_DOWN.def.message);
    enqueue(parsed.ok ? { kind: 'frame', frame: parsed.frame as TurnFrame, receivedAt: performance.now() } : { kind: 'error', error: parsed.error, message: parsed.message });
  });

  socket.on('close', (code: number) => {
    conn.closed.abort();
    queue.clear();
    pendingResume = undefined;
    metrics.connections.dec();
    metrics.closed(code);
    deps.serviceMetrics.streamDuration.observe(
      { service: deps.serviceMetrics.service, method: 'GET', route: '/api/v1/ws/:sessionId', status_code: '101' },
      (performance.now() - opened) / 1000,
    );
    conn.log.info({ code }, 'websocket closed');
  });
  socket.on('error', (err: Error) => conn.log.warn({ err: { message: err.message } }, 'websocket error'));

  schedule();
}
