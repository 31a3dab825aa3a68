/**
 * The gateway's side of the gateway → runtime contract: REST calls whose answer is relayed as is
 * (status and JSON body), and the streaming turn call whose SSE body is read chunk by chunk. Every
 * call says whom it is made for (`X-Codelab-User`, the token's `sub`); the runtime scopes sessions
 * to that user.
 */
import type { FastifyReply } from 'fastify';
import {
  isJsonType,
  parseAnswer,
  PeerClient,
  PeerUnavailableError,
  type PeerOptions,
  type PeerRequest,
  type ServiceMetrics,
} from '@codelab/service-kit';
import {
  CALLER_HEADER,
  type AgentStreamRequest,
  type Caller,
  type CancelResult,
  type PendingApprovalList,
  type SessionAccess,
} from '@codelab/protocol';
import { gatewayErrors } from './errors.ts';

/** The authenticated user, or undefined when authentication is off (the protocol's `Caller`). */
export type { Caller };
const callerHeaders = (caller: Caller): Record<string, string> => (caller ? { [CALLER_HEADER]: caller } : {});

export class RuntimeClient {
  private readonly rest: PeerClient;
  private readonly stream: PeerClient;
  /** Longest silence from the runtime during a turn (GATEWAY__AGENT_STREAM_TIMEOUT): also how long a broken turn stream is retried. */
  readonly streamIdleTimeoutMs: number;

  constructor(opts: {
    baseUrl: string;
    internalApiKey: string;
    metrics: ServiceMetrics;
    requestTimeoutMs: number;
    streamIdleTimeoutMs: number;
    streamConnections?: number;
    /** Turn streams per connection over h2c (PeerOptions.h2cStreams); 0 or absent: HTTP/1.1. */
    streamH2cStreams?: number;
    /** Where a runtime that does not speak h2c is reported. */
    log?: PeerOptions['log'];
  }) {
    this.streamIdleTimeoutMs = opts.streamIdleTimeoutMs;
    const common = { peer: 'runtime', baseUrl: opts.baseUrl, internalApiKey: opts.internalApiKey, metrics: opts.metrics };
    this.rest = new PeerClient({ ...common, headersTimeoutMs: opts.requestTimeoutMs, bodyTimeoutMs: opts.requestTimeoutMs });
    // a turn holds its stream (an HTTP/1.1 connection, or one of an h2c connection's streams) until its final frame
    this.stream = new PeerClient({
      ...common,
      headersTimeoutMs: opts.streamIdleTimeoutMs,
      bodyTimeoutMs: opts.streamIdleTimeoutMs,
      connections: opts.streamConnections,
      h2cStreams: opts.streamH2cStreams,
      log: opts.log,
    });
  }

  /**
   * Relays a REST call: the runtime's status and body, or 502/504 when it cannot answer (also when it
   * breaks off its body). A JSON body is sent on as the runtime wrote it, byte for byte (not decoded,
   * parsed and serialized again); anything else is parsed as JSON or answered as ERR_BAD_UPSTREAM_BODY.
   */
  async relay(reply: FastifyReply, caller: Caller, req: PeerRequest): Promise<FastifyReply> {
    let answer: Awaited<ReturnType<PeerClient['bytes']>>;
    try {
      answer = await this.rest.bytes({ ...req, headers: { ...req.headers, ...callerHeaders(caller) } });
    } catch (err) {
      throw unavailable(err);
    }
    const { statusCode, contentType, body } = answer;
    // the bytes as they came: no decoding, and the socket takes them without encoding a string
    if (body.length && isJsonType(contentType)) return reply.status(statusCode).type(contentType!).send(body);
    return reply.status(statusCode).send(parseAnswer(body.toString()));
  }

  /**
   * Opens the SSE stream of one turn. Its `x-codelab-frame-seq` header (FRAME_SEQ_HEADER) is the
   * session's frame number before the turn's first frame: where to follow the frame log from
   * (`frames`) when the stream breaks before the turn's final frame.
   */
  async openTurn(body: AgentStreamRequest, caller: Caller, signal: AbortSignal) {
    try {
      return await this.stream.request({
        method: 'POST',
        path: '/agent/message/stream',
        route: '/agent/message/stream',
        body,
        signal,
        headers: callerHeaders(caller),
      });
    } catch (err) {
      throw unavailable(err);
    }
  }

  /**
   * Opens the SSE replay of a session's frames with a seq greater than `after`, followed by the live
   * frames of its running turn up to that turn's final frame (404 for an unknown or foreign session);
   * with `until`, only the frames up to that number.
   */
  async frames(sessionId: string, after: number, caller: Caller, signal: AbortSignal, until?: number) {
    try {
      return await this.stream.request({
        method: 'GET',
        path: `/sessions/${encodeURIComponent(sessionId)}/frames`,
        route: '/sessions/:id/frames',
        query: until === undefined ? { after } : { after, until },
        signal,
        headers: callerHeaders(caller),
      });
    } catch (err) {
      throw unavailable(err);
    }
  }

  /** Stops the session's running turn, wherever it runs; `cancelled: false` when none was running. */
  async cancel(sessionId: string, caller: Caller, signal?: AbortSignal): Promise<{ statusCode: number; body: CancelResult | undefined }> {
    try {
      return await this.rest.json<CancelResult | undefined>({
        method: 'POST',
        path: `/sessions/${encodeURIComponent(sessionId)}/cancel`,
        route: '/sessions/:id/cancel',
        body: {},
        headers: callerHeaders(caller),
        ...(signal ? { signal } : {}),
      });
    } catch (err) {
      throw unavailable(err);
    }
  }

  /** The session's tool calls waiting for the user's approval (404 for an unknown or foreign session). */
  async pendingApprovals(
    sessionId: string,
    caller: Caller,
    signal?: AbortSignal,
  ): Promise<{ statusCode: number; body: Partial<PendingApprovalList> | undefined }> {
    try {
      return await this.rest.json<Partial<PendingApprovalList> | undefined>({
        method: 'GET',
        path: `/sessions/${encodeURIComponent(sessionId)}/pending-approvals`,
        route: '/sessions/:id/pending-approvals',
        headers: callerHeaders(caller),
        ...(signal ? { signal } : {}),
      });
    } catch (err) {
      throw unavailable(err);
    }
  }

  /** May `caller` use this session id (it is free, or theirs)? */
  async access(sessionId: string, caller: Caller): Promise<SessionAccess> {
    try {
      const { statusCode, body } = await this.rest.json<SessionAccess>({
        method: 'GET',
        path: `/sessions/${encodeURIComponent(sessionId)}/access`,
        route: '/sessions/:id/access',
        headers: callerHeaders(caller),
      });
      if (statusCode !== 200)
        throw gatewayErrors.GW_ERR_RUNTIME_UNAVAILABLE(`the runtime answered ${statusCode} to a session access check`);
      return body;
    } catch (err) {
      throw unavailable(err);
    }
  }

  checkHealth(): Promise<void> {
    return this.rest.checkHealth();
  }

  async close(): Promise<void> {
    await Promise.all([this.rest.close(), this.stream.close()]);
  }
}

function unavailable(err: unknown): Error {
  if (err instanceof PeerUnavailableError) {
    return err.timeout ? gatewayErrors.GW_ERR_RUNTIME_TIMEOUT(err.message) : gatewayErrors.GW_ERR_RUNTIME_UNAVAILABLE(err.message);
  }
  return err as Error;
}
