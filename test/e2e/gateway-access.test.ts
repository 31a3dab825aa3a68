/**
 * Access control at the gateway, through the real auth service and runtime: forged and wrong
 * tokens are refused on REST and on the WebSocket handshake, scopes are enforced, sessions belong
 * to their creator, and the gateway keeps verifying with its cached keys while auth is down.
 */
import { afterAll, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import { randomUUID } from 'node:crypto';
import { readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { createUser } from '@codelab/auth/users';
import { decodeJwt, decodeProtectedHeader, generateKeyPair, importPKCS8, SignJWT, UnsecuredJWT } from 'jose';
import pg from 'pg';
import { FrameClient, passwordToken, passwordTokens, startStack, type Stack } from '../helpers/stack.ts';

const ISSUER = 'https://auth.codelab.local';
const AUDIENCE = 'codelab-api';

describe('gateway access control', () => {
  let stack: Stack;
  let good: string;
  let kid: string;
  let signingKey: CryptoKey;

  beforeAll(async () => {
    stack = await startStack({ databaseUrl: inject('databaseUrl'), env: { gateway: { GATEWAY__REVOCATION_POLL_INTERVAL: '0.1' } } });
    good = await stack.token();
    kid = decodeProtectedHeader(good).kid!;
    signingKey = await importPKCS8(await readFile(path.join(stack.dataDir, 'auth', 'keys', 'private_key.pem'), 'utf8'), 'RS256');
  });
  afterAll(() => stack?.close());

  const claims = () => {
    const now = Math.floor(Date.now() / 1000);
    const real = decodeJwt(good);
    return {
      sub: real.sub!,
      type: 'access',
      client_id: 'codelab-flutter-app',
      scope: 'api:read api:write',
      iat: now,
      nbf: now,
      exp: now + 600,
      jti: randomUUID(),
    };
  };
  const sign = (payload: Record<string, unknown>, opts: { key?: CryptoKey; kid?: string; iss?: string; aud?: string } = {}) =>
    new SignJWT(payload)
      .setProtectedHeader({ alg: 'RS256', typ: 'JWT', kid: opts.kid ?? kid })
      .setIssuer(opts.iss ?? ISSUER)
      .setAudience(opts.aud ?? AUDIENCE)
      .sign(opts.key ?? signingKey);

  const forged: [string, () => Promise<string>][] = [
    ['alg none', async () => new UnsecuredJWT(claims()).setIssuer(ISSUER).setAudience(AUDIENCE).encode()],
    [
      'HS256 signed with the public key',
      async () => {
        const publicPem = await readFile(path.join(stack.dataDir, 'auth', 'keys', 'public_key.pem'));
        return new SignJWT(claims())
          .setProtectedHeader({ alg: 'HS256', kid })
          .setIssuer(ISSUER)
          .setAudience(AUDIENCE)
          .sign(new Uint8Array(publicPem));
      },
    ],
    ['expired', () => sign({ ...claims(), iat: Math.floor(Date.now() / 1000) - 1000, exp: Math.floor(Date.now() / 1000) - 10 })],
    ['nbf in the future', () => sign({ ...claims(), nbf: Math.floor(Date.now() / 1000) + 600 })],
    ['wrong issuer', () => sign(claims(), { iss: 'https://evil.example' })],
    ['wrong audience', () => sign(claims(), { aud: 'another-api' })],
    ['unknown kid', async () => sign(claims(), { key: (await generateKeyPair('RS256')).privateKey, kid: 'not-a-known-kid' })],
    ['valid kid signed by another key', async () => sign(claims(), { key: (await generateKeyPair('RS256')).privateKey })],
    [
      'tampered payload',
      async () => {
        const [h, , s] = good.split('.');
        const payload = Buffer.from(JSON.stringify({ ...decodeJwt(good), scope: 'api:admin api:read api:write' })).toString('base64url');
        return `${h}.${payload}.${s}`;
      },
    ],
    [
      'refresh token used as access token',
      async () => (await passwordTokens(stack.url.auth, stack.user.username, stack.user.password)).refresh_token,
    ],
    ['no type claim', async () => sign({ ...claims(), type: undefined })],
    ['garbage', async () => 'not.a.jwt'],
  ];

  it.each(forged)('refuses %s on REST with 401', async (_name, make) => {
    const token = await make();
    const res = await fetch(`${stack.url.gateway}/api/v1/sessions`, { headers: { authorization: `Bearer ${token}` } });
    expect(res.status).toBe(401);
    expect(await res.json()).toMatchObject({ error: { code: 'GW_ERR_UNAUTHORIZED' } });
    expect(res.headers.get('www-authenticate')).toContain('error="invalid_token"');
  });

  it.each(forged)('refuses %s on the WebSocket handshake with 401', async (_name, make) => {
    const token = await make();
    const client = new FrameClient(`${stack.url.ws}/api/v1/ws/s-${randomUUID()}`, { authorization: `Bearer ${token}` });
    await expect(client.open()).rejects.toMatchObject({ statusCode: 401 });
  });

  it('accepts a token it signed itself with the real key (the forgeries are not refused for another reason)', async () => {
    const res = await fetch(`${stack.url.gateway}/api/v1/sessions`, { headers: { authorization: `Bearer ${await sign(claims())}` } });
    expect(res.status).toBe(200);
  });

  it('refuses every access token of a revoked lineage (refresh-token reuse) on REST and the WebSocket handshake', async () => {
    const first = await passwordTokens(stack.url.auth, stack.user.username, stack.user.password);
    const refresh = (token: string) =>
      fetch(`${stack.url.auth}/oauth/token`, {
        method: 'POST',
        body: new URLSearchParams({ grant_type: 'refresh_token', client_id: 'codelab-flutter-app', refresh_token: token }),
      });
    const rotated = (await (await refresh(first.refresh_token)).json()) as { access_token: string };
    const rest = (token: string) =>
      fetch(`${stack.url.gateway}/api/v1/sessions`, { headers: { authorization: `Bearer ${token}` } }).then((r) => r.status);
    expect(await rest(first.access_token)).toBe(200);
    expect(await rest(rotated.access_token)).toBe(200);
    expect(decodeJwt(rotated.access_token).sid).toBe(decodeJwt(first.access_token).sid); // one family
    const unrelated = await stack.token(); // another login of the same user: another family

    expect((await refresh(first.refresh_token)).status).toBe(400); // reuse: the lineage is revoked
    const deadline = Date.now() + 5000;
    while ((await rest(rotated.access_token)) !== 401 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(await rest(rotated.access_token)).toBe(401);
    expect(await rest(first.access_token)).toBe(401);
    const ws = new FrameClient(`${stack.url.ws}/api/v1/ws/s-${randomUUID()}`, { authorization: `Bearer ${rotated.access_token}` });
    await expect(ws.open()).rejects.toMatchObject({ statusCode: 401 });
    expect(await rest(unrelated)).toBe(200);
    const metrics = await (await fetch(`${stack.url.gateway}/metrics`)).text();
    expect(metrics).toMatch(/^gateway_jwt_verifications_total\{outcome="revoked"\} [1-9]/m);
  });

  it('closes the open WebSockets of a revoked login with 4401, and only those', async () => {
    const login = await passwordTokens(stack.url.auth, stack.user.username, stack.user.password);
    const other = await stack.token(); // another login of the same user
    const doomed = new FrameClient(`${stack.url.ws}/api/v1/ws/s-${randomUUID()}`, { authorization: `Bearer ${login.access_token}` });
    const kept = new FrameClient(`${stack.url.ws}/api/v1/ws/s-${randomUUID()}`, { authorization: `Bearer ${other}` });
    await doomed.open();
    await kept.open();
    const revoke = await fetch(`${stack.url.auth}/oauth/revoke`, {
      method: 'POST',
      body: new URLSearchParams({ client_id: 'codelab-flutter-app', token: login.refresh_token }),
    });
    expect(revoke.status).toBe(200);
    expect(await doomed.closed()).toBe(4401);
    kept.send({ type: 'ping', timestamp: 1 });
    expect((await kept.until((f) => f.type === 'pong')).at(-1)).toMatchObject({ type: 'pong', timestamp: 1 });
    kept.close();
  });

  it('enforces scopes: api:read may read but not write or converse', async () => {
    const readOnly = await stack.token('api:read');
    const headers = { authorization: `Bearer ${readOnly}` };
    expect((await fetch(`${stack.url.gateway}/api/v1/sessions`, { headers })).status).toBe(200);
    const create = await fetch(`${stack.url.gateway}/api/v1/sessions`, { method: 'POST', headers });
    expect(create.status).toBe(403);
    expect(await create.json()).toMatchObject({ error: { code: 'GW_ERR_INSUFFICIENT_SCOPE' } });
    expect(create.headers.get('www-authenticate')).toContain('error="insufficient_scope", scope="api:write"');
    const ws = new FrameClient(`${stack.url.ws}/api/v1/ws/s-${randomUUID()}`, headers);
    await expect(ws.open()).rejects.toMatchObject({ statusCode: 403 });
    const writeOnly = await sign({ ...claims(), scope: 'api:write' });
    expect((await fetch(`${stack.url.gateway}/api/v1/sessions`, { headers: { authorization: `Bearer ${writeOnly}` } })).status).toBe(403);
  });

  it('keeps sessions to their owner: another user gets 404 on REST and close 4403 on the WebSocket', async () => {
    const other = { username: `other-${randomUUID()}`, password: `pw-${randomUUID()}` };
    const pool = new pg.Pool({ connectionString: inject('databaseUrl'), max: 1 });
    await createUser(pool, { username: other.username, email: `${other.username}@test.local`, password: other.password }).finally(() =>
      pool.end(),
    );
    const otherToken = await passwordToken(stack.url.auth, other.username, other.password);

    const sessionId = `mine-${randomUUID()}`;
    const owner = new FrameClient(`${stack.url.ws}/api/v1/ws/${sessionId}`, { authorization: `Bearer ${good}` });
    await owner.open();
    owner.send({ type: 'user_message', content: 'private thoughts' });
    await owner.until((f) => f.is_final === true);
    owner.close();

    const history = await fetch(`${stack.url.gateway}/api/v1/sessions/${sessionId}/history`, {
      headers: { authorization: `Bearer ${otherToken}` },
    });
    expect(history.status).toBe(404);
    expect(await history.json()).toMatchObject({ error: { code: 'RT_ERR_SESSION_NOT_FOUND' } });
    const list = (await (
      await fetch(`${stack.url.gateway}/api/v1/sessions`, { headers: { authorization: `Bearer ${otherToken}` } })
    ).json()) as { sessions: { id: string }[] };
    expect(list.sessions.map((s) => s.id)).not.toContain(sessionId);

    const intruder = new FrameClient(`${stack.url.ws}/api/v1/ws/${sessionId}`, { authorization: `Bearer ${otherToken}` });
    await intruder.open();
    intruder.send({ type: 'user_message', content: 'let me in' });
    expect(await intruder.closed()).toBe(4403);
    expect(intruder.frames).toEqual([]);
    const mine = (await (
      await fetch(`${stack.url.gateway}/api/v1/sessions/${sessionId}/history`, { headers: { authorization: `Bearer ${good}` } })
    ).json()) as { messages: unknown[] };
    expect(mine.messages).toHaveLength(2);
  });
});

describe('gateway while the auth service is down', () => {
  it('keeps verifying with the cached keys, and answers 503 when it never got any', async () => {
    const stack = await startStack({ databaseUrl: inject('databaseUrl') });
    try {
      const token = await stack.token();
      const auth = { authorization: `Bearer ${token}` };
      expect((await fetch(`${stack.url.gateway}/api/v1/sessions`, { headers: auth })).status).toBe(200); // keys now cached
      await stack.auth.app.close();
      expect((await fetch(`${stack.url.gateway}/api/v1/sessions`, { headers: auth })).status).toBe(200);
      const client = new FrameClient(`${stack.url.ws}/api/v1/ws/s-${randomUUID()}`, auth);
      await client.open();
      client.close();
      // a token with an unknown kid triggers one refetch attempt, which fails: still a clean 401
      const stranger = await new SignJWT({ type: 'access', scope: 'api:read' })
        .setProtectedHeader({ alg: 'RS256', kid: 'unknown' })
        .setSubject('x')
        .setIssuer(ISSUER)
        .setAudience(AUDIENCE)
        .setExpirationTime('5m')
        .sign((await generateKeyPair('RS256')).privateKey);
      expect((await fetch(`${stack.url.gateway}/api/v1/sessions`, { headers: { authorization: `Bearer ${stranger}` } })).status).toBe(401);
      const metrics = await (await fetch(`${stack.url.gateway}/metrics`)).text();
      expect(metrics).toMatch(/^gateway_jwks_refreshes_total\{reason="initial",outcome="ok"\} 1$/m);
      expect(metrics).toMatch(/^gateway_jwks_refreshes_total\{reason="unknown_kid",outcome="error"\} 1$/m);
    } finally {
      await stack.close();
    }

    // A gateway that never reached auth cannot verify anything: 503, not 401.
    const cold = await startStack({
      databaseUrl: inject('databaseUrl'),
      env: { gateway: { GATEWAY__AUTH_SERVICE_URL: 'http://127.0.0.1:9' } },
    });
    try {
      const token = await cold.token();
      const res = await fetch(`${cold.url.gateway}/api/v1/sessions`, { headers: { authorization: `Bearer ${token}` } });
      expect(res.status).toBe(503);
      expect(await res.json()).toMatchObject({ error: { code: 'GW_ERR_AUTH_UNAVAILABLE' } });
    } finally {
      await cold.close();
    }
  });

  it('refetches the JWKS for unknown kids at most once per cool-down', async () => {
    const stack = await startStack({ databaseUrl: inject('databaseUrl'), env: { gateway: { GATEWAY__JWKS_REFETCH_COOLDOWN: '60' } } });
    try {
      const key = (await generateKeyPair('RS256')).privateKey;
      for (let i = 0; i < 5; i++) {
        const t = await new SignJWT({ type: 'access', scope: 'api:read' })
          .setProtectedHeader({ alg: 'RS256', kid: `forged-${i}` })
          .setSubject('x')
          .setIssuer(ISSUER)
          .setAudience(AUDIENCE)
          .setExpirationTime('5m')
          .sign(key);
        expect((await fetch(`${stack.url.gateway}/api/v1/sessions`, { headers: { authorization: `Bearer ${t}` } })).status).toBe(401);
      }
      const metrics = await (await fetch(`${stack.url.gateway}/metrics`)).text();
      const fetches = [...metrics.matchAll(/^gateway_jwks_refreshes_total\{reason="(\w+)",outcome="ok"\} (\d+)$/gm)].map((m) => [
        m[1],
        Number(m[2]),
      ]);
      expect(Object.fromEntries(fetches)).toEqual({ initial: 1, unknown_kid: 1 });
    } finally {
      await stack.close();
    }
  });
});

describe('verified-token cache', () => {
  it('still refuses a cached token once it expires or its key is retired', async () => {
    const stack = await startStack({
      databaseUrl: inject('databaseUrl'),
      env: { gateway: { GATEWAY__JWKS_MAX_AGE: '1', GATEWAY__JWKS_REFETCH_COOLDOWN: '0' } },
    });
    try {
      const key = await importPKCS8(await readFile(path.join(stack.dataDir, 'auth', 'keys', 'private_key.pem'), 'utf8'), 'RS256');
      const kid = decodeProtectedHeader(await stack.token()).kid!;
      const now = Math.floor(Date.now() / 1000);
      const shortLived = await new SignJWT({ type: 'access', scope: 'api:read', client_id: 'codelab-flutter-app' })
        .setProtectedHeader({ alg: 'RS256', kid })
        .setSubject(`user-${randomUUID()}`)
        .setIssuer(ISSUER)
        .setAudience(AUDIENCE)
        .setIssuedAt(now)
        .setExpirationTime(now + 5)
        .sign(key);
      const call = () =>
        fetch(`${stack.url.gateway}/api/v1/sessions`, { headers: { authorization: `Bearer ${shortLived}` } }).then((r) => r.status);
      const expired = () => Date.now() / 1000 >= now + 5;
      // accepted while it is valid (an answer that came back before the expiry), the second time from the cache
      for (const attempt of ['verified', 'from the cache']) {
        const status = await call();
        if (!expired()) expect(status, attempt).toBe(200);
      }
      // refused once it has expired, although it is cached
      await vi.waitFor(() => expect(expired()).toBe(true), { timeout: 30_000, interval: 100 });
      expect(await call()).toBe(401);

      // a token cached under a key that auth stops publishing is refused after the next JWKS refresh
      const token = await stack.token();
      const authed = () =>
        fetch(`${stack.url.gateway}/api/v1/sessions`, { headers: { authorization: `Bearer ${token}` } }).then((r) => r.status);
      expect(await authed()).toBe(200);
      await rm(path.join(stack.dataDir, 'auth', 'keys'), { recursive: true }); // auth starts with a brand-new key
      await stack.restartAuth({});
      await vi.waitFor(async () => expect(await authed()).toBe(401), { timeout: 60_000, interval: 100 });
    } finally {
      await stack.close();
    }
  });
});
