import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '@codelab/service-kit';
import { TEST_INTERNAL_KEY } from '@codelab/service-kit/testing';
import { readAuthConfig } from '../src/config.ts';

const base = { AUTH_SERVICE__INTERNAL_API_KEY: TEST_INTERNAL_KEY };

function problemsOf(env: Record<string, string>): readonly string[] {
  try {
    readAuthConfig(env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems;
  }
  throw new Error('expected a ConfigError');
}

describe('readAuthConfig', () => {
  it('applies the upstream defaults', () => {
    const config = readAuthConfig({ ...base, CODELAB_DATA_DIR: '/var/lib/codelab' });
    expect(config).toMatchObject({
      port: 8003,
      environment: 'development',
      dbPoolSize: 5,
      jwtIssuer: 'https://auth.codelab.local',
      jwtAudience: 'codelab-api',
      accessTokenLifetime: 900,
      refreshTokenLifetime: 2_592_000,
      auditRetentionDays: 90,
      auditCleanupInterval: 3600,
      privateKeyPath: path.join('/var/lib/codelab', 'auth', 'keys', 'private_key.pem'),
      publicKeyPath: path.join('/var/lib/codelab', 'auth', 'keys', 'public_key.pem'),
    });
    expect(config.dbUrl).toBeUndefined();
    expect(config.redisUrl).toBeUndefined();
    expect(config.masterKey).toBeUndefined();
    expect(config.publicUrl).toBeUndefined();
    expect(Object.isFrozen(config)).toBe(true);
  });

  it('reads every own setting under the AUTH_SERVICE__ prefix', () => {
    const config = readAuthConfig({
      ...base,
      AUTH_SERVICE__DB_URL: 'postgresql://auth:pw@db:5432/auth_db',
      AUTH_SERVICE__DB_POOL_SIZE: '12',
      AUTH_SERVICE__REDIS_URL: 'rediss://redis:6380/1',
      AUTH_SERVICE__MASTER_KEY: 'm',
      AUTH_SERVICE__JWT_ISSUER: 'https://id.example',
      AUTH_SERVICE__JWT_AUDIENCE: 'aud',
      AUTH_SERVICE__ACCESS_TOKEN_LIFETIME: '60',
      AUTH_SERVICE__REFRESH_TOKEN_LIFETIME: '3600',
      AUTH_SERVICE__PUBLIC_URL: 'https://auth.example.test/',
      AUTH_SERVICE__AUDIT_RETENTION_DAYS: '30',
      AUTH_SERVICE__AUDIT_CLEANUP_INTERVAL: '600',
      AUTH_SERVICE__PRIVATE_KEY_PATH: '/keys/a.pem',
      AUTH_SERVICE__PUBLIC_KEY_PATH: '/keys/b.pem',
      AUTH_SERVICE__ENVIRONMENT: 'production',
    });
    expect(config).toMatchObject({
      dbUrl: 'postgresql://auth:pw@db:5432/auth_db',
      dbPoolSize: 12,
      redisUrl: 'rediss://redis:6380/1',
      masterKey: 'm',
      jwtIssuer: 'https://id.example',
      jwtAudience: 'aud',
      accessTokenLifetime: 60,
      refreshTokenLifetime: 3600,
      publicUrl: 'https://auth.example.test',
      auditRetentionDays: 30,
      auditCleanupInterval: 600,
      privateKeyPath: '/keys/a.pem',
      publicKeyPath: '/keys/b.pem',
      environment: 'production',
    });
  });

  it('rejects a bad port naming AUTH_SERVICE__PORT', () => {
    expect(() => readAuthConfig({ ...base, AUTH_SERVICE__PORT: 'eighty' })).toThrow(ConfigError);
    expect(problemsOf({ ...base, AUTH_SERVICE__PORT: '70000' })).toEqual([
      expect.stringContaining('AUTH_SERVICE__PORT="70000" is invalid'),
    ]);
  });

  it('reports every bad setting at once and never echoes secrets', () => {
    const problems = problemsOf({
      AUTH_SERVICE__DB_URL: 'mysql://root:hunter2@db/auth',
      AUTH_SERVICE__DB_POOL_SIZE: '0',
      AUTH_SERVICE__REDIS_URL: 'http://redis',
    });
    expect(problems).toHaveLength(4);
    expect(problems.join('\n')).toContain('AUTH_SERVICE__INTERNAL_API_KEY is required');
    expect(problems.join('\n')).toContain('AUTH_SERVICE__DB_URL=(value hidden) is invalid');
    expect(problems.join('\n')).toContain('AUTH_SERVICE__DB_POOL_SIZE="0" is invalid');
    expect(problems.join('\n')).toContain('AUTH_SERVICE__REDIS_URL=(value hidden) is invalid');
    expect(problems.join('\n')).not.toContain('hunter2');
  });
});
