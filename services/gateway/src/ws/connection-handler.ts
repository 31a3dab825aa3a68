/**
 * The handler of one IDE WebSocket (`/api/v1/ws/:sessionId[?last_seq=N]`): frames in, turns out.
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
 * What the connection is doing is one state (`ConnectionState`), changed only along
 * `TRANSITIONS`: one turn or replay streams at a time, and what arrives meanwhile waits.
 *
 * Tracing: every inbound turn frame gets its own span (`ws.message <type>`), the parent of the
 * runtime call, continuing a `traceparent` in the frame or the handshake, else linked to the
 * upgrade; `cancel` and `resume` get short spans of their own. The connection is never one span.
 */
import type { FastifyRequest } from 'fastify';
import type { WebSocket } from 'ws';
import { ROOT_CONTEXT, context, propagation, trace, type Link } from '@opentelemetry/api';
import type { ErrorFactory, ServiceMetrics } from '@codelab/service-kit';
import { WS_CLOSE, type ControlFrame, type ResumeFrame, type TurnFrame } from '@codelab/protocol';
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

export interface ConnectionHandlerDeps {
  runtime: RuntimeClient;
  metrics: GatewayMetrics;
  serviceMetrics: ServiceMetrics;
  maxQueuedFrames: number;
  /** Bytes that may wait to be sent to this client before it is dropped as a slow reader. */
  maxBufferedBytes: number;
  /** GATEWAY__WS_MAX_MESSAGE_BYTES: a bigger frame closes the connection with 1009. */
  maxMessageBytes: number;
  isDraining: () => boolean;
  /** Work in progress on every connection, awaited by graceful shutdown. */
  inFlight: Set<Promise<void>>;
  /** Protocol pings shared by every connection (none: no heartbeats). */
  heartbeat?: Heartbeat;
}

export type ConnectionRequest = FastifyRequest<{ Params: { sessionId: string }; Querystring: { last_seq?: number } }>;

/**
 * - `opening`: the access check, then the pending approvals re-sent; no turn frame runs yet.
 * - `replaying`: frames the client missed stream to it (`?last_seq=` while opening, or a `resume`).
 * - `idle`: nothing streams; a waiting `resume`, else the next queued frame, starts at once.
 * - `turn`: a turn frame's answer streams.
 * - `refused`: someone else's session, or no runtime to ask: nothing the client sent is processed.
 * - `closed`: the socket closed; what still runs finds out through `Connection.closed`.
 */
type ConnectionState = 'opening' | 'replaying' | 'idle' | 'turn' | 'refused' | 'closed';

const TRANSITIONS: Readonly<Record<ConnectionState, readonly ConnectionState[]>> = {
  opening: ['replaying', 'idle', 'refused', 'closed'],
  replaying: ['idle', 'closed'],
  idle: ['turn', 'replaying', 'closed'],
  turn: ['idle', 'closed'],
  refused: ['closed'],
  closed: [],
};

type QueueItem = { kind: 'frame'; frame: TurnFrame; receivedAt: number } | { kind: 'error'; error: ErrorFactory; message: string };

export function handleConnection(socket: WebSocket, request: ConnectionRequest, deps: ConnectionHandlerDeps): void {
  new ConnectionHandler(socket, request, deps).start();
}

class ConnectionHandler {
  private state: ConnectionState = 'opening';
  private readonly conn: Connection;
  private readonly socket: WebSocket;
  private readonly deps: ConnectionHandlerDeps;
  private readonly lastSeq: number | undefined;
  private readonly opened = performance.now();
  private readonly queue: FrameQueue<QueueItem>;
  /** A resume frame waiting to go ahead of the queued turn frames (a later one replaces it). */
  private pendingResume: ResumeFrame | undefined;

  constructor(socket: WebSocket, request: ConnectionRequest, deps: ConnectionHandlerDeps) {
    const upgradeSpan = trace.getSpan(context.active())?.spanContext();
    // no list at all without an upgrade span (the SDK keeps a span's list as given, and may add to it)
    const links: Link[] | undefined = upgradeSpan ? [{ context: upgradeSpan }] : undefined;
    this.conn = new Connection({
      socket,
      pathId: request.params.sessionId,
      userId: request.principal?.sub,
      log: request.log,
      metrics: deps.metrics,
      maxBufferedBytes: deps.maxBufferedBytes,
      handshakeContext: propagation.extract(ROOT_CONTEXT, request.headers),
      links,
    });
    this.socket = socket;
    this.deps = deps;
    this.lastSeq = request.query?.last_seq;
    this.queue = new FrameQueue<QueueItem>(deps.maxQueuedFrames, deps.metrics.queuedFrames);
  }

  start(): void {
    const { conn, socket, deps } = this;
    deps.metrics.connections.inc();
    conn.log.info({ last_seq: this.lastSeq }, 'websocket connected');
    deps.heartbeat?.track(socket, () =>
      conn.log.warn('websocket terminated: the client answered no ping within GATEWAY__WS_CLOSE_TIMEOUT'),
    );
    socket.on('message', (data: Buffer, isBinary: boolean) => this.received(data, isBinary));
    socket.on('close', (code: number) => this.closed(code));
    socket.on('error', (err: Error) => conn.log.warn({ err: { message: err.message } }, 'websocket error'));
    this.run(this.open().then(() => this.drain()));
  }

  private moveTo(next: ConnectionState): void {
    if (!TRANSITIONS[this.state].includes(next)) throw new Error(`websocket connection: no transition from ${this.state} to ${next}`);
    this.state = next;
  }

  /** Refused or closed: nothing the client sends is processed any more. */
  private get done(): boolean {
    return this.state === 'refused' || this.state === 'closed';
  }

  /** A turn or a replay streams to this client: what arrives now waits. */
  private get streaming(): boolean {
    return this.state === 'turn' || this.state === 'replaying';
  }

  /** Work in flight on this connection: awaited by graceful shutdown, its failure logged. */
  private track(work: Promise<void>): Promise<void> {
    const p = work
      .catch((err: unknown) => this.conn.log.error({ err }, 'frame processing failed'))
      .finally(() => this.deps.inFlight.delete(p));
    this.deps.inFlight.add(p);
    return p;
  }

  /** Tracks the opening or a drain; one that failed leaves what waits, so the next drain starts at once. */
  private run(work: Promise<void>): void {
    void this.track(work).finally(() => {
      if (this.state === 'idle' && this.conn.isOpen && (this.queue.length > 0 || this.pendingResume)) this.schedule();
    });
  }

  /**
   * Someone else's session: the socket is closed with 4403 before any frame is read. Then what the
   * client missed (replay) or still has to decide (pending approvals), before any turn frame.
   */
  private async open(): Promise<void> {
    const { conn, socket, deps } = this;
    let exists = true;
    if (!conn.autoSession) {
      try {
        const access = await deps.runtime.access(conn.pathId, conn.userId);
        if (!access.allowed) {
          deps.metrics.wsSessionDenied.inc();
          conn.log.warn('websocket refused: the session belongs to another user');
          socket.close(gatewayErrors.GW_ERR_FORBIDDEN_SESSION.def.closeCode, 'forbidden');
          return this.refuse();
        }
        exists = access.exists;
      } catch (err) {
        conn.log.warn({ err: { message: (err as Error).message } }, 'session access check failed');
        conn.sendControlError(gatewayErrors.GW_ERR_RUNTIME_UNAVAILABLE.code, (err as Error).message);
        socket.close(WS_CLOSE.INTERNAL_ERROR, 'runtime unavailable');
        return this.refuse();
      }
    }
    const lastSeq = this.lastSeq;
    if (lastSeq !== undefined) await this.stream('replaying', () => replayFrames(conn, deps.runtime, deps.metrics, lastSeq));
    else {
      if (exists) await resendPendingApprovals(conn, deps.runtime, deps.metrics);
      if (this.state === 'opening') this.moveTo('idle');
    }
  }

  /** Nothing the client sent is processed. */
  private refuse(): void {
    if (this.state === 'closed') return;
    this.moveTo('refused');
    this.queue.clear();
    this.pendingResume = undefined;
  }

  /** Streams one turn or replay to the client; idle again after it (unless the socket closed meanwhile: it finds out and ends). */
  private async stream(doing: 'turn' | 'replaying', run: () => Promise<void>): Promise<void> {
    if (this.state !== 'closed') this.moveTo(doing);
    try {
      await run();
    } finally {
      if (this.state !== 'closed') this.moveTo('idle');
    }
  }

  /** While idle: a waiting resume first, then the queued frames in order, one at a time. */
  private async drain(): Promise<void> {
    const { conn, deps } = this;
    while (this.state === 'idle' && conn.isOpen) {
      const resume = this.pendingResume;
      if (resume) {
        this.pendingResume = undefined;
        await this.stream('replaying', () => replayFrames(conn, deps.runtime, deps.metrics, resume.last_seq, { frame: resume }));
        continue;
      }
      const item = this.queue.shift();
      if (!item) return;
      if (item.kind === 'error') conn.sendError(item.error.code, item.message);
      else await this.stream('turn', () => runTurn(conn, deps.runtime, deps.metrics, item.frame, item.receivedAt));
    }
  }

  /** Drains what waits when idle; otherwise what streams (or the opening) drains it when it ends. */
  private schedule(): void {
    if (this.state === 'idle') this.run(this.drain());
  }

  private enqueue(item: QueueItem): void {
    if (this.done) return;
    const { conn, deps } = this;
    if (!this.queue.push(item)) {
      deps.metrics.queueFull.inc();
      conn.sendError(
        gatewayErrors.GW_ERR_WS_QUEUE_FULL.code,
        `${gatewayErrors.GW_ERR_WS_QUEUE_FULL.def.message} (at most ${deps.maxQueuedFrames})`,
      );
      return;
    }
    if (this.streaming) deps.metrics.framesQueued.inc();
    this.schedule();
  }

  private control(frame: ControlFrame): void {
    const { conn, deps } = this;
    if (frame.type === 'ping') answerPing(conn, frame);
    else if (frame.type === 'cancel') void this.track(cancelTurn(conn, deps.runtime, deps.metrics, frame));
    else if (deps.isDraining())
      conn.sendControlError(gatewayErrors.GW_ERR_SHUTTING_DOWN.code, gatewayErrors.GW_ERR_SHUTTING_DOWN.def.message);
    else if (!this.done) {
      this.pendingResume = frame;
      this.schedule();
    }
  }

  private received(data: Buffer, isBinary: boolean): void {
    const { conn, deps } = this;
    if (this.socket.readyState !== this.socket.OPEN) return; // closing: nothing more is processed
    if (data.length > deps.maxMessageBytes) {
      deps.metrics.frame('in', 'oversize');
      conn.log.warn({ bytes: data.length, max_bytes: deps.maxMessageBytes }, 'websocket closed: frame over GATEWAY__WS_MAX_MESSAGE_BYTES');
      this.socket.close(WS_CLOSE.MESSAGE_TOO_BIG, 'message too big');
      return;
    }
    const shuttingDown = (): void =>
      conn.sendError(gatewayErrors.GW_ERR_SHUTTING_DOWN.code, gatewayErrors.GW_ERR_SHUTTING_DOWN.def.message);
    if (isBinary) {
      deps.metrics.frame('in', 'binary');
      if (deps.isDraining()) shuttingDown();
      else
        this.enqueue({
          kind: 'error',
          error: gatewayErrors.GW_ERR_WS_BINARY_FRAME,
          message: gatewayErrors.GW_ERR_WS_BINARY_FRAME.def.message,
        });
      return;
    }
    const parsed = parseFrame(data.toString('utf8'));
    deps.metrics.frame('in', parsed.ok ? parsed.frame.type : 'invalid');
    if (parsed.ok && isControlFrame(parsed.frame)) return this.control(parsed.frame);
    // a malformed control frame is answered at once too, as a control answer
    if (!parsed.ok && parsed.type !== undefined && isControlType(parsed.type))
      return conn.sendControlError(parsed.error.code, parsed.message);
    if (deps.isDraining()) return shuttingDown();
    this.enqueue(
      parsed.ok
        ? { kind: 'frame', frame: parsed.frame as TurnFrame, receivedAt: performance.now() }
        : { kind: 'error', error: parsed.error, message: parsed.message },
    );
  }

  private closed(code: number): void {
    const { conn, deps } = this;
    if (this.state !== 'closed') this.moveTo('closed');
    conn.closed.abort();
    this.queue.clear();
    this.pendingResume = undefined;
    deps.metrics.connections.dec();
    deps.metrics.closed(code);
    deps.serviceMetrics.streamDuration.observe(
      { service: deps.serviceMetrics.service, method: 'GET', route: '/api/v1/ws/:sessionId', status_code: '101' },
      (performance.now() - this.opened) / 1000,
    );
    conn.log.info({ code }, 'websocket closed');
  }
}
