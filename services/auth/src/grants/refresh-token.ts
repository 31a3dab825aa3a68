/**
 * The refresh_token grant (RFC 6749 §6) with rotation: every use revokes the presented token and
 * issues a new pair whose refresh token is its child in the lineage (refresh-tokens.ts).
 *
 * Checked before the token is consumed (so that a refused request leaves it usable): the JWT
 * (signature, iss, aud, exp, nbf, `type: refresh`), that it was issued to the authenticated client,
 * that the user exists and is active, and the scope, which may only narrow: a subset of the original
 * grant that the client is still allowed, without api:admin when the user is no longer an admin
 * (the new pair is held to that). Then one conditional UPDATE picks the single winner.
 *
 * A token that verifies but whose row is already revoked is a reuse: its whole lineage is revoked,
 * audited as refresh_reuse_detected and counted, and the answer is invalid_grant. This includes
 * the losers of a concurrent refresh of one token: the server cannot tell a client racing itself
 * from an attacker replaying a stolen token (RFC 6819 §5.2.2.3), so the winner's new refresh token
 * is revoked too and the user logs in again. Clients must refresh one request at a time.
 *
 * New refresh tokens get the client's full refresh lifetime (a sliding window, as upstream).
 */
import { ADMIN_SCOPE, grantedScope, scopeForUser, splitScope } from '../clients.ts';
import { oauthErrors } from '../errors.ts';
import { claimRefreshToken, refreshTokenState, revokeLineage } from '../refresh-tokens.ts';
import { hashJti } from '../tokens.ts';
import { findUserById } from '../users.ts';
import { auditRequest, auditSuccess, refuse, requireGrant, type GrantHandler } from './context.ts';

export const refreshTokenGrant: GrantHandler = async (deps, ctx, client) => {
  const { db, tokens, verifier, metrics, config } = deps;
  await requireGrant(db, ctx, client, 'refresh_token');
  const presented = ctx.form.refresh_token;
  if (!presented) throw oauthErrors.invalid_request('Missing required parameter: refresh_token');

  const claims = await verifier.verify(presented);
  if (claims?.type !== 'refresh') {
    throw await refuse(db, ctx, 'invalid_token', oauthErrors.invalid_grant('Invalid or expired refresh token'));
  }
  const user = await findUserById(db, claims.sub);
  ctx.userId = user?.id;
  if (claims.client_id !== client.clientId) {
    // Not consumed and no lineage revoked: another client cannot spend (or burn) this token.
    throw await refuse(db, ctx, 'client_mismatch', oauthErrors.invalid_grant('Invalid refresh token'));
  }
  if (!user?.isActive) {
    throw await refuse(db, ctx, user ? 'inactive_user' : 'unknown_user', oauthErrors.invalid_grant('Invalid refresh token'));
  }
  const allowed = splitScope(claims.scope).filter((s) => client.allowedScopes.includes(s));
  const requested = grantedScope(ctx.form.scope, allowed);
  if (requested === undefined) {
    throw await refuse(
      db,
      ctx,
      'invalid_scope',
      oauthErrors.invalid_scope(`Scope must be a subset of the original grant: ${allowed.join(' ')}`),
    );
  }
  // Never escalates: a user demoted since the login loses api:admin here (RFC 6749 §3.3).
  const { scope, dropped } = scopeForUser(requested, user.isAdmin);
  if (!scope) {
    throw await refuse(db, ctx, 'invalid_scope', oauthErrors.invalid_scope(`The scope ${ADMIN_SCOPE} is granted to admin users only`));
  }

  const jtiHash = hashJti(claims.jti);
  const pair = await db.transaction(async (tx) => {
    const claimed = await claimRefreshToken(tx, jtiHash);
    if (!claimed) return undefined;
    const issued = await tokens.issuePair(tx, {
      userId: user.id,
      clientId: client.clientId,
      scope,
      accessTokenLifetime: client.accessTokenLifetime ?? config.accessTokenLifetime,
      refreshTokenLifetime: client.refreshTokenLifetime ?? config.refreshTokenLifetime,
      parentJtiHash: jtiHash,
      ...(claimed.familyId ? { familyId: claimed.familyId } : {}),
    });
    await auditSuccess(tx, ctx, {
      eventType: 'token_refresh',
      userId: user.id,
      clientId: client.clientId,
      eventData: { scope, ...(dropped.length ? { refused_scope: dropped.join(' ') } : {}) },
    });
    return issued;
  });

  if (!pair) {
    const state = await refreshTokenState(db, jtiHash);
    if (state === 'revoked') {
      const revoked = await revokeLineage(db, jtiHash);
      metrics.refreshReuseDetected.inc();
      ctx.failureReason = 'reuse_detected';
      ctx.request.log.warn(
        { client_id: client.clientId, user_id: user.id, revoked_tokens: revoked },
        'refresh token reuse detected: lineage revoked',
      );
      const error = oauthErrors.invalid_grant('Refresh token has been revoked (reuse detected)');
      await auditRequest(db, ctx, {
        eventType: 'refresh_reuse_detected',
        success: false,
        userId: user.id,
        eventData: { revoked_tokens: revoked },
        errorMessage: error.message,
      });
      throw error;
    }
    throw await refuse(
      db,
      ctx,
      state === 'expired' ? 'expired' : 'unknown_token',
      oauthErrors.invalid_grant(state === 'expired' ? 'Refresh token has expired' : 'Refresh token not found'),
    );
  }
  return {
    access_token: pair.accessToken,
    refresh_token: pair.refreshToken,
    token_type: 'bearer',
    expires_in: pair.expiresIn,
    scope: pair.scope,
  };
};
