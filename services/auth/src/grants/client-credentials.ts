/**
 * The client_credentials grant (RFC 6749 §4.4): confidential clients only, an access token alone
 * (no refresh token, §4.4.3) whose `sub` is the client id (RFC 9068 §2.2), scope a subset of the
 * client's.
 */
import { grantedScope } from '../clients.ts';
import { oauthErrors } from '../errors.ts';
import { auditSuccess, refuse, requireGrant, type GrantHandler } from './context.ts';

export const clientCredentialsGrant: GrantHandler = async (deps, ctx, client) => {
  const { db, tokens, config } = deps;
  if (!client.isConfidential) {
    throw await refuse(
      db,
      ctx,
      'public_client',
      oauthErrors.unauthorized_client('Public clients may not use the client_credentials grant'),
    );
  }
  await requireGrant(db, ctx, client, 'client_credentials');
  const scope = grantedScope(ctx.form.scope, client.allowedScopes);
  if (scope === undefined) {
    throw await refuse(db, ctx, 'invalid_scope', oauthErrors.invalid_scope(`Scope must be a subset of: ${client.allowedScopes.join(' ')}`));
  }
  const token = await tokens.issueAccessToken({
    subject: client.clientId,
    clientId: client.clientId,
    scope,
    lifetime: client.accessTokenLifetime ?? config.accessTokenLifetime,
  });
  // Written before answering: a client token is never issued without its audit row.
  await auditSuccess(db, ctx, { eventType: 'client_credentials', clientId: client.clientId, eventData: { scope } });
  return { access_token: token.accessToken, token_type: 'bearer', expires_in: token.expiresIn, scope: token.scope };
};
