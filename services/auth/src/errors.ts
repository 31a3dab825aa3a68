/**
 * OAuth 2.0 errors of the token endpoint (RFC 6749 §5.2). Call sites throw table entries
 * (`oauthErrors.invalid_grant()`); the token route renders them as `{ error, error_description }`,
 * never in the kit's `{ error: { code, message } }` shape.
 *
 * invalid_grant keeps upstream's 401 for bad credentials (clients rely on it).
 */
import type { FastifyReply } from 'fastify';
import { AppError, defineErrors, type ErrorDef } from '@codelab/service-kit/errors';

export const OAUTH_ERROR_TABLE = {
  invalid_request: { status: 400, message: 'The request is missing a required parameter or is malformed' },
  invalid_client: { status: 401, message: 'Client authentication failed' },
  invalid_grant: { status: 401, message: 'Invalid username or password' },
  unauthorized_client: { status: 400, message: 'The client is not allowed to use this grant type' },
  unsupported_grant_type: { status: 400, message: 'The grant type is not supported' },
  invalid_scope: { status: 400, message: 'The requested scope is invalid or exceeds the scope allowed for the client' },
  server_error: { status: 500, message: 'An internal error occurred' },
} as const satisfies Record<string, ErrorDef>;

export type OAuthErrorCode = keyof typeof OAUTH_ERROR_TABLE;


/** Token responses, successful or not, must not be cached (RFC 6749 §5.1). */
export const NO_STORE_HEADERS = { 'cache-control': 'no-store', pragma: 'no-cache' } as const;

export interface OAuthError extends AppError {
  readonly code: OAuthErrorCode;
}

/** `oauthErrors.invalid_grant('message')`: kit AppErrors whose code is the RFC 6749 error. */
export const oauthErrors = defineErrors(OAUTH_ERROR_TABLE) as { [K in OAuthErrorCode]: (message?: string) => OAuthError };

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
  return reply.status(err.statusCode).headers(NO_STORE_HEADERS).send({ error: err.code, error_description: err.message });
}
