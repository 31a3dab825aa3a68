/**
 * GET /docs/<name>.md: the README, the troubleshooting guide and the runbooks as Markdown, which the
 * page renders at /docs/<name> (that path without `.md` is the page's own route).
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { FastifyInstance, FastifyReply } from 'fastify';

/** Only these: the path never comes from the request. */
const DOCS: Record<string, string> = {
  'readme.md': 'README.md',
  'troubleshooting.md': 'docs/troubleshooting.md',
  'runbooks.md': 'docs/runbooks.md',
};

export function registerDocsRoutes(
  app: FastifyInstance,
  deps: { docsDir: string; sendPage: (reply: FastifyReply) => Promise<unknown> },
): void {
  app.get<{ Params: { name: string } }>('/docs/:name', { config: { public: true } }, async (request, reply) => {
    if (!request.params.name.endsWith('.md')) return deps.sendPage(reply);
    const file = DOCS[request.params.name];
    if (!file)
      return reply
        .status(404)
        .send({ error: { code: 'WEB_ERR_NOT_FOUND', message: `no document ${request.params.name}: ${Object.keys(DOCS).join(', ')}` } });
    const text = await readFile(path.join(deps.docsDir, file), 'utf8').catch(() => undefined);
    if (text === undefined) return reply.status(404).send({ error: { code: 'WEB_ERR_NOT_FOUND', message: `${file} is not here` } });
    return reply.type('text/markdown; charset=utf-8').send(text);
  });
}
