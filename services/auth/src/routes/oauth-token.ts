/**
 * POST /oauth/token (RFC 6749 §4.3, §5): the password grant. The refresh_token and
 * client_credentials grants come with a later issue and answer unsupported_grant_type until then.
 *
 * Every answer, success or error, is `Cache-Control: no-store`; errors are RFC 6749 bodies, whatever
 * failed (a JSON body, a repeated parameter, the database).
 */
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import type { Database } from '@codelab/service-kit/db';
import { writeAudit, type AuditEvent } from '../audit.ts';
import { findClient, grantedScope } from '../clients.ts';
import type { AuthConfig } from '../config.ts';
import { NO_STORE_HEADERS, oauthErrors, sendOAuthError, toOAuthError, type OAuthError } from '../errors.ts';
import { acceptOnlyFormBodies, formOf, type FormBody } from '../form-body.ts';
import { grantTypeLabel, type AuthMetrics } from '../metrics.ts';
import { verifyDummy, verifyPassword } from '../passwords.ts';
import type { TokenIssuer, TokenPair } from '../tokens.ts';
import { findUserByLogin, recordLogin } from '../users.ts';

/** Token requests are a few short parameters. */
const TOKEN_BODY_LIMIT = 16 * 1024;
/** Grants the later OAuth issue adds. */
const PLANNED_GRANTS = new Set(['refresh_token', 'client_credentials']);

export interface OAuthTokenDeps {
  db: Database;
  tokens: TokenIssuer;
  metrics: AuthMetrics;
  config: Pick<AuthConfig, 'accessTokenLifetime' | 'refreshTokenLifetime'>;
}

type LoginFailure = 'invalid_client' | 'unauthorized_client' | 'invalid_scope' | 'unknown_user' | 'wrong_password' | 'inactive_user';

export function oauthTokenRoutes(deps: OAuthTokenDeps): FastifyPluginAsync {
  const { db, tokens, metrics, config } = deps;

  const audit = async (request: FastifyRequest, form: FormBody, event: Omit<AuditEvent, 'clientId' | 'ipAddress' | 'userAgent'>): Promise<void> => {
    try {
      await writeAudit(db, { ...event, clientId: form.client_id, ipAddress: request.ip, userAgent: request.headers['user-agent'] });
    } catch (err) {
      request.log.error({ err, event_type: event.eventType }, 'audit log write failed');
    }
  };

  /** Records a failed login and returns the error to throw. */
  const loginFailed = async (request: FastifyRequest, form: FormBody, reason: LoginFailure, error: OAuthError, userId?: string): Promise<OAuthError> => {
    request.log.info({ client_id: form.client_id, reason }, 'password grant refused');
    await audit(request, form, {
      eventType: 'login_failed',
      success: false,
      userId,
      eventData: { username: form.username?.slice(0, 255), reason },
      errorMessage: error.message,
    });
    return error;
  };

  async function passwordGrant(request: FastifyRequest, form: FormBody): Promise<TokenPair> {
    const clientId = form.client_id!;
    const client = await findClient(db, clientId);
    // Confidential clients authenticate with a secret, which comes with the later OAuth issue.
    if (!client || !client.isActive || client.isConfidential) {
      throw await loginFailed(request, form, 'invalid_client', oauthErrors.invalid_client());
    }
    if (!client.allowedGrantTypes.includes('password')) {
      throw await loginFailed(request, form, 'unauthorized_client', oauthErrors.unauthorized_client(`Client '${clientId}' may not use the password grant`));
    }
    const { username, password } = form;
    if (!username || !password) throw oauthErrors.invalid_request('Missing required parameters: username and password');
    // Checked before the password: it depends on the client only, and saves a hash computation.
    const scope = grantedScope(form.scope, client.allowedScopes);
    if (scope === undefined) {
      throw await loginFailed(request, form, 'invalid_scope', oauthErrors.invalid_scope(`Scope must be a subset of: ${client.allowedScopes.join(' ')}`));
    }

    // The same work and the same answer whether the user exists or not.
    const user = await findUserByLogin(db, username);
    const valid = user ? await verifyPassword(password, user.passwordHash) : await verifyDummy(password);
    if (!user || !valid || !user.isActive) {
      const reason = !user ? 'unknown_user' : !valid ? 'wrong_password' : 'inactive_user';
      throw await loginFailed(request, form, reason, oauthErrors.invalid_grant(), user?.id);
    }

    return db.transaction(async (tx) => {
      await recordLogin(tx, user.id);
      const pair = await tokens.issuePair(tx, {
        userId: user.id,
        clientId,
        scope,
        accessTokenLifetime: client.accessTokenLifetime ?? config.accessTokenLifetime,
        refreshTokenLifetime: client.refreshTokenLifetime ?? config.refreshTokenLifetime,
      });
      await writeAudit(tx, {
        eventType: 'login_success',
        success: true,
        userId: user.id,
        clientId,
        eventData: { scope },
        ipAddress: request.ip,
        userAgent: request.headers['user-agent'],
      });
      return pair;
    });
  }

  return async (app) => {
    acceptOnlyFormBodies(app, TOKEN_BODY_LIMIT);

    app.post(
      '/oauth/token',
      {
        config: { public: true },
        bodyLimit: TOKEN_BODY_LIMIT,
        errorHandler(err, request, reply) {
          const error = toOAuthError(err);
          if (error.code === 'server_error') request.log.error({ err }, 'token request failed');
          metrics.countTokenRequest(grantTypeLabel(formOf(request.body).grant_type), error.code);
          return sendOAuthError(reply, error);
        },
      },
      async (request, reply) => {
        const started = performance.now();
        const form = formOf(request.body);
        const grantType = form.grant_type;
        if (!grantType) throw oauthErrors.invalid_request('Missing required parameter: grant_type');
        if (!form.client_id) throw oauthErrors.invalid_request('Missing required parameter: client_id');
        if (grantType !== 'password') {
          const shown = grantType.slice(0, 64);
          throw oauthErrors.unsupported_grant_type(
            PLANNED_GRANTS.has(grantType) ? `Grant type '${shown}' is not implemented yet` : `Grant type '${shown}' is not supported`,
          );
        }

        const pair = await passwordGrant(request, form);
        metrics.countTokenRequest('password', 'success');
        metrics.tokenIssueDuration.observe({ grant_type: 'password' }, (performance.now() - started) / 1000);
        return reply.headers(NO_STORE_HEADERS).send({
          access_token: pair.accessToken,
          refresh_token: pair.refreshToken,
          token_type: 'bearer',
          expires_in: pair.expiresIn,
          scope: pair.scope,
        });
      },
    );
  };
}
