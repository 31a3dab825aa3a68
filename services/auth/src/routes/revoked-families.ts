/**
 * GET /internal/revoked-token-families (internal key): the token families (`sid` claims) revoked
 * while some of their access tokens may still be valid. Gateways poll it and refuse those tokens,
 * so a revoked lineage stops working everywhere within one poll interval instead of at `exp`.
 */
import type { FastifyInstance } from 'fastify';
import { kitErrors, checkInternalKey, INTERNAL_AUTH_HEADER, type Database } from '@codelab/service-kit';
import { pruneRevokedFamilies, revokedFamilies } from '../refresh-tokens.ts';

const PRUNE_EVERY_MS = 60_000;

export function registerRevokedFamiliesRoutes(app: FastifyInstance, opts: { db: Database; internalApiKey: string }): void {
  let lastPrune = 0;
  app.get('/internal/revoked-token-families', { config: { public: true }, logLevel: 'warn' }, async (request) => {
    if (!checkInternalKey(request.headers[INTERNAL_AUTH_HEADER], opts.internalApiKey)) {
      throw kitErrors.ERR_UNAUTHORIZED(`Missing or invalid ${INTERNAL_AUTH_HEADER} header`);
    }
    if (Date.now() - lastPrune > PRUNE_EVERY_MS) {
      lastPrune = Date.now();
      await pruneRevokedFamilies(opts.db);
    }
    return { families: await revokedFamilies(opts.db) };
  });
}
