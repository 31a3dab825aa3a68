/**
 * web: the website at `/` (port 3000): the web console built from ui/ (sign in, conversations,
 * operations, docs), which talks to auth and the gateway like any client; and what the page needs
 * from a server of its own: where those two are (`/config.json`), each service's health and
 * readiness and the SLOs' error budget for the operations view (`/ops/*`), and the docs as Markdown
 * (`/docs/*`). Any other path without a file extension is the page (its routes are client-side).
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import type { FastifyReply } from 'fastify';
import type { Logger } from 'pino';
import { createService, type Service } from '@codelab/service-kit';
import type { WebConfig } from './config.ts';
import { createWebMetrics } from './metrics.ts';
import { registerDocsRoutes } from './routes/docs.ts';
import { registerOpsRoutes } from './routes/ops.ts';

const SERVICE_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

export async function buildApp(config: WebConfig, deps: { logger?: Logger } = {}): Promise<Service> {
  const service = createService({ name: 'web', ...config, logger: deps.logger });
  const { app } = service;
  const metrics = createWebMetrics(service.metrics);
  const uiDir = config.uiDir || path.join(SERVICE_DIR, 'ui', 'dist');
  const docsDir = config.docsDir || path.resolve(SERVICE_DIR, '..', '..');
  const index = path.join(uiDir, 'index.html');
  service.addReadinessCheck('ui', async () => {
    if (!existsSync(index)) throw new Error(`the page is not built (${index} is missing): npm run build -w @codelab/web`);
  });

  app.get('/config.json', { config: { public: true } }, async (_request, reply) => {
    void reply.header('cache-control', 'no-store');
    return { authUrl: config.authUrl, gatewayUrl: config.gatewayUrl, clientId: 'codelab-flutter-app', version: config.version };
  });
  registerOpsRoutes(app, { config, metrics });
  /** The page, for any client-side route. */
  const sendPage = async (reply: FastifyReply) => {
    if (!existsSync(index))
      return reply
        .status(503)
        .send({ error: { code: 'WEB_ERR_NOT_BUILT', message: 'the page is not built: npm run build -w @codelab/web' } });
    void reply.header('cache-control', 'no-store');
    return reply.type('text/html; charset=utf-8').sendFile('index.html', uiDir);
  };
  registerDocsRoutes(app, { docsDir, sendPage });

  // the built assets (hashed names: cached for a year); the page itself is never cached, it names them
  await app.register(fastifyStatic, {
    root: path.join(uiDir, 'assets'),
    prefix: '/assets/',
    wildcard: true,
    index: false,
    immutable: true,
    maxAge: '365d',
    allowedPath: () => true,
  });
  app.get('/*', { config: { public: true } }, async (request, reply) => {
    const p = request.url.split('?')[0] ?? '/';
    if (path.extname(p) !== '') return reply.status(404).send({ error: { code: 'WEB_ERR_NOT_FOUND', message: `${p} not found` } });
    return sendPage(reply);
  });
  return service;
}
