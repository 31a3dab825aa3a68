/**
 * buildApp: the auth service from its config. Opens the database (embedded PGlite when no URL is
 * set) and Redis when configured, applies migrations, loads the signing keys, seeds the admin and
 * the default client, and registers the routes. Everything opened here is closed on app close, or
 * at once when a later step fails.
 *
 * The service is created without the internal key: every auth endpoint is public by nature.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import { migrate, openDatabase } from '@codelab/service-kit/db';
import { openRedis, pingRedis } from '@codelab/service-kit/redis';
import { createService, type Service } from '@codelab/service-kit/service';
import type { AuthConfig } from './config.ts';
import { loadKeyRing } from './keys.ts';
import { createAuthMetrics } from './metrics.ts';
import { jwksRoutes } from './routes/jwks.ts';
import { oauthTokenRoutes } from './routes/oauth-token.ts';
import { rootRoutes } from './routes/root.ts';
import { seed } from './seed.ts';
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
    const db = await openDatabase({
      service: 'auth',
      url: config.dbUrl,
      embeddedDataDir: path.join(config.dataDir, 'auth', 'pg'),
      poolMax: config.dbPoolSize,
      logger,
      metrics,
    });
    closers.push(() => db.close());
    service.addReadinessCheck('database', () => db.ping());

    if (config.redisUrl) {
      const redis = openRedis(config.redisUrl, logger);
      closers.push(async () => redis.disconnect());
      service.addReadinessCheck('redis', () => pingRedis(redis));
    }

    await migrate(db, 'auth', MIGRATIONS_DIR, logger);
    const keys = await loadKeyRing({
      privateKeyPath: config.privateKeyPath,
      publicKeyPath: config.publicKeyPath,
      environment: config.environment,
      logger,
    });
    await seed(db, { masterKey: config.masterKey, environment: config.environment, dataDir: config.dataDir, logger });

    const tokens = createTokenIssuer({ keys, issuer: config.jwtIssuer, audience: config.jwtAudience });
    await app.register(rootRoutes(config.version));
    await app.register(jwksRoutes(keys));
    await app.register(oauthTokenRoutes({ db, tokens, metrics: createAuthMetrics(metrics), config }));
    app.addHook('onClose', closeAll);
  } catch (err) {
    await closeAll();
    throw err;
  }
  return service;
}
