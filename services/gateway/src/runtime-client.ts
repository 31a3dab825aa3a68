/**
 * The gateway's side of the gateway → runtime contract: REST calls whose answer is relayed as is
 * (status and JSON body), and the streaming turn call whose SSE body is read chunk by chunk.
 */
import type { FastifyReply } from 'fastify';
import { PeerClient, PeerUnavailableError, type PeerRequest, type ServiceMetrics } from '@codelab/service-kit';
import type { AgentStreamRequest } from '@codelab/protocol';
import { gatewayErrors } from './errors.ts';

export class RuntimeClient {
  private readonly rest: PeerClient;
  private readonly stream: PeerClient;

  constructor(opts: { baseUrl: string; internalApiKey: string; metrics: ServiceMetrics; requestTimeoutMs: number; streamIdleTimeoutMs: number }) {
    const common = { peer: 'runtime', baseUrl: opts.baseUrl, internalApiKey: opts.internalApiKey, metrics: opts.metrics };
    this.rest = new PeerClient({ ...common, headersTimeoutMs: opts.requestTimeoutMs, bodyTimeoutMs: opts.requestTimeoutMs });
    this.stream = new PeerClient({ ...common, headersTimeoutMs: opts.streamIdleTimeoutMs, bodyTimeoutMs: opts.streamIdleTimeoutMs });
  }

  /** Relays a REST call: the runtime's status and body, or 502/504 when it cannot answer. */
  async relay(reply: FastifyReply, req: PeerRequest): Promise<FastifyReply> {
    try {
      const { statusCode, body } = await this.rest.json(req);
      return reply.status(statusCode).send(body);
    } catch (err) {
      throw unavailable(err);
    }
  }

  /** Opens the SSE stream of one turn. */
  async openTurn(body: AgentStreamRequest, signal: AbortSignal) {
    try {
      return await this.stream.request({ method: 'POST', path: '/agent/message/stream', route: '/agent/message/stream', body, signal });
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

export function unavailable(err: unknown): Error {
  if (err instanceof PeerUnavailableError) {
    return err.timeout ? gatewayErrors.GW_ERR_RUNTIME_TIMEOUT(err.message) : gatewayErrors.GW_ERR_RUNTIME_UNAVAILABLE(err.message);
  }
  return err as Error;
}
