/**
 * GET /: what this service is (upstream compatible, without the docs link).
 */
import type { FastifyPluginAsync } from 'fastify';

export function rootRoutes(version: string): FastifyPluginAsync {
  return async (app) => {
    app.get('/', { config: { public: true } }, async () => ({ service: 'CodeLab Auth Service', version }));
  };
}
