/**
 * GET /api/v1/ws/:sessionId[?last_seq=N]: the IDE's WebSocket (a JWT with `api:write`, which may
 * come as `?access_token=`), one connection-handler.ts per socket. Turns still running when
 * shutdown starts get the grace period to finish; then every WebSocket is closed with 1001 (going
 * away) so clients reconnect elsewhere.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import websocket from '@fastify/websocket';
import type { FastifyInstance } from 'fastify';
import type { Service } from '@codelab/service-kit';
import { SESSION_ID_PATTERN, WS_CLOSE } from '@codelab/protocol';
import type { createAuthenticate } from '../auth/authenticate.ts';
import type { GatewayConfig } from '../config.ts';
import type { GatewayMetrics } from '../metrics.ts';
import type { RuntimeClient } from '../runtime-client.ts';
import { handleConnection } from './connection-handler.ts';
import { Heartbeat } from './heartbeat.ts';
import type { OpenLogins } from './open-logins.ts';
import { releaseUpgrade } from './upgrade.ts';

/** How many times GATEWAY__WS_MAX_MESSAGE_BYTES a frame may be to be read whole before its 1009. */
const OVERSIZE_READ_FACTOR = 4;

export interface WebSocketRouteDeps {
  config: Pick<
    GatewayConfig,
    'wsMaxMessageBytes' | 'wsMaxQueuedFrames' | 'wsMaxBufferedBytes' | 'wsHeartbeatInterval' | 'wsCloseTimeout' | 'shutdownGraceSeconds'
  >;
  /** Its metrics, and the draining state graceful shutdown starts. */
  service: Service;
  runtime: RuntimeClient;
  metrics: GatewayMetrics;
  authenticate: ReturnType<typeof createAuthenticate>;
  openLogins: OpenLogins;
}

export async function registerWebSocketRoute(
  app: FastifyInstance,
  { config, service, runtime, metrics, authenticate, openLogins }: WebSocketRouteDeps,
): Promise<void> {
  const inFlight = new Set<Promise<void>>();
  const heartbeat = new Heartbeat({ intervalMs: config.wsHeartbeatInterval * 1000, timeoutMs: config.wsCloseTimeout * 1000, metrics });
  app.addHook('onClose', async () => heartbeat.stop());
  // one for every connection
  const connectionDeps = {
    runtime,
    metrics,
    serviceMetrics: service.metrics,
    maxQueuedFrames: config.wsMaxQueuedFrames,
    maxBufferedBytes: config.wsMaxBufferedBytes,
    maxMessageBytes: config.wsMaxMessageBytes,
    isDraining: () => service.draining,
    inFlight,
    heartbeat,
  };
  await app.register(websocket, {
    // frames over the limit are read whole up to OVERSIZE_READ_FACTOR times it, then closed with
    // 1009 after a close handshake (connection-handler.ts): ws's own maxPayload check closes as
    // soon as a frame's header arrives, while the client still sends it, and nginx in front then
    // resets the client's connection (1006 instead of 1009, about one time in five)
    options: { maxPayload: config.wsMaxMessageBytes * OVERSIZE_READ_FACTOR },
    preClose: async function closeWebSockets() {
      service.startDraining();
      const graceMs = Math.max(0, config.shutdownGraceSeconds * 1000 - 250);
      await Promise.race([Promise.allSettled([...inFlight]), sleep(graceMs, undefined, { ref: false })]);
      for (const client of app.websocketServer.clients) client.close(WS_CLOSE.GOING_AWAY, 'server shutting down');
    },
  });
  app.get<{ Params: { sessionId: string }; Querystring: { last_seq?: number } }>(
    '/api/v1/ws/:sessionId',
    {
      websocket: true,
      config: { streaming: true },
      preValidation: authenticate({ scope: 'api:write', allowQueryToken: true }),
      schema: {
        params: { type: 'object', required: ['sessionId'], properties: { sessionId: { type: 'string', pattern: SESSION_ID_PATTERN } } },
        // ?last_seq=N: replay the session's frames after N before anything else (resume)
        querystring: { type: 'object', properties: { last_seq: { type: 'integer', minimum: 0 } } },
      },
    },
    (socket, request) => {
      // an idle connection keeps nothing of its upgrade request but what it reads here
      releaseUpgrade(socket, request);
      openLogins.track(socket, request.principal?.familyId);
      handleConnection(socket, request, connectionDeps);
    },
  );
}
