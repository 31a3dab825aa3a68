import { commonSettings, ConfigError, defineSettings, H2C_MAX_STREAMS, readConfig, setting } from '@codelab/service-kit/boot';

export const gatewaySettings = defineSettings({
  ...commonSettings({ port: 8000 }),
  /** Browser origins allowed to call it (CORS), e.g. the website's under `npm start`; empty: none (same origin behind nginx). */
  corsOrigins: setting.list({ fallback: [] }),
  agentUrl: setting.url({ fallback: 'http://127.0.0.1:8001' }),
  authServiceUrl: setting.url({ fallback: 'http://127.0.0.1:8003' }),
  /** Verify JWTs on REST and the WebSocket handshake. `false` is for local development only. */
  useJwtAuth: setting.bool({ fallback: true }),
  jwtIssuer: setting.string({ fallback: 'https://auth.codelab.local' }),
  jwtAudience: setting.string({ fallback: 'codelab-api' }),
  /** Seconds before the cached JWKS is refreshed in the background (it keeps serving if auth is down). */
  jwksMaxAge: setting.number({ min: 1, max: 86_400, fallback: 300 }),
  /** Least seconds between JWKS refetches caused by tokens with an unknown `kid`. */
  jwksRefetchCooldown: setting.number({ min: 0, max: 3600, fallback: 30 }),
  /** Seconds between polls of the auth service's revoked token families (how soon a revoked login stops working). */
  revocationPollInterval: setting.number({ min: 0.05, max: 3600, fallback: 5 }),
  /**
   * Largest inbound WebSocket frame; bigger ones close the connection with 1009: after the frame
   * arrived whole, with a close handshake, for frames up to OVERSIZE_READ_FACTOR times this; bigger
   * ones are cut at their header (which a proxy in front may turn into a reset, 1006).
   */
  wsMaxMessageBytes: setting.int({ min: 1024, max: 64 * 1024 * 1024, fallback: 1024 * 1024 }),
  /** Bytes waiting to be sent to one client before it is dropped as a slow reader (close 4008). */
  wsMaxBufferedBytes: setting.int({ min: 1024, max: 1024 * 1024 * 1024, fallback: 4 * 1024 * 1024 }),
  /** Frames waiting behind a running turn on one connection before new ones are refused. */
  wsMaxQueuedFrames: setting.int({ min: 1, max: 1000, fallback: 32 }),
  /** Seconds between protocol-level pings to a WebSocket client that has been silent (upstream name); 0 turns them off. */
  wsHeartbeatInterval: setting.number({ min: 0, max: 3600, fallback: 20 }),
  /** Seconds a pinged WebSocket client has to answer (a pong, or any frame) before it is dropped as dead. */
  wsCloseTimeout: setting.number({ min: 0.05, max: 3600, fallback: 20 }),
  /** Longest silence from the runtime during a turn (seconds; the runtime sends keep-alives). */
  agentStreamTimeout: setting.number({ min: 1, max: 3600, fallback: 60 }),
  /** Connections to the runtime for turn streams (with AGENT_STREAM_H2C_STREAMS: their product bounds the turns in flight). */
  agentStreamConnections: setting.int({ min: 1, max: 65_536, fallback: 1024 }),
  /**
   * Turn streams one connection to the runtime carries at once, over HTTP/2 without TLS (h2c): the
   * frames of the streams sharing it leave and arrive in one socket write and read. 0: HTTP/1.1, a
   * connection per turn.
   */
  agentStreamH2cStreams: setting.int({ min: 0, max: H2C_MAX_STREAMS, fallback: 32 }),
  /** Timeout of proxied REST calls (seconds). */
  requestTimeout: setting.number({ min: 1, max: 300, fallback: 30 }),
});

export function readGatewayConfig(env: NodeJS.ProcessEnv = process.env) {
  const config = readConfig('GATEWAY', gatewaySettings, env);
  if (!config.useJwtAuth && config.environment === 'production') {
    throw new ConfigError(['GATEWAY__USE_JWT_AUTH=false is refused when GATEWAY__ENVIRONMENT=production: expected true']);
  }
  return config;
}

export type GatewayConfig = ReturnType<typeof readGatewayConfig>;
