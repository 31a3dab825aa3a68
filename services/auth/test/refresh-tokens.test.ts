import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Database } from '@codelab/service-kit';
import { claimRefreshToken, refreshTokenState, revokeLineage, revokeWithDescendants } from '../src/refresh-tokens.ts';
import { hashJti } from '../src/tokens.ts';
import { decodeJwt } from 'jose';
import { buildTestApp, newClient, newUser, openTestDatabase, PASSWORD, postForm, PUBLIC_CLIENT_ID, uniqueName } from './helpers.ts';

describe('refresh-tokens', () => {
  let db: Database;
  beforeAll(async () => {
    db = await openTestDatabase();
  });
  afterAll(() => db.close());

  /**
   * Two lineages of one user and client: a → b → c → d, with a second child b → e (a lineage can
   * fork only through a bug, but the walk must still reach it), and x → y, another login.
   */
  async function tokens(): Promise<Record<string, string>> {
    const user = await newUser(db);
    const { clientId } = await newClient(db, { confidential: false });
    const h: Record<string, string> = {};
    for (const name of ['a', 'b', 'c', 'd', 'e', 'x', 'y']) h[name] = hashJti(uniqueName(name));
    const parents: Record<string, string | undefined> = { a: undefined, b: 'a', c: 'b', d: 'c', e: 'b', x: undefined, y: 'x' };
    for (const [name, parent] of Object.entries(parents)) {
      await db.query(
        `INSERT INTO refresh_tokens (jti_hash, user_id, client_id, expires_at, parent_jti_hash) VALUES ($1, $2, $3, now() + interval '1 hour', $4)`,
        [h[name], user.id, clientId, parent ? h[parent] : null],
      );
    }
    return h;
  }
  async function revokedOf(h: Record<string, string>): Promise<string[]> {
    const { rows } = await db.query<{ jti_hash: string }>('SELECT jti_hash FROM refresh_tokens WHERE jti_hash = ANY($1) AND revoked', [
      Object.values(h),
    ]);
    const names = Object.fromEntries(Object.entries(h).map(([k, v]) => [v, k]));
    return rows.map((r) => names[r.jti_hash]!).sort();
  }

  it('revokeLineage revokes ancestors and descendants, never another lineage', async () => {
    const h = await tokens();
    expect(await revokeLineage(db, h.c!)).toBe(5);
    expect(await revokedOf(h)).toEqual(['a', 'b', 'c', 'd', 'e']);
    expect(await revokeLineage(db, h.c!)).toBe(0);
  });

  it('revokeWithDescendants revokes the token and what was rotated from it', async () => {
    const h = await tokens();
    expect(await revokeWithDescendants(db, h.b!)).toBe(4);
    expect(await revokedOf(h)).toEqual(['b', 'c', 'd', 'e']);
  });

  it('claimRefreshToken lets one caller claim a live token, once', async () => {
    const h = await tokens();
    expect(await claimRefreshToken(db, h.y!)).toMatchObject({ scope: '' });
    expect(await claimRefreshToken(db, h.y!)).toBeUndefined();
    expect(await refreshTokenState(db, h.y!)).toBe('revoked');
    expect(await refreshTokenState(db, h.x!)).toBe('active');
    expect(await refreshTokenState(db, hashJti('never-issued'))).toBe('missing');
    await db.query(`UPDATE refresh_tokens SET expires_at = now() - interval '1 second' WHERE jti_hash = $1`, [h.x]);
    expect(await claimRefreshToken(db, h.x!)).toBeUndefined();
    expect(await refreshTokenState(db, h.x!)).toBe('expired');
  });
});

describe('revoked token families', () => {
  it('lists the family of a revoked lineage for verifiers, and not the families of other logins', async () => {
    const db = await openTestDatabase();
    const t = await buildTestApp();
    try {
      const user = await newUser(db);
      const login = async () =>
        (
          await postForm(t.service.app, '/oauth/token', {
            grant_type: 'password',
            client_id: PUBLIC_CLIENT_ID,
            username: user.username,
            password: PASSWORD,
          })
        ).json() as { access_token: string; refresh_token: string };
      const one = await login();
      const two = await login();
      const families = async () =>
        (
          await t.service.app.inject({
            method: 'GET',
            url: '/internal/revoked-token-families',
            headers: { 'x-internal-auth': t.config.internalApiKey },
          })
        ).json().families as string[];
      const sid = (token: string) => decodeJwt(token).sid as string;
      expect(await families()).not.toContain(sid(one.access_token));
      const rotated = (
        await postForm(t.service.app, '/oauth/token', {
          grant_type: 'refresh_token',
          client_id: PUBLIC_CLIENT_ID,
          refresh_token: one.refresh_token,
        })
      ).json() as { access_token: string };
      expect(sid(rotated.access_token)).toBe(sid(one.access_token));
      expect(
        (
          await postForm(t.service.app, '/oauth/token', {
            grant_type: 'refresh_token',
            client_id: PUBLIC_CLIENT_ID,
            refresh_token: one.refresh_token,
          })
        ).statusCode,
      ).toBe(400);
      const listed = await families();
      expect(listed).toContain(sid(one.access_token));
      expect(listed).not.toContain(sid(two.access_token));
      // RFC 7009: revoking the other login's refresh token lists its family too
      await postForm(t.service.app, '/oauth/revoke', { token: two.refresh_token, client_id: PUBLIC_CLIENT_ID });
      expect(await families()).toContain(sid(two.access_token));
      // the feed needs the internal key
      expect((await t.service.app.inject({ method: 'GET', url: '/internal/revoked-token-families' })).statusCode).toBe(401);
    } finally {
      await t.close();
      await db.close();
    }
  });
});
