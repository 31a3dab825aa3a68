/**
 * The password grant (RFC 6749 §4.3). The same work and the same answer (401 invalid_grant, as
 * upstream) whether the user is unknown, the password wrong or the account disabled.
 *
 * Scope: a subset of the client's (invalid_scope otherwise, checked first); none asked means the
 * client's scopes but api:admin. api:admin is granted only when asked for, to an admin user; a
 * non-admin asking for it gets the rest of what was asked (RFC 6749 §3.3, the answer's `scope`
 * says what was granted), or invalid_scope when nothing else was asked.
 */
import { ADMIN_SCOPE, grantedScope, scopeForUser } from '../clients.ts';
import { invalidCredentials, oauthErrors } from '../errors.ts';
import { verifyDummy, verifyPassword } from '../passwords.ts';
import { findUserByLogin, recordLogin } from '../users.ts';
import { auditSuccess, refuse, requireGrant, type GrantHandler } from './context.ts';

export const passwordGrant: GrantHandler = async (deps, ctx, client) => {
  const { db, tokens, config } = deps;
  await requireGrant(db, ctx, client, 'password');
  const { username, password } = ctx.form;
  if (!username || !password) throw oauthErrors.invalid_request('Missing required parameters: username and password');
  // Checked before the password: it depends on the client only, and saves a hash computation.
  const requested = grantedScope(ctx.form.scope, client.allowedScopes);
  if (requested === undefined) {
    throw await refuse(db, ctx, 'invalid_scope', oauthErrors.invalid_scope(`Scope must be a subset of: ${client.allowedScopes.join(' ')}`));
  }

  const user = await findUserByLogin(db, username);
  const valid = user ? await verifyPassword(password, user.passwordHash) : await verifyDummy(password);
  ctx.userId = user?.id;
  if (!user || !valid || !user.isActive) {
    throw await refuse(db, ctx, !user ? 'unknown_user' : !valid ? 'wrong_password' : 'inactive_user', invalidCredentials());
  }
  const asked = (ctx.form.scope ?? '').trim() !== '';
  const { scope, dropped } = scopeForUser(requested, asked && user.isAdmin);
  if (!scope) {
    const why = user.isAdmin ? `is granted only when asked for (scope=${ADMIN_SCOPE})` : 'is granted to admin users only';
    throw await refuse(db, ctx, 'invalid_scope', oauthErrors.invalid_scope(`The scope ${ADMIN_SCOPE} ${why}`));
  }
  // Only what was asked for and refused is worth recording (the default never includes api:admin).
  const refused = asked && dropped.length > 0 ? { refused_scope: dropped.join(' ') } : {};

  const pair = await db.transaction(async (tx) => {
    await recordLogin(tx, user.id);
    const issued = await tokens.issuePair(tx, {
      userId: user.id,
      clientId: client.clientId,
      scope,
      accessTokenLifetime: client.accessTokenLifetime ?? config.accessTokenLifetime,
      refreshTokenLifetime: client.refreshTokenLifetime ?? config.refreshTokenLifetime,
    });
    await auditSuccess(tx, ctx, {
      eventType: 'login_success',
      userId: user.id,
      clientId: client.clientId,
      eventData: { scope, ...refused },
    });
    return issued;
  });
  return {
    access_token: pair.accessToken,
    refresh_token: pair.refreshToken,
    token_type: 'bearer',
    expires_in: pair.expiresIn,
    scope: pair.scope,
  };
};
