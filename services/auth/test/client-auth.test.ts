import { describe, expect, it } from 'vitest';
import { readClientCredentials } from '../src/client-auth.ts';
import { createClient } from '../src/clients.ts';
import { hashPassword } from '../src/passwords.ts';
import {
  auditRowsOfClient,
  basicAuth,
  newClient,
  newUser,
  PASSWORD,
  postForm,
  PUBLIC_CLIENT_ID,
  uniqueName,
  useTestApp,
} from './helpers.ts';

const INVALID_CLIENT = { error: 'invalid_client', error_description: 'Client authentication failed' };

describe('client authentication', () => {
  describe('readClientCredentials', () => {
    it('reads client_secret_basic, form-url-decoding both parts (RFC 6749 §2.3.1)', () => {
      expect(readClientCredentials(basicAuth('my client', 's:e%c+r t'), {})).toEqual({
        clientId: 'my client',
        secret: 's:e%c+r t',
        method: 'client_secret_basic',
      });
      expect(readClientCredentials(`basic ${Buffer.from('id:').toString('base64')}`, {})).toEqual({
        clientId: 'id',
        secret: undefined,
        method: 'client_secret_basic',
      });
    });

    it('reads client_secret_post, and none with client_id alone', () => {
      expect(readClientCredentials(undefined, { client_id: 'a', client_secret: 'b' })).toEqual({
        clientId: 'a',
        secret: 'b',
        method: 'client_secret_post',
      });
      expect(readClientCredentials(undefined, { client_id: 'a', client_secret: '' })).toEqual({
        clientId: 'a',
        secret: undefined,
        method: 'none',
      });
      expect(readClientCredentials('Bearer some.jwt.token', { client_id: 'a' })).toEqual({
        clientId: 'a',
        secret: undefined,
        method: 'none',
      });
    });

    it.each([
      ['Basic', 'no credentials'],
      ['Basic !!!', 'not base64'],
      [`Basic ${Buffer.from('no-colon').toString('base64')}`, 'no colon'],
      [`Basic ${Buffer.from(':secret').toString('base64')}`, 'empty id'],
      [`Basic ${Buffer.from('%zz:secret').toString('base64')}`, 'bad percent-encoding'],
    ])('refuses malformed Basic credentials (%s: %s) with invalid_client', (header) => {
      expect(() => readClientCredentials(header, {})).toThrow(expect.objectContaining({ code: 'invalid_client', statusCode: 401 }));
    });

    it('refuses two methods at once, or a body client_id other than the Basic one, with invalid_request', () => {
      expect(() => readClientCredentials(basicAuth('a', 'b'), { client_secret: 'b' })).toThrow(
        expect.objectContaining({ code: 'invalid_request' }),
      );
      expect(() => readClientCredentials(basicAuth('a', 'b'), { client_id: 'other' })).toThrow(
        expect.objectContaining({ code: 'invalid_request' }),
      );
      expect(readClientCredentials(basicAuth('a', 'b'), { client_id: 'a' })).toMatchObject({
        clientId: 'a',
        method: 'client_secret_basic',
      });
    });
  });

  describe('at the token endpoint', () => {
    const suite = useTestApp();

    const passwordGrant = async (extra: Record<string, string>, headers: Record<string, string> = {}) => {
      const user = await newUser(suite.db);
      return postForm(
        suite.app,
        '/oauth/token',
        { grant_type: 'password', username: user.username, password: PASSWORD, ...extra },
        headers,
      );
    };

    it('accepts a confidential client with client_secret_basic', async () => {
      const client = await newClient(suite.db);
      const res = await passwordGrant({}, { authorization: basicAuth(client.clientId, client.secret!) });
      expect(res.statusCode).toBe(200);
      expect(res.json()).toMatchObject({ token_type: 'bearer', scope: 'api:read api:write' });
    });

    it('accepts a confidential client with client_secret_post', async () => {
      const client = await newClient(suite.db);
      const res = await passwordGrant({ client_id: client.clientId, client_secret: client.secret! });
      expect(res.statusCode).toBe(200);
    });

    it('decodes a Basic id and secret with reserved characters', async () => {
      const clientId = `${uniqueName('odd')}.client`;
      const secret = 'a secret: 100% + more';
      await createClient(suite.db, {
        clientId,
        name: 'odd',
        allowedScopes: ['api:read'],
        allowedGrantTypes: ['password'],
        secretHash: await hashPassword(secret),
      });
      const res = await passwordGrant({}, { authorization: basicAuth(clientId, secret) });
      expect(res.statusCode).toBe(200);
    });

    it('answers 400 invalid_request for Basic and client_secret at once', async () => {
      const client = await newClient(suite.db);
      const res = await passwordGrant({ client_secret: client.secret! }, { authorization: basicAuth(client.clientId, client.secret!) });
      expect(res.statusCode).toBe(400);
      expect(res.json()).toEqual({
        error: 'invalid_request',
        error_description: 'Use one client authentication method: HTTP Basic or client_secret in the body, not both',
      });
    });

    it.each([
      ['a wrong secret (Basic)', async (id: string) => ({ headers: { authorization: basicAuth(id, 'wrong') }, form: {} })],
      ['a wrong secret (post)', async (id: string) => ({ headers: {}, form: { client_id: id, client_secret: 'wrong' } })],
      ['no secret', async (id: string) => ({ headers: {}, form: { client_id: id } })],
    ])('answers 401 invalid_client with WWW-Authenticate for a confidential client with %s', async (_name, make) => {
      const client = await newClient(suite.db);
      const { headers, form } = await make(client.clientId);
      const res = await passwordGrant(form, headers);
      expect(res.statusCode).toBe(401);
      expect(res.headers['www-authenticate']).toBe('Basic realm="codelab"');
      expect(res.headers['cache-control']).toBe('no-store');
      expect(res.json()).toEqual(INVALID_CLIENT);
    });

    it('answers 401 invalid_client for a public client that sends a secret, an unknown client, a malformed Basic header, an inactive confidential client', async () => {
      const inactive = await newClient(suite.db, { isActive: false });
      const cases = [
        { form: { client_id: PUBLIC_CLIENT_ID, client_secret: 'anything' } },
        { headers: { authorization: basicAuth(PUBLIC_CLIENT_ID, 'anything') } },
        { headers: { authorization: basicAuth(uniqueName('ghost-client'), 'anything') } },
        { headers: { authorization: 'Basic %%%' } },
        { headers: { authorization: basicAuth(inactive.clientId, inactive.secret!) } },
      ];
      for (const c of cases) {
        const res = await passwordGrant(c.form ?? {}, c.headers ?? {});
        expect(res.statusCode, JSON.stringify(c)).toBe(401);
        expect(res.json()).toMatchObject({ error: 'invalid_client' });
        expect(res.headers['www-authenticate']).toBe('Basic realm="codelab"');
      }
    });

    it('ignores an Authorization header of another scheme', async () => {
      const res = await passwordGrant({ client_id: PUBLIC_CLIENT_ID }, { authorization: 'Bearer not-for-this-endpoint' });
      expect(res.statusCode).toBe(200);
    });

    it('audits a failed client authentication as login_failed with the reason, never the secret', async () => {
      const client = await newClient(suite.db);
      await passwordGrant({}, { authorization: basicAuth(client.clientId, 'the-wrong-secret') });
      const rows = await auditRowsOfClient(suite.db, client.clientId);
      expect(rows).toEqual([
        expect.objectContaining({
          event_type: 'login_failed',
          success: false,
          client_id: client.clientId,
          event_data: expect.objectContaining({ reason: 'wrong_secret' }),
        }),
      ]);
      expect(JSON.stringify(rows)).not.toContain('the-wrong-secret');
    });

    it('spends the same time on an unknown client as on a wrong secret', async () => {
      const client = await newClient(suite.db);
      const time = async (id: string): Promise<number> => {
        const times: number[] = [];
        for (let i = 0; i < 3; i++) {
          const started = performance.now();
          const res = await postForm(
            suite.app,
            '/oauth/token',
            { grant_type: 'client_credentials' },
            { authorization: basicAuth(id, 'wrong-secret') },
          );
          times.push(performance.now() - started);
          expect(res.statusCode).toBe(401);
        }
        return times.sort((a, b) => a - b)[1]!;
      };
      const wrongSecret = await time(client.clientId);
      const unknown = await time(uniqueName('ghost-client'));
      expect(unknown / wrongSecret).toBeGreaterThan(0.25);
      expect(unknown / wrongSecret).toBeLessThan(4);
    });
  });
});
