/**
 * GET /.well-known/jwks.json: the public keys tokens are verified with (RFC 7517).
 */
import type { FastifyInstance } from 'fastify';
import type { KeyRing } from '../keys.ts';

/** Verifiers (the gateway) cache the set for this long; a rotation publishes the next key earlier. */
const JWKS_MAX_AGE_SECONDS = 300;

export function registerJwksRoutes(app: FastifyInstance, { keys }: { keys: KeyRing }): void {
  app.get('/.well-known/jwks.json', { config: { public: true } }, async (_request, reply) => {
    return reply.header('cache-control', `public, max-age=${JWKS_MAX_AGE_SECONDS}`).send(keys.jwks());
  });
}
