import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeJwt, SignJWT } from 'jose';
import type { FastifyInstance } from 'fastify';
import type { Database } from '@codelab/service-kit';
import { silentLogger } from '@codelab/service-kit/testing';
import { loadKeyRing, type KeyRing } from '../../src/keys.ts';
import { hashJti } from '../../src/tokens.ts';
import { setUserActive, type User } from '../../src/users.ts';
import {
  auditRowsOfClient,
  basicAuth,
  buildTestApp,
  newClient,
  newUser,
  openTestDatabase,
  PASSWORD,
  postForm,
  type TestApp,
  type TestClient,
  type TokenBody,
} from '../helpers.ts';

describe('refresh_token grant', () => {
  let testApp: TestApp;
  let app: FastifyInstance;
  let db: Database;
  let keys: KeyRing;

  beforeAll(async () => {
    testApp = await buildTestApp();
    app = testApp.service.app;
    db = await openTestDatabase();
    const { privateKeyPath, publicKeyPath } = testApp.config;
    keys = await loadKeyRing({ privateKeyPath, publicKeyPath, generate: true, logger: silentLogger() });
  });
  afterAll(async () => {
    await db.close();
    await testApp.close();
  });

  /** A public client of its own (so that its audit rows and tokens are the test's alone). */
  const publicClient = (opts: Parameters<typeof newClient>[1] = {}) =>
    newClient(db, { confidential: false, grants: ['password', 'refresh_token'], ...opts });

  async function login(client: TestClient, user?: User, scope?: string): Promise<{ user: User; body: TokenBody }> {
    user ??= await newUser(db);
    const res = await postForm(app, '/oauth/token', {
      grant_type: 'password',
      client_id: client.clientId,
      username: user.username,
      password: PASSWORD,
      ...(scope ? { scope } : {}),
    });
    expect(res.statusCode).toBe(200);
    return { user, body: res.json<TokenBody>() };
  }

  const refresh = (client: TestClient, refreshToken: string, extra: Record<string, string> = {}) =>
    postForm(app, '/oauth/token', { grant_type: 'refresh_token', client_id: client.clientId, refresh_token: refreshToken, ...extra });

  async function rows(userId: string) {
    const { rows } = await db.query<{ jti_hash: string; parent_jti_hash: string | null; revoked: boolean; revoked_at: Date | null }>(
      'SELECT jti_hash, parent_jti_hash, revoked, revoked_at FROM refresh_tokens WHERE user_id = $1 ORDER BY created_at',
      [userId],
    );
    return rows;
  }

  const jtiHashOf = (token: string): string => hashJti(decodeJwt(token).jti!);

  async function metric(name: string): Promise<number> {
    const body = (await app.inject({ method: 'GET', url: '/metrics' })).body;
    const line = body.split('\n').find((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`));
    return Number(line?.split(' ').at(-1) ?? NaN);
  }

  describe('rotation', () => {
    it('issues a new pair, revokes the presented token and records the new one as its child', async () => {
      const client = await publicClient();
      const { user, body: first } = await login(client);
      const res = await refresh(client, first.refresh_token!);
      expect(res.statusCode).toBe(200);
      expect(res.headers['cache-control']).toBe('no-store');
      expect(res.headers.pragma).toBe('no-cache');
      const second = res.json<TokenBody>();
      expect(second).toEqual({
        access_token: expect.any(String),
        refresh_token: expect.any(String),
        token_type: 'bearer',
        expires_in: 900,
        scope: 'api:read api:write',
      });
      expect(second.refresh_token).not.toBe(first.refresh_token);
      expect(decodeJwt(second.access_token)).toMatchObject({
        sub: user.id,
        type: 'access',
        client_id: client.clientId,
        scope: 'api:read api:write',
      });
      expect(decodeJwt(second.refresh_token!)).toMatchObject({ sub: user.id, type: 'refresh', client_id: client.clientId });

      expect(await rows(user.id)).toEqual([
        { jti_hash: jtiHashOf(first.refresh_token!), parent_jti_hash: null, revoked: true, revoked_at: expect.any(Date) },
        { jti_hash: jtiHashOf(second.refresh_token!), parent_jti_hash: jtiHashOf(first.refresh_token!), revoked: false, revoked_at: null },
      ]);
      // The new token rotates in turn.
      expect((await refresh(client, second.refresh_token!)).statusCode).toBe(200);
    });

    it('audits token_refresh with the user, client, address and user agent', async () => {
      const client = await publicClient();
      const { user, body } = await login(client);
      await refresh(client, body.refresh_token!);
      expect((await auditRowsOfClient(db, client.clientId)).at(-1)).toEqual({
        event_type: 'token_refresh',
        success: true,
        user_id: user.id,
        client_id: client.clientId,
        ip_address: '127.0.0.1',
        user_agent: 'vitest-agent',
        event_data: { scope: 'api:read api:write' },
        error_message: null,
      });
    });

    it("uses the client's lifetimes", async () => {
      const client = await publicClient({ accessTokenLifetime: 60, refreshTokenLifetime: 3600 });
      const { body } = await login(client);
      const res = await refresh(client, body.refresh_token!);
      const next = res.json<TokenBody>();
      expect(next.expires_in).toBe(60);
      const claims = decodeJwt(next.refresh_token!);
      expect(claims.exp! - claims.iat!).toBe(3600);
    });

    it('authenticates a confidential client with its secret', async () => {
      const client = await newClient(db);
      const user = await newUser(db);
      const auth = { authorization: basicAuth(client.clientId, client.secret!) };
      const first = await postForm(app, '/oauth/token', { grant_type: 'password', username: user.username, password: PASSWORD }, auth);
      const res = await postForm(
        app,
        '/oauth/token',
        { grant_type: 'refresh_token', refresh_token: first.json<TokenBody>().refresh_token! },
        auth,
      );
      expect(res.statusCode).toBe(200);
      const wrong = await postForm(
        app,
        '/oauth/token',
        { grant_type: 'refresh_token', refresh_token: res.json<TokenBody>().refresh_token! },
        { authorization: basicAuth(client.clientId, 'wrong') },
      );
      expect(wrong.statusCode).toBe(401);
      expect(wrong.json()).toMatchObject({ error: 'invalid_client' });
    });
  });

  describe('scope', () => {
    it('may narrow, then never widen back (the narrowed grant is the new original)', async () => {
      const client = await publicClient();
      const { body } = await login(client);
      const narrowed = await refresh(client, body.refresh_token!, { scope: 'api:read' });
      expect(narrowed.statusCode).toBe(200);
      const next = narrowed.json<TokenBody>();
      expect(next.scope).toBe('api:read');
      expect(decodeJwt(next.access_token).scope).toBe('api:read');

      const widened = await refresh(client, next.refresh_token!, { scope: 'api:read api:write' });
      expect(widened.statusCode).toBe(400);
      expect(widened.json()).toEqual({
        error: 'invalid_scope',
        error_description: 'Scope must be a subset of the original grant: api:read',
      });
      // A refused request does not consume the token.
      const again = await refresh(client, next.refresh_token!);
      expect(again.statusCode).toBe(200);
      expect(again.json<TokenBody>().scope).toBe('api:read');
    });

    it('refuses a scope beyond the original grant with invalid_scope', async () => {
      const client = await publicClient({ scopes: ['api:read', 'api:write', 'api:admin'] });
      const { body } = await login(client, undefined, 'api:read');
      const res = await refresh(client, body.refresh_token!, { scope: 'api:admin' });
      expect(res.statusCode).toBe(400);
      expect(res.json()).toMatchObject({ error: 'invalid_scope' });
    });
  });

  describe('reuse', () => {
    it('revokes the lineage of a rotated token presented again, and only that lineage', async () => {
      const client = await publicClient();
      const { user, body: first } = await login(client);
      const { body: sibling } = await login(client, user); // the same user and client, another login
      const second = (await refresh(client, first.refresh_token!)).json<TokenBody>();
      const third = (await refresh(client, second.refresh_token!)).json<TokenBody>();
      const reuseBefore = await metric('auth_refresh_reuse_detected_total');

      const reuse = await refresh(client, first.refresh_token!);
      expect(reuse.statusCode).toBe(400);
      expect(reuse.json()).toEqual({ error: 'invalid_grant', error_description: 'Refresh token has been revoked (reuse detected)' });
      expect(await metric('auth_refresh_reuse_detected_total')).toBe(reuseBefore + 1);

      // The lineage (first → second → third) is dead, the sibling login lives.
      const state = new Map((await rows(user.id)).map((r) => [r.jti_hash, r.revoked]));
      expect(state.get(jtiHashOf(third.refresh_token!))).toBe(true);
      expect(state.get(jtiHashOf(sibling.refresh_token!))).toBe(false);
      expect((await refresh(client, third.refresh_token!)).json()).toMatchObject({ error: 'invalid_grant' });
      expect((await refresh(client, sibling.refresh_token!)).statusCode).toBe(200);

      const audit = (await auditRowsOfClient(db, client.clientId)).filter((r) => r.event_type === 'refresh_reuse_detected');
      expect(audit[0]).toMatchObject({ success: false, user_id: user.id, client_id: client.clientId, event_data: { revoked_tokens: 1 } });
    });

    it('lets exactly one of 10 concurrent refreshes of one token win, and the losers revoke the lineage', async () => {
      const client = await publicClient();
      const { user, body } = await login(client);
      const results = await Promise.all(Array.from({ length: 10 }, () => refresh(client, body.refresh_token!)));
      const winners = results.filter((r) => r.statusCode === 200);
      expect(winners).toHaveLength(1);
      for (const loser of results.filter((r) => r.statusCode !== 200)) {
        expect(loser.statusCode).toBe(400);
        expect(loser.json()).toEqual({ error: 'invalid_grant', error_description: 'Refresh token has been revoked (reuse detected)' });
      }
      // Deterministic: the losers ran after the winner committed, so its new token is revoked too.
      const winnerToken = winners[0]!.json<TokenBody>().refresh_token!;
      expect((await rows(user.id)).map((r) => r.revoked)).toEqual([true, true]);
      expect((await refresh(client, winnerToken)).statusCode).toBe(400);
      const audit = await auditRowsOfClient(db, client.clientId);
      expect(audit.filter((r) => r.event_type === 'token_refresh' && r.success)).toHaveLength(1);
      expect(audit.filter((r) => r.event_type === 'refresh_reuse_detected')).toHaveLength(9 + 1);
    });
  });

  describe('refusals', () => {
    const sign = (claims: Record<string, unknown>, opts: { issuer?: string; audience?: string; exp?: number; kid?: string } = {}) => {
      const now = Math.floor(Date.now() / 1000);
      return new SignJWT({ type: 'refresh', scope: 'api:read', ...claims })
        .setProtectedHeader({ alg: 'RS256', kid: opts.kid ?? keys.kid })
        .setIssuer(opts.issuer ?? testApp.config.jwtIssuer)
        .setAudience(opts.audience ?? testApp.config.jwtAudience)
        .setSubject(String(claims.sub ?? '00000000-0000-0000-0000-000000000000'))
        .setJti(crypto.randomUUID())
        .setIssuedAt(now - 100)
        .setNotBefore(now - 100)
        .setExpirationTime(opts.exp ?? now + 3600)
        .sign(keys.signingKey);
    };

    it('answers 400 invalid_request without a refresh_token', async () => {
      const client = await publicClient();
      const res = await postForm(app, '/oauth/token', { grant_type: 'refresh_token', client_id: client.clientId });
      expect(res.statusCode).toBe(400);
      expect(res.json()).toEqual({ error: 'invalid_request', error_description: 'Missing required parameter: refresh_token' });
    });

    it('answers 400 invalid_grant for a malformed, forged, expired, foreign or access token', async () => {
      const client = await publicClient();
      const { user, body } = await login(client);
      const claims = { sub: user.id, client_id: client.clientId };
      const [header, payload] = body.refresh_token!.split('.');
      const tampered = `${header}.${Buffer.from(JSON.stringify({ ...decodeJwt(body.refresh_token!), scope: 'api:admin' })).toString('base64url')}.${body.refresh_token!.split('.')[2]}`;
      const cases = {
        garbage: 'not-a-jwt',
        tampered,
        unsigned: `${Buffer.from('{"alg":"none"}').toString('base64url')}.${payload}.`,
        expired: await sign(claims, { exp: Math.floor(Date.now() / 1000) - 10 }),
        wrongIssuer: await sign(claims, { issuer: 'https://evil.example' }),
        wrongAudience: await sign(claims, { audience: 'other-api' }),
        unknownKid: await sign(claims, { kid: 'no-such-key' }),
        accessToken: body.access_token,
      };
      for (const [name, token] of Object.entries(cases)) {
        const res = await refresh(client, token);
        expect(res.statusCode, name).toBe(400);
        expect(res.json(), name).toEqual({ error: 'invalid_grant', error_description: 'Invalid or expired refresh token' });
      }
      // None of these touched the real token.
      expect((await refresh(client, body.refresh_token!)).statusCode).toBe(200);
    });

    it('answers invalid_grant for a valid token whose row does not exist', async () => {
      const client = await publicClient();
      const user = await newUser(db);
      const res = await refresh(client, await sign({ sub: user.id, client_id: client.clientId }));
      expect(res.statusCode).toBe(400);
      expect(res.json()).toEqual({ error: 'invalid_grant', error_description: 'Refresh token not found' });
    });

    it("refuses another client's token without consuming it", async () => {
      const owner = await publicClient();
      const other = await publicClient();
      const { body } = await login(owner);
      const res = await refresh(other, body.refresh_token!);
      expect(res.statusCode).toBe(400);
      expect(res.json()).toEqual({ error: 'invalid_grant', error_description: 'Invalid refresh token' });
      expect((await refresh(owner, body.refresh_token!)).statusCode).toBe(200);
    });

    it('refuses a disabled user without consuming the token', async () => {
      const client = await publicClient();
      const { user, body } = await login(client);
      await setUserActive(db, user.id, false);
      const res = await refresh(client, body.refresh_token!);
      expect(res.statusCode).toBe(400);
      expect(res.json()).toEqual({ error: 'invalid_grant', error_description: 'Invalid refresh token' });
      await setUserActive(db, user.id, true);
      expect((await refresh(client, body.refresh_token!)).statusCode).toBe(200);
      const failed = (await auditRowsOfClient(db, client.clientId)).find((r) => r.event_type === 'token_refresh' && !r.success);
      expect(failed).toMatchObject({ user_id: user.id, event_data: { reason: 'inactive_user' } });
    });

    it('answers 400 unauthorized_client when the client may not refresh', async () => {
      const client = await publicClient({ grants: ['password'] });
      const { body } = await login(client);
      const res = await refresh(client, body.refresh_token!);
      expect(res.statusCode).toBe(400);
      expect(res.json()).toMatchObject({ error: 'unauthorized_client' });
    });
  });
});
