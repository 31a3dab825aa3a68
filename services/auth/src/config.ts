/**
 * Auth service settings, with the upstream variable names (`AUTH_SERVICE__*`). Imported by main.ts
 * before tracing starts, so it loads only the kit's config module (never fastify).
 */
import path from 'node:path';
import { commonSettings, ConfigError, defineSettings, readConfig, setting } from '@codelab/service-kit/boot';
import { createClientIpResolver } from './limits/client-ip.ts';

const keyPath =
  (file: string) =>
  (partial: Record<string, unknown>): string =>
    path.join(String(partial.dataDir), 'auth', 'keys', file);

export const authSettings = defineSettings({
  ...commonSettings({ port: 8003 }),
  /** Browser origins allowed to call it (CORS), e.g. the website's under `npm start`; empty: none (same origin behind nginx). */
  corsOrigins: setting.list({ fallback: [] }),
  /** Unset: the data directory's embedded PostgreSQL (PGlite), `${dataDir}/pg`, shared with the runtime and the CLI. */
  dbUrl: setting.url({ protocols: ['postgres:', 'postgresql:'], secret: true }),
  dbPoolSize: setting.int({ min: 1, max: 100, fallback: 5 }),
  /** Brute-force and rate-limit counters, shared by every instance. Unset (or unreachable): per-instance memory. */
  redisUrl: setting.url({ protocols: ['redis:', 'rediss:'], secret: true }),
  /** Report not-ready while the configured Redis is unreachable (logins keep working either way). */
  limitsRequireRedis: setting.bool({ fallback: false }),
  /** Peers (IPs or CIDRs) whose X-Forwarded-For is believed, e.g. nginx's address. Empty: never. */
  trustedProxies: setting.list({ fallback: [] }),
  /** Failed logins before a username is locked, and before a client address is locked. */
  bruteForceThreshold: setting.int({ min: 1, max: 1000, fallback: 5 }),
  bruteForceIpThreshold: setting.int({ min: 1, max: 10_000, fallback: 10 }),
  /** Seconds: the sliding window failures are counted in, and how long a lock lasts. */
  bruteForceWindow: setting.int({ min: 1, max: 86_400, fallback: 900 }),
  bruteForceLockoutDuration: setting.int({ min: 1, max: 86_400, fallback: 900 }),
  /** Per-address rate limit of POST /oauth/token: requests per window (seconds). */
  enableRateLimiting: setting.bool({ fallback: true }),
  rateLimitPerIp: setting.int({ min: 1, max: 1_000_000, fallback: 30 }),
  rateLimitWindow: setting.int({ min: 1, max: 3600, fallback: 60 }),
  /** Password of the seeded `admin` user, used only when that user is created. */
  masterKey: setting.string({ secret: true }),
  jwtIssuer: setting.string({ fallback: 'https://auth.codelab.local' }),
  jwtAudience: setting.string({ fallback: 'codelab-api' }),
  /** Seconds; the default for clients without their own lifetime. */
  accessTokenLifetime: setting.int({ min: 1, max: 86_400, fallback: 900 }),
  refreshTokenLifetime: setting.int({ min: 1, max: 31_536_000, fallback: 2_592_000 }),
  /**
   * Public base URL of the service (behind nginx: the external one); the RFC 8414 metadata builds
   * its endpoint URLs from it. Unset: `http://127.0.0.1:<port the service listens on>`.
   */
  publicUrl: setting.url(),
  /** Audit rows older than this are deleted. */
  auditRetentionDays: setting.int({ min: 1, max: 36_500, fallback: 90 }),
  /** Seconds between two runs of the audit retention job. */
  auditCleanupInterval: setting.int({ min: 1, max: 604_800, fallback: 3600 }),
  privateKeyPath: setting.string({ fallback: keyPath('private_key.pem') }),
  publicKeyPath: setting.string({ fallback: keyPath('public_key.pem') }),
  /**
   * Generate the signing pair files when both are missing. Unset: outside production only. `true` in
   * production suits a deployment whose key files live on a volume of their own (the Compose stack);
   * several instances starting at once on one volume agree on one pair.
   */
  generateKeys: setting.bool(),
  /** The signing pair as PEM text (production secrets); takes precedence over the files. */
  privateKey: setting.string({ secret: true }),
  publicKey: setting.string(),
  /** Public keys (SPKI PEM files) published and accepted besides the signing key: key rotation. */
  additionalPublicKeyPaths: setting.list({ fallback: [] }),
});

export function readAuthConfig(env: NodeJS.ProcessEnv = process.env) {
  const config = readConfig('AUTH_SERVICE', authSettings, env);
  try {
    createClientIpResolver(config.trustedProxies);
  } catch (err) {
    throw new ConfigError([
      `AUTH_SERVICE__TRUSTED_PROXIES is invalid: ${(err as Error).message}; expected IP addresses or CIDR ranges, comma-separated`,
    ]);
  }
  return config;
}

export type AuthConfig = ReturnType<typeof readAuthConfig>;
