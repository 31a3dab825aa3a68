/**
 * OAuth 2.0 errors of the token and revocation endpoints (RFC 6749 §5.2, RFC 7009 §2.2.1). Call
 * sites throw table entries (`oauthErrors.invalid_grant()`); the OAuth routes render them as
 * `{ error, error_description }`, never in the kit's `{ error: { code, message } }` shape.
 *
 * invalid_grant is 400 as RFC 6749 says, except for a wrong username or password, which keeps
 * upstream's 401 (`invalidCredentials()`): the IDE clients rely on it.
 */
import type { FastifyReply } from 'fastify';
import { AppError, defineErrors, type ErrorDef } from '@codelab/service-kit';

export const OAUTH_ERROR_TABLE = {
  invalid_request: { status: 400, message: 'The request is missing a required parameter or is malformed' },
  invalid_client: { status: 401, message: 'Client authentication failed' },
  invalid_grant: { status: 400, message: 'The refresh token is invalid, expired, revoked or was issued to another client' },
  unauthorized_client: { status: 400, message: 'The client is not allowed to use this grant type' },
  unsupported_grant_type: { status: 400, message: 'The grant type is not supported' },
  invalid_scope: { status: 400, message: 'The requested scope is invalid or exceeds the scope allowed for the client' },
  /** RFC 7009 §2.2.1: access tokens are self-contained JWTs and cannot be revoked before they expire. */
  unsupported_token_type: {
    status: 400,
    message: 'Access tokens cannot be revoked: they expire after their lifetime; revoke the refresh token',
  },
  /** Upstream's 429 of its rate limiter (not an RFC 6749 code; OAuth clients treat it as an error string). */
  rate_limit_exceeded: { status: 429, message: 'Too many requests. Please try again later.' },
  server_error: { status: 500, message: 'An internal error occurred' },
} as const satisfies Record<string, ErrorDef>;

export type OAuthErrorCode = keyof typeof OAUTH_ERROR_TABLE;

/** Token responses, successful or not, must not be cached (RFC 6749 §5.1). */
export const NO_STORE_HEADERS = { 'cache-control': 'no-store', pragma: 'no-cache' } as const;

export interface OAuthError extends AppError {
  readonly code: OAuthErrorCode;
}

/** `oauthErrors.invalid_grant('message')`: kit AppErrors whose code is the RFC 6749 error. */
export const oauthErrors = defineErrors(OAUTH_ERROR_TABLE) as {
  [K in OAuthErrorCode]: (message?: string, details?: Record<string, unknown>) => OAuthError;
};

/** The password grant's failure: invalid_grant with upstream's 401 (RFC 6749 would say 400). */
export function invalidCredentials(): OAuthError {
  return new AppError('invalid_grant', { status: 401, message: 'Invalid username or password' }) as OAuthError;
}

/**
 * A login refused because the username or the client address is locked (upstream: 429
 * invalid_grant). The same answer whether the username exists or not.
 */
export function lockedOut(scope: 'username' | 'ip', retryAfterSeconds: number): OAuthError {
  const message =
    scope === 'ip'
      ? `Too many failed attempts from this IP. Try again in ${retryAfterSeconds} seconds.`
      : `Too many failed attempts. Try again in ${retryAfterSeconds} seconds.`;
  return new AppError('invalid_grant', { status: 429, message }, undefined, { retryAfterSeconds }) as OAuthError;
}

/** The token endpoint's per-address rate limit was hit. */
export function rateLimited(limit: number, retryAfterSeconds: number): OAuthError {
  return oauthErrors.rate_limit_exceeded(undefined, { retryAfterSeconds, limit });
}

export function isOAuthError(err: unknown): err is OAuthError {
  return err instanceof AppError && Object.hasOwn(OAUTH_ERROR_TABLE, err.code);
}

/**
 * Maps whatever reached the token route's error handler to an OAuth error: table entries as they
 * are, fastify's request errors (content type, body size, malformed body) as invalid_request, and
 * anything else as server_error (the caller logs it).
 */
export function toOAuthError(err: unknown): OAuthError {
  if (isOAuthError(err)) return err;
  const e = err as { code?: unknown; statusCode?: unknown };
  const status = typeof e.statusCode === 'number' ? e.statusCode : 500;
  if (status >= 400 && status < 500) {
    switch (e.code) {
      case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
        return oauthErrors.invalid_request('Content-Type must be application/x-www-form-urlencoded');
      case 'FST_ERR_CTP_BODY_TOO_LARGE':
        return oauthErrors.invalid_request('Request body too large');
      default:
        return oauthErrors.invalid_request('The request body could not be read');
    }
  }
  return oauthErrors.server_error();
}

export function sendOAuthError(reply: FastifyReply, err: OAuthError): FastifyReply {
  if (err.code === 'invalid_client') reply.header('www-authenticate', 'Basic realm="codelab"');
  const retryAfter = err.details?.retryAfterSeconds;
  if (typeof retryAfter === 'number') reply.header('retry-after', String(Math.max(1, Math.ceil(retryAfter))));
  if (typeof err.details?.limit === 'number')
    reply.headers({ 'x-ratelimit-limit': String(err.details.limit), 'x-ratelimit-remaining': '0' });
  return reply.status(err.statusCode).headers(NO_STORE_HEADERS).send({ error: err.code, error_description: err.message });
}
