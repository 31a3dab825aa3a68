import { describe, expect, it } from 'vitest';
import { createLocalJWKSet, decodeJwt, jwtVerify, type JSONWebKeySet } from 'jose';
import Fastify from 'fastify';
import { ServiceMetrics } from '@codelab/service-kit';
import { silentLogger } from '@codelab/service-kit/testing';
import { createPublicClient } from '../../src/clients.ts';
import { oauthErrors } from '../../src/errors.ts';
import { loadKeyRing } from '../../src/keys.ts';
import { createAuthMetrics } from '../../src/metrics.ts';
import { registerOAuthTokenRoutes } from '../../src/routes/oauth-token.ts';
import { createTokenVerifier } from '../../src/token-verifier.ts';
import { createTokenIssuer, hashJti } from '../../src/tokens.ts';
import { createUser, type User } from '../../src/users.ts';
import { basicAuth, newClient, uniqueName, useTestApp } from '../helpers.ts';

const CLIENT_ID = 'codelab-flutter-app';
const PASSWORD = 'Correct-Horse-9';

describe('POST /oauth/token', () => {
  const suite = useTestApp();

  async function newUser(opts: { isActive?: boolean } = {}): Promise<User> {
    const username = uniqueName('User');
    const user = await createUser(suite.db, { username, email: `${username}@example.test`, password: PASSWORD, ...opts });
    return user!;
  }

  function token(form: Record<string, string>, headers: Record<string, string> = {}) {
    return suite.app.inject({
      method: 'POST',
      url: '/oauth/token',
      headers: { 'content-type': 'application/x-www-form-urlencoded', 'user-agent': 'vitest-agent', ...headers },
      payload: new URLSearchParams(form).toString(),
    });
  }

  const passwordGrant = (username: string, password = PASSWORD, extra: Record<string, string> = {}) =>
    token({ grant_type: 'password', client_id: CLIENT_ID, username, password, ...extra });

  async function auditRows(username: string) {
    const { rows } = await suite.db.query<{
      event_type: string;
      success: boolean;
      user_id: string | null;
      client_id: string;
      ip_address: string;
      user_agent: string;
      event_data: Record<string, unknown>;
    }>(
      `SELECT event_type, success, user_id, client_id, ip_address, user_agent, event_data FROM audit_logs
        WHERE user_id = (SELECT id FROM users WHERE lower(username) = lower($1)) OR event_data->>'username' = $1 ORDER BY created_at`,
      [username],
    );
    return rows;
  }

  describe('password grant', () => {
    it('issues a token pair that verifies against the JWKS, with every claim', async () => {
      const user = await newUser();
      const res = await passwordGrant(user.username);
      expect(res.statusCode).toBe(200);
      expect(res.headers['cache-control']).toBe('no-store');
      expect(res.headers.pragma).toBe('no-cache');
      const body = res.json<{ access_token: string; refresh_token: string; token_type: string; expires_in: number; scope: string }>();
      expect(body).toEqual({
        access_token: expect.any(String),
        refresh_token: expect.any(String),
        token_type: 'bearer',
        expires_in: 900,
        scope: 'api:read api:write',
      });

      const jwksRes = await suite.app.inject({ method: 'GET', url: '/.well-known/jwks.json' });
      const jwks = jwksRes.json<JSONWebKeySet>();
      const keySet = createLocalJWKSet(jwks);
      const verifyOpts = { issuer: 'https://auth.codelab.local', audience: 'codelab-api', algorithms: ['RS256'] };

      const access = await jwtVerify(body.access_token, keySet, verifyOpts);
      expect(access.protectedHeader).toEqual({ alg: 'RS256', typ: 'JWT', kid: jwks.keys[0]!.kid });
      expect(access.payload).toEqual({
        iss: 'https://auth.codelab.local',
        sub: user.id,
        aud: 'codelab-api',
        exp: access.payload.iat! + 900,
        iat: expect.any(Number),
        nbf: access.payload.iat,
        jti: expect.stringMatching(/^[0-9a-f-]{36}$/),
        type: 'access',
        client_id: CLIENT_ID,
        scope: 'api:read api:write',
        // the token family (one per login), which a revocation lists for verifiers
        sid: expect.stringMatching(/^[0-9a-f-]{36}$/),
      });
      expect(Math.abs(access.payload.iat! - Date.now() / 1000)).toBeLessThan(30);

      const refresh = await jwtVerify(body.refresh_token, keySet, verifyOpts);
      expect(refresh.payload).toMatchObject({ sub: user.id, type: 'refresh', client_id: CLIENT_ID, scope: 'api:read api:write' });
      expect(refresh.payload.exp! - refresh.payload.iat!).toBe(2_592_000);
      expect(refresh.payload.jti).not.toBe(access.payload.jti);
      expect(refresh.payload.sid).toBe(access.payload.sid);

      // Only sha256(jti) of the refresh token is stored.
      const { rows } = await suite.db.query<{
        user_id: string;
        client_id: string;
        scope: string;
        expires_at: Date;
        revoked: boolean;
        parent_jti_hash: string | null;
      }>('SELECT user_id, client_id, scope, expires_at, revoked, parent_jti_hash FROM refresh_tokens WHERE jti_hash = $1', [
        hashJti(refresh.payload.jti!),
      ]);
      expect(rows).toEqual([
        {
          user_id: user.id,
          client_id: CLIENT_ID,
          scope: 'api:read api:write',
          expires_at: new Date(refresh.payload.exp! * 1000),
          revoked: false,
          parent_jti_hash: null,
        },
      ]);
      const { rowCount } = await suite.db.query('SELECT 1 FROM refresh_tokens WHERE jti_hash = $1', [hashJti(access.payload.jti!)]);
      expect(rowCount).toBe(0);

      expect((await suite.db.query('SELECT last_login_at FROM users WHERE id = $1', [user.id])).rows[0]?.last_login_at).toBeInstanceOf(
        Date,
      );
    });

    it('logs in with the username in any case, or with the email', async () => {
      const user = await newUser();
      expect((await passwordGrant(user.username.toUpperCase())).statusCode).toBe(200);
      const byEmail = await passwordGrant(user.email.toUpperCase());
      expect(byEmail.statusCode).toBe(200);
      expect(decodeJwt(byEmail.json<{ access_token: string }>().access_token).sub).toBe(user.id);
    });

    it('grants a requested subset of the allowed scopes, normalized', async () => {
      const user = await newUser();
      const res = await passwordGrant(user.username, PASSWORD, { scope: 'api:write  api:read api:write' });
      expect(res.statusCode).toBe(200);
      expect(res.json<{ scope: string }>().scope).toBe('api:read api:write');
      const narrow = await passwordGrant(user.username, PASSWORD, { scope: 'api:read' });
      expect(decodeJwt(narrow.json<{ access_token: string }>().access_token).scope).toBe('api:read');
    });

    it('answers 400 invalid_scope for a scope the client may not have', async () => {
      const user = await newUser();
      const res = await passwordGrant(user.username, PASSWORD, { scope: 'api:read api:everything' });
      expect(res.statusCode).toBe(400);
      expect(res.json()).toMatchObject({ error: 'invalid_scope' });
    });

    it('writes login_success and login_failed audit rows', async () => {
      const user = await newUser();
      await passwordGrant(user.username, 'wrong');
      await passwordGrant(user.username);
      const rows = await auditRows(user.username);
      expect(rows).toEqual([
        {
          event_type: 'login_failed',
          success: false,
          user_id: user.id,
          client_id: CLIENT_ID,
          ip_address: '127.0.0.1',
          user_agent: 'vitest-agent',
          event_data: { username: user.username, reason: 'wrong_password' },
        },
        {
          event_type: 'login_success',
          success: true,
          user_id: user.id,
          client_id: CLIENT_ID,
          ip_address: '127.0.0.1',
          user_agent: 'vitest-agent',
          event_data: { scope: 'api:read api:write' },
        },
      ]);
      expect(JSON.stringify(rows)).not.toContain(PASSWORD);
    });
  });

  describe('credential failures', () => {
    const INVALID_GRANT = { error: 'invalid_grant', error_description: 'Invalid username or password' };

    it('answers 401 invalid_grant for a wrong password', async () => {
      const user = await newUser();
      const res = await passwordGrant(user.username, 'Correct-Horse-8');
      expect(res.statusCode).toBe(401);
      expect(res.json()).toEqual(INVALID_GRANT);
      expect(res.headers['cache-control']).toBe('no-store');
    });

    it('answers an unknown user exactly like a wrong password, and audits it', async () => {
      const username = uniqueName('ghost');
      const res = await passwordGrant(username);
      expect(res.statusCode).toBe(401);
      expect(res.json()).toEqual(INVALID_GRANT);
      expect(res.headers['www-authenticate']).toBeUndefined();
      expect(await auditRows(username)).toEqual([
        expect.objectContaining({ event_type: 'login_failed', user_id: null, event_data: { username, reason: 'unknown_user' } }),
      ]);
    });

    it('refuses an inactive user with the right password', async () => {
      const user = await newUser({ isActive: false });
      const res = await passwordGrant(user.username);
      expect(res.statusCode).toBe(401);
      expect(res.json()).toEqual(INVALID_GRANT);
    });
  });

  describe('request errors', () => {
    it.each([
      [{ client_id: CLIENT_ID, username: 'a', password: 'b' }, 'Missing required parameter: grant_type'],
      [{ grant_type: 'password', username: 'a', password: 'b' }, 'Missing required parameter: client_id'],
      [{ grant_type: 'password', client_id: '', username: 'a', password: 'b' }, 'Missing required parameter: client_id'],
      [{ grant_type: 'password', client_id: CLIENT_ID, password: 'b' }, 'Missing required parameters: username and password'],
      [{ grant_type: 'password', client_id: CLIENT_ID, username: 'a', password: '' }, 'Missing required parameters: username and password'],
    ])('answers 400 invalid_request for %j', async (form, description) => {
      const res = await token(form);
      expect(res.statusCode).toBe(400);
      expect(res.json()).toEqual({ error: 'invalid_request', error_description: description });
      expect(res.headers['cache-control']).toBe('no-store');
    });

    it('answers 400 invalid_request for a JSON body or no body', async () => {
      const json = await suite.app.inject({
        method: 'POST',
        url: '/oauth/token',
        payload: { grant_type: 'password', client_id: CLIENT_ID },
      });
      expect(json.statusCode).toBe(400);
      expect(json.json()).toEqual({
        error: 'invalid_request',
        error_description: 'Content-Type must be application/x-www-form-urlencoded',
      });
      const empty = await suite.app.inject({ method: 'POST', url: '/oauth/token' });
      expect(empty.statusCode).toBe(400);
      expect(empty.json()).toMatchObject({ error: 'invalid_request' });
    });

    it('answers 400 invalid_request for a repeated parameter', async () => {
      const res = await suite.app.inject({
        method: 'POST',
        url: '/oauth/token',
        headers: { 'content-type': 'application/x-www-form-urlencoded; charset=utf-8' },
        payload: 'grant_type=password&client_id=a&client_id=b',
      });
      expect(res.statusCode).toBe(400);
      expect(res.json()).toEqual({ error: 'invalid_request', error_description: "Parameter 'client_id' must not be repeated" });
    });

    it.each(['implicit', 'authorization_code', 'urn:ietf:params:oauth:grant-type:device_code'])(
      'answers 400 unsupported_grant_type for %s',
      async (grantType) => {
        const res = await token({ grant_type: grantType, client_id: CLIENT_ID });
        expect(res.statusCode).toBe(400);
        expect(res.json()).toEqual({ error: 'unsupported_grant_type', error_description: `Grant type '${grantType}' is not supported` });
      },
    );

    it('answers 401 invalid_client with WWW-Authenticate for an unknown or inactive client', async () => {
      const inactive = uniqueName('inactive-client');
      await createPublicClient(suite.db, {
        clientId: inactive,
        name: 'off',
        allowedScopes: ['api:read'],
        allowedGrantTypes: ['password'],
        isActive: false,
      });
      const user = await newUser();
      for (const clientId of [uniqueName('no-such-client'), inactive]) {
        const res = await passwordGrant(user.username, PASSWORD, { client_id: clientId });
        expect(res.statusCode).toBe(401);
        expect(res.headers['www-authenticate']).toBe('Basic realm="codelab"');
        expect(res.json()).toEqual({ error: 'invalid_client', error_description: 'Client authentication failed' });
      }
    });

    it('answers 400 unauthorized_client when the client may not use the password grant', async () => {
      const clientId = uniqueName('refresh-only');
      await createPublicClient(suite.db, {
        clientId,
        name: 'refresh only',
        allowedScopes: ['api:read'],
        allowedGrantTypes: ['refresh_token'],
      });
      const user = await newUser();
      const res = await passwordGrant(user.username, PASSWORD, { client_id: clientId });
      expect(res.statusCode).toBe(400);
      expect(res.json()).toMatchObject({ error: 'unauthorized_client' });
    });

    it('uses the client lifetimes, else the service defaults', async () => {
      const clientId = uniqueName('short-lived');
      await createPublicClient(suite.db, {
        clientId,
        name: 'short',
        allowedScopes: ['api:read'],
        allowedGrantTypes: ['password'],
        accessTokenLifetime: 60,
      });
      const user = await newUser();
      const res = await passwordGrant(user.username, PASSWORD, { client_id: clientId });
      const body = res.json<{ access_token: string; refresh_token: string; expires_in: number; scope: string }>();
      expect(body).toMatchObject({ expires_in: 60, scope: 'api:read' });
      const refresh = decodeJwt(body.refresh_token);
      expect(refresh.exp! - refresh.iat!).toBe(suite.testApp.config.refreshTokenLifetime);
    });
  });

  describe('metrics', () => {
    it('counts token requests by bounded grant type and outcome', async () => {
      await token({ grant_type: 'something-else', client_id: CLIENT_ID });
      const res = await suite.app.inject({ method: 'GET', url: '/metrics' });
      expect(res.body).toMatch(/^auth_token_requests_total\{grant_type="password",outcome="success"\} [1-9]/m);
      expect(res.body).toMatch(/^auth_token_requests_total\{grant_type="other",outcome="unsupported_grant_type"\} [1-9]/m);
      expect(res.body).toMatch(/^auth_token_issue_duration_seconds_count\{grant_type="password"\} [1-9]/m);
      expect(res.body).not.toContain('something-else');
    });

    it('measures every grant, and exposes the reuse, revocation and audit retention counters from the start', async () => {
      const client = await newClient(suite.db);
      const user = await newUser();
      const auth = { authorization: basicAuth(client.clientId, client.secret!) };
      const login = await token({ grant_type: 'password', username: user.username, password: PASSWORD }, auth);
      await token({ grant_type: 'refresh_token', refresh_token: login.json<{ refresh_token: string }>().refresh_token }, auth);
      await token({ grant_type: 'client_credentials' }, auth);
      const { body } = await suite.app.inject({ method: 'GET', url: '/metrics' });
      for (const grant of ['password', 'refresh_token', 'client_credentials']) {
        expect(body).toMatch(new RegExp(`^auth_token_requests_total\\{grant_type="${grant}",outcome="success"\\} [1-9]`, 'm'));
        expect(body).toMatch(new RegExp(`^auth_token_issue_duration_seconds_count\\{grant_type="${grant}"\\} [1-9]`, 'm'));
        expect(body).toMatch(new RegExp(`^auth_token_requests_total\\{grant_type="${grant}",outcome="invalid_scope"\\} \\d`, 'm'));
      }
      expect(body).toMatch(/^auth_refresh_reuse_detected_total \d+$/m);
      expect(body).toMatch(/^auth_token_revocations_total\{outcome="revoked"\} \d+$/m);
      expect(body).toMatch(/^auth_audit_rows_deleted_total \d+$/m);
      // Bounded labels: no client id, username or address.
      expect(body).not.toContain(client.clientId);
      expect(body).not.toContain(user.username);
    });
  });

  describe('hooks', () => {
    it('calls beforeCredentials first (which may refuse), then afterFailure or afterSuccess with the context', async () => {
      const keys = await loadKeyRing({
        privateKeyPath: suite.testApp.config.privateKeyPath,
        publicKeyPath: suite.testApp.config.publicKeyPath,
        generate: true,
        logger: silentLogger(),
      });
      const { jwtIssuer: issuer, jwtAudience: audience } = suite.testApp.config;
      const calls: string[] = [];
      const hooked = Fastify();
      await registerOAuthTokenRoutes(hooked, {
        db: suite.db,
        tokens: createTokenIssuer({ keys, issuer, audience }),
        verifier: createTokenVerifier({ keys, issuer, audience }),
        metrics: createAuthMetrics(new ServiceMetrics('auth-hooks-test')),
        config: suite.testApp.config,
        clientIp: () => '203.0.113.9',
        hooks: {
          async beforeCredentials(ctx) {
            calls.push(`before ${ctx.grantType} ${ctx.ip}`);
            if (ctx.form.username === 'locked-out') throw oauthErrors.invalid_grant('Too many failed attempts');
          },
          async afterFailure(ctx, error) {
            calls.push(`failure ${error.code} ${ctx.failureReason}`);
          },
          async afterSuccess(ctx) {
            calls.push(`success ${ctx.userId === user.id}`);
          },
        },
      });
      const user = await newUser();
      const post = (form: Record<string, string>) =>
        hooked.inject({
          method: 'POST',
          url: '/oauth/token',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          payload: new URLSearchParams(form).toString(),
        });
      try {
        expect((await post({ grant_type: 'password', client_id: CLIENT_ID, username: 'locked-out', password: 'x' })).statusCode).toBe(400);
        expect((await post({ grant_type: 'password', client_id: CLIENT_ID, username: user.username, password: 'wrong' })).statusCode).toBe(
          401,
        );
        expect((await post({ grant_type: 'password', client_id: CLIENT_ID, username: user.username, password: PASSWORD })).statusCode).toBe(
          200,
        );
        expect(calls).toEqual([
          'before password 203.0.113.9',
          'failure invalid_grant undefined',
          'before password 203.0.113.9',
          'failure invalid_grant wrong_password',
          'before password 203.0.113.9',
          'success true',
        ]);
        const rows = await auditRows(user.username);
        expect(rows.map((r) => r.ip_address)).toEqual(['203.0.113.9', '203.0.113.9']);
      } finally {
        await hooked.close();
      }
    });
  });
});
