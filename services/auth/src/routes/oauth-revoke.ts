/**
 * POST /oauth/revoke (RFC 7009), with the token endpoint's client authentication.
 *
 * - A refresh token of the authenticated client: it and every token rotated from it are revoked
 *   (the client logs out; tokens of other lineages stay), audited as token_revoked. 200.
 * - Anything that is not a valid token of ours (malformed, forged, expired, unknown): 200 and
 *   nothing done (§2.2: an invalid token is not an error).
 * - A valid token issued to another client: refused with invalid_grant and not revoked (§2.1: the
 *   server verifies that the token was issued to the requesting client, and refuses the request
 *   otherwise; RFC 6749 §5.2 names that case invalid_grant).
 * - An access token: unsupported_token_type (§2.2.1). Access tokens are self-contained JWTs checked
 *   without calling this service, so they stay valid until they expire (AUTH_SERVICE__ACCESS_TOKEN_LIFETIME
 *   or the client's, 15 minutes by default); revoking the refresh token ends the session at the
 *   next refresh.
 *
 * `token_type_hint` is accepted and not needed: the token says what it is (§2.1 allows ignoring it).
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Database } from '@codelab/service-kit';
import { writeAudit } from '../audit.ts';
import { authenticateClient, readClientCredentials } from '../client-auth.ts';
import { NO_STORE_HEADERS, oauthErrors, sendOAuthError, toOAuthError } from '../errors.ts';
import { acceptOnlyFormBodies, formOf } from '../form-body.ts';
import type { AuthMetrics, RevocationOutcome } from '../metrics.ts';
import { refreshTokenState, revokeWithDescendants } from '../refresh-tokens.ts';
import type { TokenVerifier } from '../token-verifier.ts';
import { hashJti } from '../tokens.ts';
import { OAUTH_BODY_LIMIT } from './oauth-token.ts';

export interface OAuthRevokeDeps {
  db: Database;
  verifier: TokenVerifier;
  metrics: AuthMetrics;
  clientIp?: (request: FastifyRequest) => string;
}

export async function registerOAuthRevokeRoutes(app: FastifyInstance, deps: OAuthRevokeDeps): Promise<void> {
  const { db, verifier, metrics } = deps;

  // in a context of its own: only form bodies are parsed, for this route alone
  await app.register(async (scope) => {
    acceptOnlyFormBodies(scope, OAUTH_BODY_LIMIT);

    scope.post(
      '/oauth/revoke',
      {
        config: { public: true },
        bodyLimit: OAUTH_BODY_LIMIT,
        errorHandler(err, request, reply) {
          const error = toOAuthError(err);
          if (error.code === 'server_error') request.log.error({ err }, 'revocation request failed');
          const outcome: RevocationOutcome =
            error.code === 'unsupported_token_type'
              ? 'access_token'
              : error.code === 'invalid_grant' || error.code === 'invalid_client' || error.code === 'server_error'
                ? error.code
                : 'invalid_request';
          metrics.revocations.inc({ outcome });
          return sendOAuthError(reply, error);
        },
      },
      async (request, reply) => {
        const form = formOf(request.body);
        const presented = readClientCredentials(request.headers.authorization, form);
        if (!form.token) throw oauthErrors.invalid_request('Missing required parameter: token');
        const auth = await authenticateClient(db, presented);
        if (!auth.ok) {
          request.log.info({ client_id: presented.clientId, reason: auth.reason }, 'revocation refused: client authentication failed');
          throw oauthErrors.invalid_client();
        }
        const client = auth.client;

        const claims = await verifier.verify(form.token);
        let outcome: RevocationOutcome = 'unknown_token';
        if (claims) {
          if (claims.client_id !== client.clientId) throw oauthErrors.invalid_grant('The token was issued to another client');
          if (claims.type === 'access') throw oauthErrors.unsupported_token_type();
          const jtiHash = hashJti(claims.jti);
          // A token whose row is gone (its user was deleted) is unknown.
          if ((await refreshTokenState(db, jtiHash)) !== 'missing') {
            const revoked = await revokeWithDescendants(db, jtiHash);
            await writeAudit(db, {
              eventType: 'token_revoked',
              success: true,
              userId: claims.sub,
              clientId: client.clientId,
              eventData: { token_type: 'refresh_token', revoked_tokens: revoked },
              ipAddress: deps.clientIp?.(request) ?? request.ip,
              userAgent: request.headers['user-agent'],
            });
            outcome = 'revoked';
          }
        }
        metrics.revocations.inc({ outcome });
        return reply.headers(NO_STORE_HEADERS).send();
      },
    );
  });
}
