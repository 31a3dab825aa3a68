/**
 * A gateway that starts before the auth service listens (the launcher starts them together): it
 * waits for auth calmly, at info ("waiting for auth"), retrying with back-off, with no warning
 * unless auth stays away past the start-up window; once auth answers, tokens verify.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import http from 'node:http';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { listen, ServiceMetrics, type Service } from '@codelab/service-kit';
import { capturingLogger, freePort, TEST_INTERNAL_KEY } from '@codelab/service-kit/testing';
import { buildApp } from '../../src/app.ts';
import { JwksCache } from '../../src/auth/jwks-cache.ts';
import { readGatewayConfig } from '../../src/config.ts';
import { createGatewayMetrics } from '../../src/metrics.ts';

/** A stand-in auth service: its JWKS and the revoked token families. */
async function fakeAuth(port: number) {
  const { publicKey, privateKey } = await generateKeyPair('RS256');
  const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'RS256', use: 'sig' };
  const server = http.createServer((req, res) => {
    res.setHeader('content-type', 'application/json');
    if (req.url === '/.well-known/jwks.json') return void res.end(JSON.stringify({ keys: [jwk] }));
    if (req.url === '/internal/revoked-token-families') return void res.end(JSON.stringify({ families: [] }));
    res.statusCode = 404;
    res.end('{}');
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  const token = (): Promise<string> =>
    new SignJWT({ scope: 'api:read api:write', type: 'access', sid: 'family-1' })
      .setProtectedHeader({ alg: 'RS256', kid: 'k1' })
      .setIssuer('https://auth.codelab.local')
      .setAudience('codelab-api')
      .setSubject('user-1')
      .setIssuedAt()
      .setExpirationTime('5m')
      .sign(privateKey);
  return { token, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

/** Warnings and errors about auth (the keys, the revoked logins). */
const levels = (lines: Record<string, unknown>[]) =>
  lines
    .filter((l) => (l.level === 40 || l.level === 50) && /auth|jwks|revoked/i.test(String(l.msg)))
    .map((l) => `${String(l.msg)} ${JSON.stringify(l.err ?? '')}`);

describe('JwksCache.warmUp', () => {
  it('retries an unreachable auth at info within the start-up window, and warns once past it', async () => {
    const { logger, lines } = capturingLogger('info');
    let calls = 0;
    const auth = {
      json: async () => {
        calls++;
        throw new Error('auth is unreachable: connect ECONNREFUSED');
      },
    };
    const metrics = createGatewayMetrics(new ServiceMetrics('gateway'));
    const cache = new JwksCache({ auth: auth as never, metrics, logger: logger as never, startupGraceMs: 300 });
    const warming = cache.warmUp();
    await vi.waitFor(() => expect(calls).toBeGreaterThanOrEqual(2), { timeout: 5000 });
    expect(levels(lines())).toEqual([]);
    expect(lines().some((l) => l.msg === 'waiting for auth: its signing keys cannot be fetched yet' && l.level === 30)).toBe(true);
    await vi.waitFor(
      () =>
        expect(levels(lines())).toEqual([
          expect.stringContaining('auth still unreachable: tokens cannot be verified until it answers (retrying)'),
        ]),
      { timeout: 10_000 },
    );
    const after = calls;
    await vi.waitFor(() => expect(calls).toBeGreaterThan(after + 1), { timeout: 10_000 });
    expect(levels(lines())).toHaveLength(1); // still retrying, quietly
    cache.stop();
    expect(await warming).toBe(false);
  });
});

describe('a gateway started before auth', () => {
  let gateway: Service | undefined;
  let auth: Awaited<ReturnType<typeof fakeAuth>> | undefined;
  afterEach(async () => {
    await gateway?.app.close();
    await auth?.close();
  });

  it('logs that it waits for auth at info, never a warning, and verifies tokens once auth answers', async () => {
    const authPort = await freePort();
    const { logger, lines } = capturingLogger('info');
    gateway = await buildApp(
      readGatewayConfig({
        GATEWAY__INTERNAL_API_KEY: TEST_INTERNAL_KEY,
        GATEWAY__AUTH_SERVICE_URL: `http://127.0.0.1:${authPort}`,
        GATEWAY__AGENT_URL: 'http://127.0.0.1:9',
      }),
      { logger },
    );
    const url = await listen(gateway, { host: '127.0.0.1', port: 0 });
    await vi.waitFor(
      () =>
        expect(lines().filter((l) => l.msg === 'waiting for auth: its signing keys cannot be fetched yet').length).toBeGreaterThanOrEqual(
          2,
        ),
      { timeout: 10_000 },
    );
    auth = await fakeAuth(authPort);
    await vi.waitFor(() => expect(lines().some((l) => l.msg === 'auth reachable: signing keys loaded')).toBe(true), { timeout: 10_000 });
    // verified, then relayed to a runtime that is not there (502): not 401, not 503
    const res = await fetch(`${url}/api/v1/agents`, { headers: { authorization: `Bearer ${await auth.token()}` } });
    expect(res.status).not.toBe(401);
    expect(res.status).not.toBe(503);
    await vi.waitFor(
      () =>
        expect(gateway!.metrics.registry.getSingleMetricAsString('gateway_token_revocation_polls_total')).resolves.toMatch(
          /outcome="ok"\} [1-9]/,
        ),
      { timeout: 10_000 },
    );
    expect(levels(lines())).toEqual([]);
  });
});
