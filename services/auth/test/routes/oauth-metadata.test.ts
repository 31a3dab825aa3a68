import { afterEach, describe, expect, it } from 'vitest';
import { metadataPaths } from '../../src/routes/oauth-metadata.ts';
import { buildTestApp, type TestApp } from '../helpers.ts';

describe('GET /.well-known/oauth-authorization-server', () => {
  let testApp: TestApp | undefined;
  afterEach(async () => {
    await testApp?.close();
    testApp = undefined;
  });

  it('describes the server per RFC 8414, with endpoints under AUTH_SERVICE__PUBLIC_URL', async () => {
    testApp = await buildTestApp({ AUTH_SERVICE__PUBLIC_URL: 'https://auth.example.test/' });
    const res = await testApp.service.app.inject({ method: 'GET', url: '/.well-known/oauth-authorization-server' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    expect(res.headers['cache-control']).toBe('public, max-age=300');
    expect(res.json()).toEqual({
      issuer: 'https://auth.codelab.local',
      token_endpoint: 'https://auth.example.test/oauth/token',
      revocation_endpoint: 'https://auth.example.test/oauth/revoke',
      jwks_uri: 'https://auth.example.test/.well-known/jwks.json',
      grant_types_supported: ['password', 'refresh_token', 'client_credentials'],
      response_types_supported: [],
      token_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post', 'none'],
      revocation_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post', 'none'],
      scopes_supported: ['api:read', 'api:write', 'api:admin'],
    });
  });

  it('uses the listening port when no public URL is set, and the issuer setting as issuer', async () => {
    testApp = await buildTestApp({ AUTH_SERVICE__JWT_ISSUER: 'https://id.example.test', AUTH_SERVICE__PORT: '0' });
    const { app } = testApp.service;
    await app.listen({ host: '127.0.0.1', port: 0 });
    const port = (app.server.address() as { port: number }).port;
    const res = await fetch(`http://127.0.0.1:${port}/.well-known/oauth-authorization-server`);
    const metadata = (await res.json()) as Record<string, string>;
    expect(metadata.issuer).toBe('https://id.example.test');
    expect(metadata.token_endpoint).toBe(`http://127.0.0.1:${port}/oauth/token`);
  });

  it('is also served at the RFC 8414 §3.1 path of an issuer with a path', async () => {
    expect(metadataPaths('https://auth.codelab.local')).toEqual(['/.well-known/oauth-authorization-server']);
    expect(metadataPaths('https://example.test/tenants/a/')).toEqual([
      '/.well-known/oauth-authorization-server',
      '/.well-known/oauth-authorization-server/tenants/a',
    ]);
    expect(metadataPaths('not a url')).toEqual(['/.well-known/oauth-authorization-server']);
    testApp = await buildTestApp({ AUTH_SERVICE__JWT_ISSUER: 'https://example.test/tenants/a' });
    const res = await testApp.service.app.inject({ method: 'GET', url: '/.well-known/oauth-authorization-server/tenants/a' });
    expect(res.json()).toMatchObject({ issuer: 'https://example.test/tenants/a' });
  });
});
