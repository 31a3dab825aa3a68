/** GET /api/v1/health (upstream's path): public, the gateway alone, asking no peer (the kit's `/ready` does). */
import type { FastifyInstance } from 'fastify';

export function registerHealthRoutes(app: FastifyInstance, { version }: { version: string }): void {
  app.get('/api/v1/health', { config: { public: true }, logLevel: 'warn' }, async () => ({
    status: 'healthy',
    service: 'gateway',
    version,
  }));
}
