/**
 * A standard OAuth client library (oauth4webapi) against the running service over real HTTP:
 * discovery from the RFC 8414 metadata, then client_credentials, password, refresh (with rotation
 * and reuse detection) and revocation, each through the library's own request and response checks.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as oauth from 'oauth4webapi';
import { decodeJwt } from 'jose';
import type { Database } from '@codelab/service-kit';
import { freePort } from '@codelab/service-kit/testing';
import { buildTestApp, newClient, newUser, openTestDatabase, PASSWORD, type TestApp, type TestClient } from './helpers.ts';

/** Plain http on loopback (the library otherwise insists on https). */
const HTTP = { [oauth.allowInsecureRequests]: true } as const;

describe('a standard OAuth client library (oauth4webapi)', () => {
  let db: Database;
  beforeAll(async () => {
    db = await openTestDatabase();
  });
  afterAll(() => db.close());

  async function flows(as: oauth.AuthorizationServer, confidential: TestClient): Promise<void> {
    const client: oauth.Client = { client_id: confidential.clientId };
    const auth = oauth.ClientSecretBasic(confidential.secret!);

    // client_credentials
    const cc = await oauth.processClientCredentialsResponse(
      as,
      client,
      await oauth.clientCredentialsGrantRequest(as, client, auth, { scope: 'api:read' }, HTTP),
    );
    expect(cc).toMatchObject({ token_type: 'bearer', scope: 'api:read', expires_in: 900 });
    expect(cc.refresh_token).toBeUndefined();
    expect(decodeJwt(cc.access_token)).toMatchObject({ sub: confidential.clientId, client_id: confidential.clientId });

    // password (the library's generic grant), then refresh with rotation
    const user = await newUser(db);
    const login = await oauth.processGenericTokenEndpointResponse(
      as,
      client,
      await oauth.genericTokenEndpointRequest(as, client, auth, 'password', { username: user.username, password: PASSWORD }, HTTP),
    );
    expect(decodeJwt(login.access_token).sub).toBe(user.id);
    const refreshed = await oauth.processRefreshTokenResponse(
      as,
      client,
      await oauth.refreshTokenGrantRequest(as, client, auth, login.refresh_token!, HTTP),
    );
    expect(refreshed.refresh_token).toBeDefined();
    expect(refreshed.refresh_token).not.toBe(login.refresh_token);
    expect(decodeJwt(refreshed.access_token).sub).toBe(user.id);

    // The rotated token again: the library surfaces the RFC 6749 error.
    const reuse = await oauth.refreshTokenGrantRequest(as, client, auth, login.refresh_token!, HTTP);
    await expect(oauth.processRefreshTokenResponse(as, client, reuse)).rejects.toMatchObject({
      code: oauth.RESPONSE_BODY_ERROR,
      error: 'invalid_grant',
      status: 400,
    });

    // Revocation of a fresh login's refresh token, then its refresh fails.
    const second = await oauth.processGenericTokenEndpointResponse(
      as,
      client,
      await oauth.genericTokenEndpointRequest(as, client, auth, 'password', { username: user.username, password: PASSWORD }, HTTP),
    );
    await oauth.processRevocationResponse(await oauth.revocationRequest(as, client, auth, second.refresh_token!, HTTP));
    const afterRevoke = await oauth.refreshTokenGrantRequest(as, client, auth, second.refresh_token!, HTTP);
    await expect(oauth.processRefreshTokenResponse(as, client, afterRevoke)).rejects.toMatchObject({ error: 'invalid_grant' });

    // A wrong secret: 401 invalid_client with a Basic challenge.
    const wrong = await oauth.clientCredentialsGrantRequest(as, client, oauth.ClientSecretBasic('wrong'), {}, HTTP);
    await expect(oauth.processClientCredentialsResponse(as, client, wrong)).rejects.toMatchObject({ status: 401 });
    expect(wrong.headers.get('www-authenticate')).toBe('Basic realm="codelab"');

    // A public client (auth method none) refreshes too.
    const publicClient: oauth.Client = { client_id: 'codelab-flutter-app' };
    const publicLogin = await oauth.processGenericTokenEndpointResponse(
      as,
      publicClient,
      await oauth.genericTokenEndpointRequest(
        as,
        publicClient,
        oauth.None(),
        'password',
        { username: user.username, password: PASSWORD },
        HTTP,
      ),
    );
    const publicRefresh = await oauth.processRefreshTokenResponse(
      as,
      publicClient,
      await oauth.refreshTokenGrantRequest(as, publicClient, oauth.None(), publicLogin.refresh_token!, HTTP),
    );
    expect(publicRefresh.scope).toBe('api:read api:write');
  }

  it('discovers the service from its issuer (the issuer is the URL it listens at) and completes every flow', async () => {
    const port = await freePort();
    const issuer = `http://127.0.0.1:${port}`;
    const testApp = await buildTestApp({ AUTH_SERVICE__JWT_ISSUER: issuer, AUTH_SERVICE__PUBLIC_URL: issuer });
    try {
      await testApp.service.app.listen({ host: '127.0.0.1', port });
      const issuerUrl = new URL(issuer);
      const as = await oauth.processDiscoveryResponse(issuerUrl, await oauth.discoveryRequest(issuerUrl, { algorithm: 'oauth2', ...HTTP }));
      expect(as).toMatchObject({ issuer, token_endpoint: `${issuer}/oauth/token`, revocation_endpoint: `${issuer}/oauth/revoke` });
      await flows(as, await newClient(db));
    } finally {
      await testApp.close();
    }
  });

  describe('with the upstream issuer https://auth.codelab.local, served through a proxy', () => {
    let testApp: TestApp;
    let base: string;
    beforeAll(async () => {
      testApp = await buildTestApp();
      await testApp.service.app.listen({ host: '127.0.0.1', port: 0 });
      base = `http://127.0.0.1:${(testApp.service.app.server.address() as { port: number }).port}`;
    });
    afterAll(() => testApp.close());

    /** Stands in for DNS and TLS termination: requests to the issuer's origin reach the service. */
    const proxy = {
      [oauth.customFetch]: (url: string, options: RequestInit) => fetch(url.replace('https://auth.codelab.local', base), options),
    };

    it('discovers it at the issuer, validates the issuer (RFC 8414 §3.3) and completes every flow', async () => {
      const issuer = new URL('https://auth.codelab.local');
      const as = await oauth.processDiscoveryResponse(issuer, await oauth.discoveryRequest(issuer, { algorithm: 'oauth2', ...proxy }));
      expect(as.issuer).toBe('https://auth.codelab.local');
      // No AUTH_SERVICE__PUBLIC_URL: the endpoints are where the service listens.
      expect(as.token_endpoint).toBe(`${base}/oauth/token`);
      await flows(as, await newClient(db));
    });

    it('is refused by the library when the client expects another issuer', async () => {
      const elsewhere = new URL('https://login.example.test');
      const res = await oauth.discoveryRequest(elsewhere, {
        algorithm: 'oauth2',
        [oauth.customFetch]: (url: string, options: RequestInit) => fetch(url.replace(elsewhere.origin, base), options),
      });
      await expect(oauth.processDiscoveryResponse(elsewhere, res)).rejects.toMatchObject({ code: oauth.JSON_ATTRIBUTE_COMPARISON });
    });
  });
});
