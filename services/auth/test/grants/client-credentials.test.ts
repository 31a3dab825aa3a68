import { describe, expect, it } from 'vitest';
import { createLocalJWKSet, jwtVerify, type JSONWebKeySet } from 'jose';
import { auditRowsOfClient, basicAuth, newClient, postForm, PUBLIC_CLIENT_ID, type TokenBody, useTestApp } from '../helpers.ts';

describe('client_credentials grant', () => {
  const suite = useTestApp();

  const grant = (clientId: string, secret: string, extra: Record<string, string> = {}) =>
    postForm(suite.app, '/oauth/token', { grant_type: 'client_credentials', ...extra }, { authorization: basicAuth(clientId, secret) });

  it('issues an access token alone, whose sub is the client id, and audits it', async () => {
    const client = await newClient(suite.db, { scopes: ['api:read', 'api:admin'], accessTokenLifetime: 120 });
    const res = await grant(client.clientId, client.secret!);
    expect(res.statusCode).toBe(200);
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.headers.pragma).toBe('no-cache');
    const body = res.json<TokenBody>();
    expect(body).toEqual({ access_token: expect.any(String), token_type: 'bearer', expires_in: 120, scope: 'api:admin api:read' });

    const jwks = (await suite.app.inject({ method: 'GET', url: '/.well-known/jwks.json' })).json<JSONWebKeySet>();
    const { payload } = await jwtVerify(body.access_token, createLocalJWKSet(jwks), {
      issuer: suite.testApp.config.jwtIssuer,
      audience: suite.testApp.config.jwtAudience,
    });
    expect(payload).toMatchObject({ sub: client.clientId, client_id: client.clientId, type: 'access', scope: 'api:admin api:read' });
    expect(payload.exp! - payload.iat!).toBe(120);

    expect(await auditRowsOfClient(suite.db, client.clientId)).toEqual([
      {
        event_type: 'client_credentials',
        success: true,
        user_id: null,
        client_id: client.clientId,
        ip_address: '127.0.0.1',
        user_agent: 'vitest-agent',
        event_data: { scope: 'api:admin api:read' },
        error_message: null,
      },
    ]);
    const { rowCount } = await suite.db.query('SELECT 1 FROM refresh_tokens WHERE client_id = $1', [client.clientId]);
    expect(rowCount).toBe(0);
  });

  it('accepts client_secret_post and a narrower scope', async () => {
    const client = await newClient(suite.db);
    const res = await postForm(suite.app, '/oauth/token', {
      grant_type: 'client_credentials',
      client_id: client.clientId,
      client_secret: client.secret!,
      scope: 'api:read',
    });
    expect(res.statusCode).toBe(200);
    expect(res.json<TokenBody>().scope).toBe('api:read');
  });

  it('answers 400 invalid_scope for a scope the client may not have', async () => {
    const client = await newClient(suite.db);
    const res = await grant(client.clientId, client.secret!, { scope: 'api:admin' });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toEqual({ error: 'invalid_scope', error_description: 'Scope must be a subset of: api:read api:write' });
  });

  it('answers 400 unauthorized_client for a public client, or a client without the grant', async () => {
    const publicRes = await postForm(suite.app, '/oauth/token', { grant_type: 'client_credentials', client_id: PUBLIC_CLIENT_ID });
    expect(publicRes.statusCode).toBe(400);
    expect(publicRes.json()).toEqual({
      error: 'unauthorized_client',
      error_description: 'Public clients may not use the client_credentials grant',
    });

    const client = await newClient(suite.db, { grants: ['password'] });
    const res = await grant(client.clientId, client.secret!);
    expect(res.statusCode).toBe(400);
    expect(res.json()).toMatchObject({ error: 'unauthorized_client' });
    expect(await auditRowsOfClient(suite.db, client.clientId)).toEqual([
      expect.objectContaining({ event_type: 'client_credentials', success: false, event_data: { reason: 'unauthorized_client' } }),
    ]);
  });

  it('answers 401 invalid_client for a wrong secret', async () => {
    const client = await newClient(suite.db);
    const res = await grant(client.clientId, 'wrong');
    expect(res.statusCode).toBe(401);
    expect(res.headers['www-authenticate']).toBe('Basic realm="codelab"');
    expect(res.json()).toEqual({ error: 'invalid_client', error_description: 'Client authentication failed' });
  });
});
