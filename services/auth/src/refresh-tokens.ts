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
import type { Queryable } from '@codelab/service-kit/db';

export interface ClaimedRefreshToken {
  userId: string;
  clientId: string;
  scope: string;
}

/**
 * Revokes the token if it is still live and returns its row: the single winner of a rotation.
 * Undefined when the token is unknown, already revoked or expired (see `refreshTokenState`). On a
 * real server a concurrent claim of the same row waits for this transaction, then finds it revoked.
 */
export async function claimRefreshToken(tx: Queryable, jtiHash: string): Promise<ClaimedRefreshToken | undefined> {
  const { rows } = await tx.query<{ user_id: string; client_id: string; scope: string }>(
    `UPDATE refresh_tokens SET revoked = true, revoked_at = now()
      WHERE jti_hash = $1 AND NOT revoked AND expires_at > now()
      RETURNING user_id, client_id, scope`,
    [jtiHash],
  );
  const row = rows[0];
  return row && { userId: row.user_id, clientId: row.client_id, scope: row.scope };
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
export async function revokeLineage(db: Queryable, jtiHash: string): Promise<number> {
  const { rowCount } = await db.query(
    `WITH RECURSIVE
       ancestors (jti_hash, parent_jti_hash) AS (
         SELECT jti_hash, parent_jti_hash FROM refresh_tokens WHERE jti_hash = $1
         UNION
         SELECT r.jti_hash, r.parent_jti_hash FROM refresh_tokens r JOIN ancestors a ON r.jti_hash = a.parent_jti_hash
       ),
       lineage (jti_hash) AS (
         SELECT jti_hash FROM ancestors
         UNION
         SELECT r.jti_hash FROM refresh_tokens r JOIN lineage l ON r.parent_jti_hash = l.jti_hash
       )
     UPDATE refresh_tokens SET revoked = true, revoked_at = now()
      WHERE jti_hash IN (SELECT jti_hash FROM lineage) AND NOT revoked`,
    [jtiHash],
  );
  return rowCount ?? 0;
}

/** Revokes the token and every token rotated from it (RFC 7009 revocation). Returns how many were live. */
export async function revokeWithDescendants(db: Queryable, jtiHash: string): Promise<number> {
  const { rowCount } = await db.query(
    `WITH RECURSIVE descendants (jti_hash) AS (
       SELECT jti_hash FROM refresh_tokens WHERE jti_hash = $1
       UNION
       SELECT r.jti_hash FROM refresh_tokens r JOIN descendants d ON r.parent_jti_hash = d.jti_hash
     )
     UPDATE refresh_tokens SET revoked = true, revoked_at = now()
      WHERE jti_hash IN (SELECT jti_hash FROM descendants) AND NOT revoked`,
    [jtiHash],
  );
  return rowCount ?? 0;
}

/** Revokes every live refresh token of a user (password reset, disabled account). */
export async function revokeTokensOfUser(db: Queryable, userId: string): Promise<number> {
  const { rowCount } = await db.query('UPDATE refresh_tokens SET revoked = true, revoked_at = now() WHERE user_id = $1 AND NOT revoked', [userId]);
  return rowCount ?? 0;
}

/** Revokes every live refresh token issued to a client (disabled client). */
export async function revokeTokensOfClient(db: Queryable, clientId: string): Promise<number> {
  const { rowCount } = await db.query('UPDATE refresh_tokens SET revoked = true, revoked_at = now() WHERE client_id = $1 AND NOT revoked', [clientId]);
  return rowCount ?? 0;
}
