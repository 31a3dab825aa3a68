/**
 * Gateway: the public edge for IDEs. REST `/api/v1/*` relayed to the runtime and the WebSocket
 * `/api/v1/ws/:sessionId` that streams turns; every call is authenticated with a JWT from the
 * auth service (verified against its JWKS) unless auth is turned off for local development.
 */
import type { Logger } from 'pino';
import { createService, PeerClient, type Service } from '@codelab/service-kit';
import { createAuthenticate } from './auth/authenticate.ts';
import { JwksCache } from './auth/jwks-cache.ts';
import { createJwtVerifier, type JwtVerifier } from './auth/jwt-verifier.ts';
import { RevokedFamilies } from './auth/revoked-families.ts';
import type { GatewayConfig } from './config.ts';
import { createGatewayMetrics } from './metrics.ts';
import { RuntimeClient } from './runtime-client.ts';
import { registerAgentRoutes } from './routes/agents.ts';
import { registerEventRoutes } from './routes/events.ts';
import { registerHealthRoutes } from './routes/health.ts';
import { registerOpenApi } from './routes/openapi.ts';
import { registerSessionRoutes } from './routes/sessions.ts';
import { OpenLogins } from './ws/open-logins.ts';
import { registerWebSocketRoute } from './ws/websocket-route.ts';

/** How long auth may be unreachable at start-up before the gateway warns about it. */
const JWKS_STARTUP_GRACE_MS = 30_000;

export async function buildApp(config: GatewayConfig, deps: { logger?: Logger } = {}): Promise<Service> {
  const service = createService({ name: 'gateway', ...config, logger: deps.logger });
  const { app, logger } = service;
  const metrics = createGatewayMetrics(service.metrics);
  const runtime = new RuntimeClient({
    baseUrl: config.agentUrl,
    internalApiKey: config.internalApiKey,
    metrics: service.metrics,
    requestTimeoutMs: config.requestTimeout * 1000,
    streamIdleTimeoutMs: config.agentStreamTimeout * 1000,
    streamConnections: config.agentStreamConnections,
    streamH2cStreams: config.agentStreamH2cStreams,
    log: logger,
  });
  app.addHook('onClose', () => runtime.close());
  service.addReadinessCheck('runtime', () => runtime.checkHealth());

  let verifier: JwtVerifier | undefined;
  const openLogins = new OpenLogins();
  if (config.useJwtAuth) {
    const auth = new PeerClient({
      peer: 'auth',
      baseUrl: config.authServiceUrl,
      metrics: service.metrics,
      headersTimeoutMs: 2000,
      bodyTimeoutMs: 2000,
    });
    app.addHook('onClose', () => auth.close());
    const jwks = new JwksCache({
      auth,
      metrics,
      logger,
      startupGraceMs: JWKS_STARTUP_GRACE_MS,
      maxAgeMs: config.jwksMaxAge * 1000,
      unknownKidCooldownMs: config.jwksRefetchCooldown * 1000,
    });
    const revoked = new RevokedFamilies({
      auth,
      internalApiKey: config.internalApiKey,
      intervalMs: config.revocationPollInterval * 1000,
      metrics,
      logger,
    });
    revoked.onUpdate((isRevoked) => {
      const closed = openLogins.closeRevoked(isRevoked);
      if (closed > 0) logger.info({ closed }, 'websockets of revoked logins closed (4401)');
    });
    // Auth may start alongside the gateway: the keys are fetched at once and retried calmly while
    // it comes up (jwks-cache.ts); polling the revoked logins starts once auth answered, or once
    // the wait became a warning (its own failures are warnings then).
    let closing = false;
    let polling = false;
    const startRevocationPolls = (): void => {
      if (closing || polling) return;
      polling = true;
      revoked.start();
    };
    const warm = jwks.warmUp();
    void warm.then(startRevocationPolls);
    setTimeout(startRevocationPolls, JWKS_STARTUP_GRACE_MS).unref();
    app.addHook('onClose', async () => {
      closing = true;
      jwks.stop();
      revoked.stop();
      await warm;
    });
    verifier = createJwtVerifier({ jwks, issuer: config.jwtIssuer, audience: config.jwtAudience, revoked });
    service.addReadinessCheck('auth', async () => {
      const { statusCode, body } = await auth.json<{ keys?: unknown[] }>({
        method: 'GET',
        path: '/.well-known/jwks.json',
        route: '/.well-known/jwks.json',
      });
      if (statusCode !== 200 || !body?.keys?.length) throw new Error(`JWKS answered ${statusCode} with ${body?.keys?.length ?? 0} keys`);
    });
  } else {
    logger.warn(
      'GATEWAY__USE_JWT_AUTH=false: AUTHENTICATION IS OFF. Anyone who can reach this gateway can use it, as any user. Never run like this outside local development.',
    );
  }
  const authenticate = createAuthenticate(verifier, metrics);
  app.decorateRequest('principal', undefined);

  // Before every route: the OpenAPI document (GET /openapi.json) learns the routes as they are added.
  await registerOpenApi(app, { version: config.version });
  registerHealthRoutes(app, { version: config.version });
  registerSessionRoutes(app, { runtime, authenticate });
  registerAgentRoutes(app, { runtime, authenticate });
  registerEventRoutes(app, { runtime, authenticate });
  await registerWebSocketRoute(app, { config, service, runtime, metrics, authenticate, openLogins });
  return service;
}
