import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Database } from '@codelab/service-kit/db';
import { claimRefreshToken, refreshTokenState, revokeLineage, revokeWithDescendants } from '../src/refresh-tokens.ts';
import { hashJti } from '../src/tokens.ts';
import { newClient, newUser, openTestDatabase, uniqueName } from './helpers.ts';

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
    const { rows } = await db.query<{ jti_hash: string }>('SELECT jti_hash FROM refresh_tokens WHERE jti_hash = ANY($1) AND revoked', [Object.values(h)]);
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
