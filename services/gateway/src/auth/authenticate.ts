/**
 * Authentication and scopes for REST routes and the WebSocket handshake: a bearer token from
 * `Authorization`, or (handshake only, for browsers that cannot set headers) `?access_token=`.
 * A missing or bad token answers 401, a token without the route's scope 403, both before any
 * upgrade happens; 503 when tokens cannot be verified at all (auth never reached).
 *
 * Scopes: `api:read` for reads, `api:write` for writes and conversations, `api:admin` for audit
 * and event endpoints.
 */
import type { FastifyReply, FastifyRequest, preValidationHookHandler } from 'fastify';
import { gatewayErrors } from '../errors.ts';
import type { GatewayMetrics } from '../metrics.ts';
import { TokenRejected, type JwtVerifier, type Principal } from './jwt-verifier.ts';

export type Scope = 'api:read' | 'api:write' | 'api:admin';

declare module 'fastify' {
  interface FastifyRequest {
    /** The authenticated caller; undefined when auth is turned off (development). */
    principal: Principal | undefined;
  }
}

function bearerToken(request: FastifyRequest, allowQueryToken: boolean): string | undefined {
  const header = request.headers.authorization;
  const m = typeof header === 'string' ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null;
  if (m) return m[1];
  if (allowQueryToken) {
    const q = (request.query as Record<string, unknown> | undefined)?.access_token;
    if (typeof q === 'string' && q) return q;
  }
  return undefined;
}

export function createAuthenticate(verify: JwtVerifier | undefined, metrics: GatewayMetrics) {
  return (opts: { scope: Scope; allowQueryToken?: boolean }): preValidationHookHandler =>
    async function authenticate(request: FastifyRequest, reply: FastifyReply) {
      if (!verify) return;
      let principal: Principal;
      try {
        principal = await verify(bearerToken(request, opts.allowQueryToken ?? false));
      } catch (err) {
        const rejected = err instanceof TokenRejected ? err : new TokenRejected('invalid', 'Invalid token');
        metrics.jwtVerifications.inc({ outcome: rejected.outcome });
        if (rejected.outcome === 'jwks_unavailable') {
          request.log.warn('JWKS unavailable: cannot verify tokens');
          throw gatewayErrors.GW_ERR_AUTH_UNAVAILABLE(rejected.message);
        }
        reply.header(
          'www-authenticate',
          `Bearer realm="codelab", error="${rejected.outcome === 'missing' ? 'invalid_request' : 'invalid_token'}"`,
        );
        throw gatewayErrors.GW_ERR_UNAUTHORIZED(rejected.message);
      }
      if (!principal.scopes.has(opts.scope)) {
        metrics.jwtVerifications.inc({ outcome: 'insufficient_scope' });
        reply.header('www-authenticate', `Bearer realm="codelab", error="insufficient_scope", scope="${opts.scope}"`);
        throw gatewayErrors.GW_ERR_INSUFFICIENT_SCOPE(`This call needs the scope ${opts.scope}`);
      }
      metrics.jwtVerifications.inc({ outcome: 'ok' });
      request.principal = principal;
    };
}
