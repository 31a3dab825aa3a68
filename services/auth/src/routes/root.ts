/**
 * GET /: what this service is (upstream compatible, without the docs link).
 */
import type { FastifyInstance } from 'fastify';

export function registerRootRoutes(app: FastifyInstance, { version }: { version: string }): void {
  app.get('/', { config: { public: true } }, async () => ({ service: 'CodeLab Auth Service', version }));
}
