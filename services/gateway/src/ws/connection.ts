/**
 * One IDE WebSocket as the frame handlers see it: which session it talks about (the path id; for a
 * `new_…` path id, upstream's auto-session, none until the runtime names the session it created),
 * whom for, and the one way frames leave, `send`: it drops a client that reads too slowly (4008),
 * counts frames and remembers their seq. Turn frames carry the runtime's `seq`; what the gateway
 * says itself has none (errors in place of a turn frame end it with `is_final: true`, control
 * answers never claim `is_final: true`). Spans of the connection's frames start here too.
 */
import type { FastifyBaseLogger } from 'fastify';
import type { WebSocket } from 'ws';
import { ROOT_CONTEXT, SpanKind, propagation, trace, type Attributes, type Context, type Link, type Span } from '@opentelemetry/api';
import { withoutNulls, type FrameTraceContext, type StreamChunk } from '@codelab/protocol';
import { startSpan } from '@codelab/service-kit';
import { gatewayErrors } from '../errors.ts';
import type { GatewayMetrics } from '../metrics.ts';
import type { Caller } from '../runtime-client.ts';
import { DeliveredSeqs } from './delivered-seqs.ts';

const tracer = trace.getTracer('codelab-gateway');

/** Path ids with this prefix are temporary: the first turn creates the session (upstream auto-session). */
const AUTO_SESSION_PREFIX = 'new_';

export class Connection {
  /** The id in the WebSocket path. */
  readonly pathId: string;
  readonly userId: Caller;
  /** The path id is `new_…`: turns ask the runtime to create the session until it has named it. */
  readonly autoSession: boolean;
  /** Aborted when the socket closes: every runtime call of the connection is abandoned. */
  readonly closed = new AbortController();
  readonly delivered = new DeliveredSeqs();
  /**
   * The highest frame number the client is known to have: the last numbered frame sent on this
   * connection, or the `last_seq` it stated (URL or `resume` frame); undefined while it has neither
   * (a client that asked for no history). A turn whose stream starts above it fills the gap first.
   */
  knownSeq: number | undefined;
  private realId: string | undefined;
  /** The upgrade request's logger (its id, trace ids); `log` adds the session. */
  private readonly baseLog: FastifyBaseLogger;
  private readonly socket: WebSocket;
  private readonly metrics: GatewayMetrics;
  private readonly maxBufferedBytes: number;
  private readonly handshakeContext: Context;
  /** To the upgrade request's span; none when it had none. */
  private readonly links: Link[] | undefined;

  constructor(opts: {
    socket: WebSocket;
    pathId: string;
    userId: Caller;
    log: FastifyBaseLogger;
    metrics: GatewayMetrics;
    maxBufferedBytes: number;
    handshakeContext: Context;
    links: Link[] | undefined;
  }) {
    this.socket = opts.socket;
    // the path id is a slice of the request's URL, which would stay with it (with an ?access_token=)
    this.pathId = ownString(opts.pathId);
    this.userId = opts.userId;
    this.autoSession = this.pathId.startsWith(AUTO_SESSION_PREFIX);
    this.realId = this.autoSession ? undefined : this.pathId;
    this.baseLog = opts.log;
    this.metrics = opts.metrics;
    this.maxBufferedBytes = opts.maxBufferedBytes;
    this.handshakeContext = opts.handshakeContext;
    this.links = opts.links;
  }

  /** The session's id at the runtime; undefined for a `new_…` path id until its first turn created it. */
  get sessionId(): string | undefined {
    return this.realId;
  }

  /**
   * The connection's logger: the upgrade request's, with `session_id` (and `path_session_id` once a
   * `new_…` path id is named). Made when a line is written, not kept: a pino child per idle
   * connection costs more memory than the few lines a connection writes cost time.
   */
  get log(): FastifyBaseLogger {
    return this.baseLog.child(
      this.autoSession && this.realId !== undefined
        ? { session_id: this.realId, path_session_id: this.pathId }
        : { session_id: this.pathId },
    );
  }

  /** A `session_info` chunk named the session the runtime created for this `new_…` path id. */
  adopt(sessionId: string): void {
    this.realId = sessionId;
    this.log.info('session created for the new_ path id');
  }

  get isOpen(): boolean {
    return this.socket.readyState === this.socket.OPEN && !this.closed.signal.aborted;
  }

  /** Sends a frame; `raw` is the runtime's chunk JSON, forwarded as is (the runtime never writes null fields). */
  send(chunk: StreamChunk, raw?: string): void {
    if (this.socket.readyState !== this.socket.OPEN) return;
    // A client that does not read must not make the gateway buffer without bound.
    if (this.socket.bufferedAmount > this.maxBufferedBytes) {
      this.metrics.slowReaderDrops.inc();
      this.log.warn({ buffered_bytes: this.socket.bufferedAmount }, 'websocket closed: the client reads too slowly');
      this.socket.close(gatewayErrors.GW_ERR_WS_SLOW_READER.def.closeCode!, 'slow reader');
      this.closed.abort();
      return;
    }
    this.socket.send(raw ?? JSON.stringify(withoutNulls(chunk)));
    this.metrics.frame('out', chunk.type);
    if (typeof chunk.seq === 'number') {
      this.delivered.add(chunk.seq);
      this.knows(chunk.seq);
    }
  }

  /** The client has the session's frames up to `seq` (it said so, or was sent them). */
  knows(seq: number): void {
    if (this.knownSeq === undefined || seq > this.knownSeq) this.knownSeq = seq;
  }

  /**
   * An error standing for a turn frame the gateway could not run (bad frame, full queue, runtime
   * refused or out of reach): no seq, `is_final: true`, it is that frame's answer.
   */
  sendError(code: string, message: string): void {
    this.send({ type: 'error', content: message, error: message, code, is_final: true });
  }

  /** An error answering a control frame (cancel, resume) or the connection itself: no seq, and it ends no turn. */
  sendControlError(code: string, message: string): void {
    this.send({ type: 'error', content: message, error: message, code, is_final: false });
  }

  /** The span of an inbound frame, `ws.message <type>`: parent of the runtime calls it causes. */
  frameSpan(frame: FrameTraceContext & { type: string }): { span: Span; ctx: Context } {
    return this.startSpan(`ws.message ${frame.type}`, frame, { 'ws.message.type': frame.type, 'network.io.direction': 'receive' });
  }

  /**
   * A span of the connection's work: it continues the frame's `traceparent`, else the handshake's,
   * else starts a new trace linked to the upgrade request.
   */
  startSpan(name: string, frame?: FrameTraceContext, attributes: Attributes = {}): { span: Span; ctx: Context } {
    const parent =
      frame?.traceparent !== undefined
        ? propagation.extract(ROOT_CONTEXT, {
            traceparent: frame.traceparent,
            ...(frame.tracestate ? { tracestate: frame.tracestate } : {}),
          })
        : this.handshakeContext;
    const span = startSpan(
      tracer,
      name,
      { kind: SpanKind.SERVER, links: this.links },
      () => ({ 'codelab.session.id': this.realId ?? this.pathId, ...attributes }),
      parent,
    );
    return { span, ctx: trace.setSpan(parent, span) };
  }
}

/**
 * A copy of `s` that shares no memory with the string it was cut from (V8 keeps a substring of 13
 * characters or more as a slice of its parent, which then lives as long as the slice).
 */
function ownString(s: string): string {
  return s.length < 13 ? s : Buffer.from(s, 'utf8').toString('utf8');
}
