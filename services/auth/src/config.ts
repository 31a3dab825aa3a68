/**
 * Auth service settings, with the upstream variable names (`AUTH_SERVICE__*`). Imported by main.ts
 * before tracing starts, so it loads only the kit's config module (never fastify).
 */
import path from 'node:path';
import { commonSettings, defineSettings, readConfig, setting } from '@codelab/service-kit/config';

const keyPath = (file: string) => (partial: Record<string, unknown>): string =>
  path.join(String(partial.dataDir), 'auth', 'keys', file);

export const authSettings = defineSettings({
  ...commonSettings({ port: 8003 }),
  /** Unset: an embedded PostgreSQL (PGlite) under `${dataDir}/auth/pg`. */
  dbUrl: setting.url({ protocols: ['postgres:', 'postgresql:'], secret: true }),
  dbPoolSize: setting.int({ min: 1, max: 100, fallback: 5 }),
  /** Only checked by /ready for now (brute-force counters come with a later issue). */
  redisUrl: setting.url({ protocols: ['redis:', 'rediss:'], secret: true }),
  /** Password of the seeded `admin` user, used only when that user is created. */
  masterKey: setting.string({ secret: true }),
  jwtIssuer: setting.string({ fallback: 'https://auth.codelab.local' }),
  jwtAudience: setting.string({ fallback: 'codelab-api' }),
  /** Seconds; the default for clients without their own lifetime. */
  accessTokenLifetime: setting.int({ min: 1, max: 86_400, fallback: 900 }),
  refreshTokenLifetime: setting.int({ min: 1, max: 31_536_000, fallback: 2_592_000 }),
  privateKeyPath: setting.string({ fallback: keyPath('private_key.pem') }),
  publicKeyPath: setting.string({ fallback: keyPath('public_key.pem') }),
});

export function readAuthConfig(env: NodeJS.ProcessEnv = process.env) {
  return readConfig('AUTH_SERVICE', authSettings, env);
}

export type AuthConfig = ReturnType<typeof readAuthConfig>;
