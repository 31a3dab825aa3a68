/**
 * The gateway's authentication hook for REST routes and the WebSocket handshake: a bearer token
 * from `Authorization`, or (handshake only, for browsers that cannot set headers) `?access_token=`.
 * A missing or bad token answers 401 before any upgrade happens.
 */
import type { FastifyReply, FastifyRequest, preValidationHookHandler } from 'fastify';
import { gatewayErrors } from '../errors.ts';
import type { GatewayMetrics } from '../metrics.ts';
import { TokenRejected, type JwtVerifier, type Principal } from './jwt-verifier.ts';

declare module 'fastify' {
  interface FastifyRequest {
    /** The authenticated caller; undefined when auth is turned off (development). */
    principal: Principal | undefined;
  }
}

export function bearerToken(request: FastifyRequest, allowQueryToken: boolean): string | undefined {
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
  return (opts: { allowQueryToken: boolean }): preValidationHookHandler =>
    async function authenticate(request: FastifyRequest, reply: FastifyReply) {
      if (!verify) return;
      try {
        request.principal = await verify(bearerToken(request, opts.allowQueryToken));
        metrics.jwtVerifications.inc({ outcome: 'ok' });
      } catch (err) {
        const rejected = err instanceof TokenRejected ? err : new TokenRejected('invalid', 'Invalid token');
        metrics.jwtVerifications.inc({ outcome: rejected.outcome });
        reply.header('www-authenticate', `Bearer realm="codelab", error="${rejected.outcome === 'missing' ? 'invalid_request' : 'invalid_token'}"`);
        if (rejected.outcome === 'jwks_unavailable') request.log.warn('JWKS unavailable: cannot verify tokens');
        throw gatewayErrors.GW_ERR_UNAUTHORIZED(rejected.message);
      }
    };
}
