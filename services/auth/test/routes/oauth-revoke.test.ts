import { describe, expect, it } from 'vitest';
import { decodeJwt } from 'jose';
import { hashJti } from '../../src/tokens.ts';
import {
  auditRowsOfClient,
  basicAuth,
  newClient,
  newUser,
  PASSWORD,
  postForm,
  type TestClient,
  type TokenBody,
  useTestApp,
} from '../helpers.ts';

describe('POST /oauth/revoke', () => {
  const suite = useTestApp();

  const publicClient = () => newClient(suite.db, { confidential: false, grants: ['password', 'refresh_token'] });

  async function login(client: TestClient): Promise<{ userId: string; body: TokenBody }> {
    const user = await newUser(suite.db);
    const res = await postForm(suite.app, '/oauth/token', {
      grant_type: 'password',
      client_id: client.clientId,
      username: user.username,
      password: PASSWORD,
    });
    return { userId: user.id, body: res.json<TokenBody>() };
  }
  const refresh = (client: TestClient, token: string) =>
    postForm(suite.app, '/oauth/token', { grant_type: 'refresh_token', client_id: client.clientId, refresh_token: token });
  const revoke = (form: Record<string, string>, headers: Record<string, string> = {}) =>
    postForm(suite.app, '/oauth/revoke', form, headers);
  const revoked = async (token: string) =>
    (await suite.db.query<{ revoked: boolean }>('SELECT revoked FROM refresh_tokens WHERE jti_hash = $1', [hashJti(decodeJwt(token).jti!)]))
      .rows[0]?.revoked;

  async function revocationMetric(outcome: string): Promise<number> {
    const body = (await suite.app.inject({ method: 'GET', url: '/metrics' })).body;
    return Number(new RegExp(`^auth_token_revocations_total\\{outcome="${outcome}"\\} (\\d+)`, 'm').exec(body)?.[1] ?? NaN);
  }

  it('revokes a refresh token and its descendants, answers 200 with no body, and audits it', async () => {
    const client = await publicClient();
    const { userId, body: first } = await login(client);
    const { body: other } = await login(client);
    const second = (await refresh(client, first.refresh_token!)).json<TokenBody>();
    const before = await revocationMetric('revoked');

    // Revoking the rotated parent reaches the live child.
    const res = await revoke({ token: first.refresh_token!, token_type_hint: 'refresh_token', client_id: client.clientId });
    expect(res.statusCode).toBe(200);
    expect(res.body).toBe('');
    expect(res.headers['cache-control']).toBe('no-store');
    expect(await revoked(second.refresh_token!)).toBe(true);
    expect((await refresh(client, second.refresh_token!)).statusCode).toBe(400);
    // Another login of the same client is untouched.
    expect(await revoked(other.refresh_token!)).toBe(false);
    expect(await revocationMetric('revoked')).toBe(before + 1);

    expect((await auditRowsOfClient(suite.db, client.clientId)).filter((r) => r.event_type === 'token_revoked')).toEqual([
      {
        event_type: 'token_revoked',
        success: true,
        user_id: userId,
        client_id: client.clientId,
        ip_address: '127.0.0.1',
        user_agent: 'vitest-agent',
        event_data: { token_type: 'refresh_token', revoked_tokens: 1 },
        error_message: null,
      },
    ]);
  });

  it('ignores a wrong token_type_hint', async () => {
    const client = await publicClient();
    const { body } = await login(client);
    const res = await revoke({ token: body.refresh_token!, token_type_hint: 'access_token', client_id: client.clientId });
    expect(res.statusCode).toBe(200);
    expect(await revoked(body.refresh_token!)).toBe(true);
  });

  it('answers 200 for an invalid, unknown or expired token and does nothing (RFC 7009 §2.2)', async () => {
    const client = await publicClient();
    const before = await revocationMetric('unknown_token');
    for (const token of ['not-a-token', 'a.b.c']) {
      const res = await revoke({ token, client_id: client.clientId });
      expect(res.statusCode).toBe(200);
    }
    expect(await revocationMetric('unknown_token')).toBe(before + 2);
  });

  it('answers 400 unsupported_token_type for an access token, which stays valid until it expires', async () => {
    const client = await publicClient();
    const { body } = await login(client);
    const res = await revoke({ token: body.access_token, client_id: client.clientId });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toEqual({
      error: 'unsupported_token_type',
      error_description: 'Access tokens cannot be revoked: they expire after their lifetime; revoke the refresh token',
    });
  });

  it("refuses another client's token with invalid_grant and does not revoke it (RFC 7009 §2.1)", async () => {
    const owner = await publicClient();
    const other = await publicClient();
    const { body } = await login(owner);
    const res = await revoke({ token: body.refresh_token!, client_id: other.clientId });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toEqual({ error: 'invalid_grant', error_description: 'The token was issued to another client' });
    expect(await revoked(body.refresh_token!)).toBe(false);
  });

  it('authenticates confidential clients: Basic and post accepted, a wrong or missing secret is 401', async () => {
    const client = await newClient(suite.db);
    const user = await newUser(suite.db);
    const auth = { authorization: basicAuth(client.clientId, client.secret!) };
    const login1 = (
      await postForm(suite.app, '/oauth/token', { grant_type: 'password', username: user.username, password: PASSWORD }, auth)
    ).json<TokenBody>();
    const login2 = (
      await postForm(suite.app, '/oauth/token', { grant_type: 'password', username: user.username, password: PASSWORD }, auth)
    ).json<TokenBody>();

    for (const [form, headers] of [
      [{ token: login1.refresh_token!, client_id: client.clientId }, {}],
      [{ token: login1.refresh_token! }, { authorization: basicAuth(client.clientId, 'wrong') }],
      [{ token: login1.refresh_token!, client_id: client.clientId, client_secret: 'wrong' }, {}],
    ] as const) {
      const res = await revoke(form, headers);
      expect(res.statusCode).toBe(401);
      expect(res.headers['www-authenticate']).toBe('Basic realm="codelab"');
      expect(res.json()).toMatchObject({ error: 'invalid_client' });
    }
    expect(await revoked(login1.refresh_token!)).toBe(false);

    expect((await revoke({ token: login1.refresh_token! }, auth)).statusCode).toBe(200);
    expect((await revoke({ token: login2.refresh_token!, client_id: client.clientId, client_secret: client.secret! })).statusCode).toBe(
      200,
    );
    expect(await revoked(login1.refresh_token!)).toBe(true);
    expect(await revoked(login2.refresh_token!)).toBe(true);
  });

  it('answers 400 invalid_request without a token or a client, or with a JSON body', async () => {
    const client = await publicClient();
    expect((await revoke({ client_id: client.clientId })).json()).toEqual({
      error: 'invalid_request',
      error_description: 'Missing required parameter: token',
    });
    expect((await revoke({ token: 'x' })).json()).toEqual({
      error: 'invalid_request',
      error_description: 'Missing required parameter: client_id',
    });
    const json = await suite.app.inject({ method: 'POST', url: '/oauth/revoke', payload: { token: 'x', client_id: client.clientId } });
    expect(json.statusCode).toBe(400);
    expect(json.json()).toMatchObject({ error: 'invalid_request' });
  });
});
