/**
 * Admin is a property of the user: a user's token carries api:admin only when the user is an admin
 * (and asked for it, through a client allowed it), whatever the client; a demoted user loses it at
 * the next refresh; client_credentials tokens keep their client's scopes. The seeded `admin` is an
 * admin, and the seeded public client may carry api:admin for it, so that the operator's one
 * command (a password grant with scope "api:read api:write api:admin") gives an admin token.
 */
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { decodeJwt } from 'jose';
import pg from 'pg';
import { describe, expect, inject, it } from 'vitest';
import type { Queryable } from '@codelab/service-kit';
import { createPublicClient, findClient } from '../src/clients.ts';
import { DEFAULT_CLIENT } from '../src/seed.ts';
import { createUser, findUserByUsername, setUserAdmin, type User } from '../src/users.ts';
import {
  auditRowsOfClient,
  basicAuth,
  newClient,
  newUser,
  PASSWORD,
  postForm,
  PUBLIC_CLIENT_ID,
  useTestApp,
  type TokenBody,
} from './helpers.ts';

const ALL = 'api:read api:write api:admin';

describe('the admin role (users.is_admin)', () => {
  const suite = useTestApp();

  const passwordGrant = (user: User, scope?: string, clientId = PUBLIC_CLIENT_ID) =>
    postForm(suite.app, '/oauth/token', {
      grant_type: 'password',
      client_id: clientId,
      username: user.username,
      password: PASSWORD,
      ...(scope ? { scope } : {}),
    });
  const refresh = (refreshToken: string, scope?: string, clientId = PUBLIC_CLIENT_ID) =>
    postForm(suite.app, '/oauth/token', {
      grant_type: 'refresh_token',
      client_id: clientId,
      refresh_token: refreshToken,
      ...(scope ? { scope } : {}),
    });
  const tokenScope = (body: TokenBody): string => String(decodeJwt(body.access_token).scope);

  describe('password grant through the seeded public client', () => {
    it('gives an admin user api:admin when asked for', async () => {
      const admin = await newUser(suite.db, { isAdmin: true });
      const res = await passwordGrant(admin, ALL);
      expect(res.statusCode).toBe(200);
      const body = res.json<TokenBody>();
      expect(body.scope).toBe('api:admin api:read api:write');
      expect(tokenScope(body)).toBe('api:admin api:read api:write');
    });

    it('leaves api:admin out when no scope is asked for, even for an admin (least privilege by default)', async () => {
      const admin = await newUser(suite.db, { isAdmin: true });
      const res = await passwordGrant(admin);
      expect(res.statusCode).toBe(200);
      expect(res.json<TokenBody>().scope).toBe('api:read api:write');
    });

    it('drops api:admin for a user who is not an admin, saying so in the answer and the audit log (RFC 6749 §3.3)', async () => {
      const client = await newClient(suite.db, {
        confidential: false,
        scopes: ['api:read', 'api:write', 'api:admin'],
        grants: ['password', 'refresh_token'],
      });
      const user = await newUser(suite.db);
      const res = await passwordGrant(user, ALL, client.clientId);
      expect(res.statusCode).toBe(200);
      const body = res.json<TokenBody>();
      expect(body.scope).toBe('api:read api:write');
      expect(tokenScope(body)).toBe('api:read api:write');
      const [row] = await auditRowsOfClient(suite.db, client.clientId);
      expect(row).toMatchObject({
        event_type: 'login_success',
        user_id: user.id,
        event_data: { scope: 'api:read api:write', refused_scope: 'api:admin' },
      });
    });

    it('answers invalid_scope when api:admin is all a non-admin asked for', async () => {
      const user = await newUser(suite.db);
      const res = await passwordGrant(user, 'api:admin');
      expect(res.statusCode).toBe(400);
      expect(res.json()).toEqual({ error: 'invalid_scope', error_description: 'The scope api:admin is granted to admin users only' });
    });

    it('never gives api:admin through a client that may not carry it, even to an admin', async () => {
      const client = await newClient(suite.db, { confidential: false, grants: ['password', 'refresh_token'] });
      const admin = await newUser(suite.db, { isAdmin: true });
      const res = await passwordGrant(admin, ALL, client.clientId);
      expect(res.statusCode).toBe(400);
      expect(res.json()).toMatchObject({ error: 'invalid_scope' });
    });

    it("no longer makes a user of an admin client an admin (the role is the user's)", async () => {
      const client = await newClient(suite.db, { scopes: ['api:read', 'api:admin'], grants: ['password', 'client_credentials'] });
      const user = await newUser(suite.db);
      const auth = { authorization: basicAuth(client.clientId, client.secret!) };
      const login = await postForm(
        suite.app,
        '/oauth/token',
        { grant_type: 'password', username: user.username, password: PASSWORD, scope: 'api:read api:admin' },
        auth,
      );
      expect(login.json<TokenBody>().scope).toBe('api:read');
      // client_credentials: the client's scopes, no user involved.
      const cc = await postForm(suite.app, '/oauth/token', { grant_type: 'client_credentials', scope: 'api:read api:admin' }, auth);
      expect(cc.json<TokenBody>().scope).toBe('api:admin api:read');
    });
  });

  describe('refresh', () => {
    async function adminLogin(): Promise<{ user: User; body: TokenBody }> {
      const user = await newUser(suite.db, { isAdmin: true });
      const res = await passwordGrant(user, ALL);
      expect(res.json<TokenBody>().scope).toBe('api:admin api:read api:write');
      return { user, body: res.json<TokenBody>() };
    }

    it('keeps api:admin while the user is an admin', async () => {
      const { body } = await adminLogin();
      const res = await refresh(body.refresh_token!);
      expect(res.json<TokenBody>().scope).toBe('api:admin api:read api:write');
    });

    it('drops api:admin once the user is demoted, and never gives it back on later refreshes', async () => {
      const { user, body } = await adminLogin();
      await setUserAdmin(suite.db, user.id, false);
      const demoted = await refresh(body.refresh_token!);
      expect(demoted.statusCode).toBe(200);
      expect(demoted.json<TokenBody>().scope).toBe('api:read api:write');
      expect(tokenScope(demoted.json<TokenBody>())).toBe('api:read api:write');

      // Promoted again: the refreshed grant stays narrowed (a new login is needed for api:admin).
      await setUserAdmin(suite.db, user.id, true);
      const again = await refresh(demoted.json<TokenBody>().refresh_token!, ALL);
      expect(again.statusCode).toBe(400);
      expect(again.json()).toMatchObject({ error: 'invalid_scope' });
      const plain = await refresh(demoted.json<TokenBody>().refresh_token!);
      expect(plain.json<TokenBody>().scope).toBe('api:read api:write');
    });

    it('drops api:admin asked for explicitly by a demoted user, and refuses when it was all that was asked', async () => {
      const { user, body } = await adminLogin();
      await setUserAdmin(suite.db, user.id, false);
      const onlyAdmin = await refresh(body.refresh_token!, 'api:admin');
      expect(onlyAdmin.statusCode).toBe(400);
      expect(onlyAdmin.json()).toEqual({ error: 'invalid_scope', error_description: 'The scope api:admin is granted to admin users only' });
      // The refused request did not consume the token.
      const res = await refresh(body.refresh_token!, 'api:read api:admin');
      expect(res.statusCode).toBe(200);
      expect(res.json<TokenBody>().scope).toBe('api:read');
    });
  });
});

describe('migration 004 (existing installations)', () => {
  const migrations = fileURLToPath(new URL('../src/migrations', import.meta.url));
  const sql = (file: string) => readFile(path.join(migrations, file), 'utf8');

  it('makes the seeded admin an admin and lets the seeded public client carry api:admin, nobody else', async () => {
    // A database as the earlier versions left it (migrations 001-003, the seeded admin and client),
    // in a schema of its own inside a transaction that is rolled back: nothing stays behind.
    const client = new pg.Client({ connectionString: inject('databaseUrl') });
    await client.connect();
    const db: Queryable = { query: (text, params) => client.query(text, params) };
    const schema = `auth_m004_${randomBytes(4).toString('hex')}`;
    try {
      await client.query('BEGIN');
      await client.query(`CREATE SCHEMA ${schema}; SET LOCAL search_path TO ${schema}, public`);
      for (const file of ['001_users_clients_tokens.sql', '002_refresh_token_lineage.sql', '003_token_families.sql'])
        await client.query(await sql(file));
      await client.query(
        `INSERT INTO users (username, email, password_hash) VALUES ('admin', 'admin@codelab.local', 'x'), ('bob', 'bob@example.test', 'x')`,
      );
      await createPublicClient(db, { ...DEFAULT_CLIENT, allowedScopes: ['api:read', 'api:write'] });
      await createPublicClient(db, { ...DEFAULT_CLIENT, clientId: 'other-app', allowedScopes: ['api:read'] });

      await client.query(await sql('004_user_admin_role.sql'));
      expect((await findUserByUsername(db, 'admin'))!.isAdmin).toBe(true);
      expect((await findUserByUsername(db, 'bob'))!.isAdmin).toBe(false);
      expect((await findClient(db, DEFAULT_CLIENT.clientId))!.allowedScopes).toEqual(['api:read', 'api:write', 'api:admin']);
      expect((await findClient(db, 'other-app'))!.allowedScopes).toEqual(['api:read']);
      // New users are not admins unless created so.
      const carol = await createUser(db, { username: 'carol', email: 'carol@example.test', password: PASSWORD });
      expect(carol!.isAdmin).toBe(false);
    } finally {
      await client.query('ROLLBACK').catch(() => undefined);
      await client.end();
    }
  });
});
