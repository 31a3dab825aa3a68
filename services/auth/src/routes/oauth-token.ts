/**
 * POST /oauth/token (RFC 6749 §3.2, §5): the password, refresh_token and client_credentials grants.
 *
 * The flow, in order, with the three places a request can be hooked (limits):
 *   1. `hooks.beforeCredentials`: before anything is checked (may refuse by throwing an OAuthError);
 *   2. grant type, then client authentication (client-auth.ts), then the grant (grants/*.ts);
 *   3. `hooks.afterFailure` when the request is refused, `hooks.afterSuccess` when tokens were issued.
 *
 * Every answer, success or error, is `Cache-Control: no-store` and `Pragma: no-cache`; errors are
 * RFC 6749 bodies, whatever failed (a JSON body, a repeated parameter, the database).
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { authenticateClient, readClientCredentials } from '../client-auth.ts';
import { NO_STORE_HEADERS, oauthErrors, sendOAuthError, toOAuthError, type OAuthError } from '../errors.ts';
import { acceptOnlyFormBodies, formOf } from '../form-body.ts';
import { clientCredentialsGrant } from '../grants/client-credentials.ts';
import { refuse, type GrantDeps, type GrantHandler, type TokenRequestContext } from '../grants/context.ts';
import { passwordGrant } from '../grants/password.ts';
import { refreshTokenGrant } from '../grants/refresh-token.ts';
import { grantTypeLabel } from '../metrics.ts';

/** Token requests are a few short parameters. */
export const OAUTH_BODY_LIMIT = 16 * 1024;

const GRANTS: Readonly<Record<string, GrantHandler>> = {
  password: passwordGrant,
  refresh_token: refreshTokenGrant,
  client_credentials: clientCredentialsGrant,
};

export interface TokenHooks {
  /** Runs first, before any credential is checked; throw an OAuthError to refuse the request. */
  beforeCredentials?(ctx: TokenRequestContext): Promise<void>;
  /** Runs when the request is refused (`ctx.failureReason` says why when a check failed); must not throw. */
  afterFailure?(ctx: TokenRequestContext, error: OAuthError): Promise<void>;
  /** Runs after tokens were issued; must not throw. */
  afterSuccess?(ctx: TokenRequestContext): Promise<void>;
}

export interface OAuthTokenDeps extends GrantDeps {
  hooks?: TokenHooks;
  /** The client's address (default `request.ip`). */
  clientIp?: (request: FastifyRequest) => string;
}

export async function registerOAuthTokenRoutes(app: FastifyInstance, deps: OAuthTokenDeps): Promise<void> {
  const { db, metrics, hooks = {} } = deps;

  async function handle(ctx: TokenRequestContext): Promise<Awaited<ReturnType<GrantHandler>>> {
    await hooks.beforeCredentials?.(ctx);
    const grantType = ctx.form.grant_type;
    if (!grantType) throw oauthErrors.invalid_request('Missing required parameter: grant_type');
    const grant = Object.hasOwn(GRANTS, grantType) ? GRANTS[grantType] : undefined;
    if (!grant) throw oauthErrors.unsupported_grant_type(`Grant type '${grantType.slice(0, 64)}' is not supported`);
    const presented = readClientCredentials(ctx.request.headers.authorization, ctx.form);
    ctx.clientId = presented.clientId;
    const auth = await authenticateClient(db, presented);
    if (!auth.ok) throw await refuse(db, ctx, auth.reason, oauthErrors.invalid_client());
    return grant(deps, ctx, auth.client);
  }

  // in a context of its own: only form bodies are parsed, for this route alone
  await app.register(async (scope) => {
    acceptOnlyFormBodies(scope, OAUTH_BODY_LIMIT);

    scope.post(
      '/oauth/token',
      {
        config: { public: true },
        bodyLimit: OAUTH_BODY_LIMIT,
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
        const ctx: TokenRequestContext = {
          request,
          form,
          grantType: grantTypeLabel(form.grant_type),
          ip: deps.clientIp?.(request) ?? request.ip,
        };
        let body;
        try {
          body = await handle(ctx);
        } catch (err) {
          await hooks.afterFailure?.(ctx, toOAuthError(err));
          throw err;
        }
        await hooks.afterSuccess?.(ctx);
        metrics.countTokenRequest(ctx.grantType, 'success');
        metrics.tokenIssueDuration.observe({ grant_type: ctx.grantType }, (performance.now() - started) / 1000);
        return reply.headers(NO_STORE_HEADERS).send(body);
      },
    );
  });
}
