/**
 * buildApp: the auth service from its config. Opens the database (without a URL, the data
 * directory's embedded PGlite, `<data dir>/pg`, shared with the CLI and the runtime) and Redis when
 * configured, applies migrations, loads the signing keys, seeds the admin and the default client,
 * registers the routes and starts the audit retention job. Everything opened here is closed on app
 * close, or at once when a later step fails.
 *
 * The service is created without the internal key: every auth endpoint is public by nature.
 */
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import { migrate, openDatabase, openRedis, pingRedis, createService, type Service } from '@codelab/service-kit';
import { startAuditRetention } from './audit-retention.ts';
import type { AuthConfig } from './config.ts';
import { loadKeyRing } from './keys.ts';
import { createClientIpResolver, createLimiterStore, createLoginGuard, createRateLimiter } from './limits/index.ts';
import { createAuthMetrics } from './metrics.ts';
import { registerJwksRoutes } from './routes/jwks.ts';
import { registerOAuthMetadataRoutes } from './routes/oauth-metadata.ts';
import { registerOAuthRevokeRoutes } from './routes/oauth-revoke.ts';
import { registerOAuthTokenRoutes } from './routes/oauth-token.ts';
import { registerRevokedFamiliesRoutes } from './routes/revoked-families.ts';
import { registerRootRoutes } from './routes/root.ts';
import { seed } from './seed.ts';
import { createTokenLimits } from './token-limits.ts';
import { createTokenVerifier } from './token-verifier.ts';
import { createTokenIssuer } from './tokens.ts';

const MIGRATIONS_DIR = fileURLToPath(new URL('./migrations', import.meta.url));

export interface AuthDeps {
  /** Inject a logger (tests); otherwise the kit creates one. */
  logger?: Logger;
}

export async function buildApp(config: AuthConfig, deps: AuthDeps = {}): Promise<Service> {
  const service = createService({ name: 'auth', ...config, logger: deps.logger });
  const { app, logger, metrics } = service;
  const closers: (() => Promise<void>)[] = [];
  const closeAll = async (): Promise<void> => {
    for (const close of closers.splice(0).reverse()) {
      await close().catch((err: unknown) => logger.warn({ err }, 'error while closing a dependency'));
    }
  };

  try {
    // Without a URL: the data directory's embedded database, shared with the CLI and the runtime.
    const db = await openDatabase({
      service: 'auth',
      url: config.dbUrl,
      urlSetting: 'AUTH_SERVICE__DB_URL',
      dataDir: config.dataDir,
      poolMax: config.dbPoolSize,
      logger,
      metrics,
    });
    closers.push(() => db.close());
    service.addReadinessCheck('postgres', () => db.ping());

    // Brute-force and rate-limit counters: Redis when configured (per-instance memory while it is down).
    const redis = config.redisUrl ? openRedis(config.redisUrl, logger) : null;
    if (redis) closers.push(async () => redis.disconnect());
    const limiterStore = createLimiterStore({ redis, logger, metrics });
    closers.push(async () => limiterStore.close());
    if (redis && config.limitsRequireRedis) {
      service.addReadinessCheck('redis', () => pingRedis(redis));
    }

    await migrate(db, 'auth', MIGRATIONS_DIR, logger);
    const keys = await loadKeyRing({
      privateKeyPath: config.privateKeyPath,
      publicKeyPath: config.publicKeyPath,
      privateKeyPem: config.privateKey,
      publicKeyPem: config.publicKey,
      additionalPublicKeyPaths: config.additionalPublicKeyPaths,
      generate: config.generateKeys ?? config.environment !== 'production',
      logger,
    });
    const createdAt = keys.signingKeyCreatedAt;
    if (createdAt) {
      metrics.gauge({
        name: 'auth_signing_key_age_seconds',
        help: 'Age of the key tokens are signed with (its file time): rotate before it grows too old',
        collect() {
          this.set((Date.now() - createdAt.getTime()) / 1000);
        },
      });
    }
    metrics
      .gauge({ name: 'auth_jwks_keys', help: 'Public keys published in the JWKS (more than one during a rotation)' })
      .set(keys.verificationKeys.length);
    await seed(db, { masterKey: config.masterKey, environment: config.environment, dataDir: config.dataDir, logger });

    const tokens = createTokenIssuer({ keys, issuer: config.jwtIssuer, audience: config.jwtAudience });
    const verifier = createTokenVerifier({ keys, issuer: config.jwtIssuer, audience: config.jwtAudience });
    const authMetrics = createAuthMetrics(metrics);
    registerRootRoutes(app, { version: config.version });
    registerJwksRoutes(app, { keys });
    registerOAuthMetadataRoutes(app, config);
    const guard = createLoginGuard({
      store: limiterStore,
      usernameThreshold: config.bruteForceThreshold,
      ipThreshold: config.bruteForceIpThreshold,
      windowSeconds: config.bruteForceWindow,
      lockoutSeconds: config.bruteForceLockoutDuration,
    });
    const limiter = config.enableRateLimiting
      ? createRateLimiter({ store: limiterStore, endpoint: 'token', limit: config.rateLimitPerIp, windowSeconds: config.rateLimitWindow })
      : undefined;
    const resolveIp = createClientIpResolver(config.trustedProxies);
    await registerOAuthTokenRoutes(app, {
      db,
      tokens,
      verifier,
      metrics: authMetrics,
      config,
      hooks: createTokenLimits({ db, guard, limiter }),
      clientIp: (request) => resolveIp(request.socket.remoteAddress ?? request.ip, request.headers['x-forwarded-for']),
    });
    await registerOAuthRevokeRoutes(app, { db, verifier, metrics: authMetrics });
    registerRevokedFamiliesRoutes(app, { db, internalApiKey: config.internalApiKey });

    const retention = startAuditRetention({
      db,
      retentionDays: config.auditRetentionDays,
      intervalMs: config.auditCleanupInterval * 1000,
      logger,
      onDeleted: (count) => authMetrics.auditRowsDeleted.inc(count),
    });
    closers.push(() => retention.stop());
    app.addHook('onClose', closeAll);
  } catch (err) {
    await closeAll();
    throw err;
  }
  return service;
}
