/**
 * Refresh-token rows (`refresh_tokens`, keyed by sha256(jti)): atomic rotation, and revocation of a
 * token with its descendants or of its whole lineage.
 *
 * A lineage is the chain of tokens one login started: each rotation revokes the presented token and
 * records the new one with `parent_jti_hash` pointing at it. Rotation is one conditional UPDATE,
 * so of two requests presenting the same token exactly one gets the row; the other finds it
 * already revoked, which is a reuse (RFC 6819 §5.2.2.3, OAuth 2.1 §4.3.1): the whole lineage is
 * revoked, the token just issued to the winner included. Other lineages of the same user and
 * client (another device, another login) are not touched.
 */
import type { Queryable } from '@codelab/service-kit';

export interface ClaimedRefreshToken {
  userId: string;
  clientId: string;
  scope: string;
  /** The family the new pair continues (undefined for rows from before families existed). */
  familyId: string | undefined;
}

/**
 * Access tokens outlive nothing longer than this (AUTH_SERVICE__ACCESS_TOKEN_LIFETIME's maximum):
 * a revoked family is listed for verifiers at least that long.
 */
const REVOKED_FAMILY_LISTING_SECONDS = 86_400;

/**
 * Revokes the refresh tokens selected by `targets` (a CTE named `targets (jti_hash)`) and lists
 * their families as revoked for verifiers (the gateway refuses the family's access tokens until
 * they have expired). Returns how many tokens were still live.
 */
async function revokeAndListFamilies(db: Queryable, withTargets: string, params: unknown[]): Promise<number> {
  const { rows } = await db.query<{ n: number }>(
    `${withTargets},
     revoked AS (
       UPDATE refresh_tokens SET revoked = true, revoked_at = now()
        WHERE jti_hash IN (SELECT jti_hash FROM targets) AND NOT revoked
        RETURNING 1),
     listed AS (
       INSERT INTO revoked_token_families (family_id, expires_at)
       SELECT DISTINCT family_id, now() + make_interval(secs => ${REVOKED_FAMILY_LISTING_SECONDS})
         FROM refresh_tokens WHERE jti_hash IN (SELECT jti_hash FROM targets) AND family_id IS NOT NULL
       ON CONFLICT (family_id) DO UPDATE SET expires_at = EXCLUDED.expires_at)
     SELECT count(*)::int AS n FROM revoked`,
    params,
  );
  return rows[0]?.n ?? 0;
}

export async function claimRefreshToken(tx: Queryable, jtiHash: string): Promise<ClaimedRefreshToken | undefined> {
  const { rows } = await tx.query<{ user_id: string; client_id: string; scope: string; family_id: string | null }>(
    `UPDATE refresh_tokens SET revoked = true, revoked_at = now()
      WHERE jti_hash = $1 AND NOT revoked AND expires_at > now()
      RETURNING user_id, client_id, scope, family_id`,
    [jtiHash],
  );
  const row = rows[0];
  return row && { userId: row.user_id, clientId: row.client_id, scope: row.scope, familyId: row.family_id ?? undefined };
}

export type RefreshTokenState = 'missing' | 'revoked' | 'expired' | 'active';

export async function refreshTokenState(db: Queryable, jtiHash: string): Promise<RefreshTokenState> {
  const { rows } = await db.query<{ revoked: boolean; expired: boolean }>(
    'SELECT revoked, expires_at <= now() AS expired FROM refresh_tokens WHERE jti_hash = $1',
    [jtiHash],
  );
  const row = rows[0];
  if (!row) return 'missing';
  return row.revoked ? 'revoked' : row.expired ? 'expired' : 'active';
}

/**
 * Revokes every live token of the lineage `jtiHash` belongs to: its ancestors (following
 * parent_jti_hash up) and every descendant of those (down). Returns how many were live.
 */
export function revokeLineage(db: Queryable, jtiHash: string): Promise<number> {
  return revokeAndListFamilies(
    db,
    `WITH RECURSIVE
       ancestors (jti_hash, parent_jti_hash) AS (
         SELECT jti_hash, parent_jti_hash FROM refresh_tokens WHERE jti_hash = $1
         UNION
         SELECT r.jti_hash, r.parent_jti_hash FROM refresh_tokens r JOIN ancestors a ON r.jti_hash = a.parent_jti_hash
       ),
       targets (jti_hash) AS (
         SELECT jti_hash FROM ancestors
         UNION
         SELECT r.jti_hash FROM refresh_tokens r JOIN targets t ON r.parent_jti_hash = t.jti_hash
       )`,
    [jtiHash],
  );
}

/** Revokes the token and every token rotated from it (RFC 7009 revocation). Returns how many were live. */
export function revokeWithDescendants(db: Queryable, jtiHash: string): Promise<number> {
  return revokeAndListFamilies(
    db,
    `WITH RECURSIVE targets (jti_hash) AS (
       SELECT jti_hash FROM refresh_tokens WHERE jti_hash = $1
       UNION
       SELECT r.jti_hash FROM refresh_tokens r JOIN targets t ON r.parent_jti_hash = t.jti_hash
     )`,
    [jtiHash],
  );
}

/** Revokes every live refresh token of a user (password reset, disabled account). */
export function revokeTokensOfUser(db: Queryable, userId: string): Promise<number> {
  return revokeAndListFamilies(db, 'WITH targets AS (SELECT jti_hash FROM refresh_tokens WHERE user_id = $1 AND NOT revoked)', [userId]);
}

/** Revokes every live refresh token issued to a client (disabled client). */
export function revokeTokensOfClient(db: Queryable, clientId: string): Promise<number> {
  return revokeAndListFamilies(db, 'WITH targets AS (SELECT jti_hash FROM refresh_tokens WHERE client_id = $1 AND NOT revoked)', [
    clientId,
  ]);
}

/** Families revoked whose access tokens may still be valid: what verifiers must refuse. */
export async function revokedFamilies(db: Queryable): Promise<string[]> {
  const { rows } = await db.query<{ family_id: string }>('SELECT family_id FROM revoked_token_families WHERE expires_at > now()');
  return rows.map((r) => r.family_id);
}

/** Forgets revoked families whose tokens have all expired. */
export async function pruneRevokedFamilies(db: Queryable): Promise<number> {
  const { rowCount } = await db.query('DELETE FROM revoked_token_families WHERE expires_at <= now()');
  return rowCount ?? 0;
}
