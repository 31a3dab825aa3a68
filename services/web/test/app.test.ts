/**
 * The website's server: the page and its client-side routes, /config.json, the docs, and the
 * operations view's server side against stand-in services and a stand-in Prometheus.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '@codelab/service-kit/testing';
import type { Service } from '@codelab/service-kit';
import { buildApp } from '../src/app.ts';
import { readWebConfig } from '../src/config.ts';

async function standIn(routes: (app: FastifyInstance) => void): Promise<{ app: FastifyInstance; url: string }> {
  const app = Fastify();
  routes(app);
  const url = await app.listen({ host: '127.0.0.1', port: 0 });
  return { app, url };
}

describe('the web server', () => {
  let web: Service;
  let base: string;
  let ui: string;
  const standIns: FastifyInstance[] = [];

  beforeAll(async () => {
    ui = mkdtempSync(path.join(tmpdir(), 'web-ui-'));
    mkdirSync(path.join(ui, 'assets'));
    writeFileSync(path.join(ui, 'index.html'), '<!doctype html><title>CodeLab</title><script src="/assets/app-1.js"></script>');
    writeFileSync(path.join(ui, 'assets', 'app-1.js'), 'console.log(1)');
    const up = await standIn((a) => {
      a.get('/health', async () => ({ status: 'healthy', service: 'auth', version: '0.1.0' }));
      a.get('/ready', async (_q, r) => r.status(503).send({ status: 'not_ready', checks: { postgres: 'connection refused' } }));
    });
    const prometheus = await standIn((a) =>
      a.get('/api/v1/query', async (q) => ({
        status: 'success',
        data: {
          resultType: 'vector',
          result:
            (q.query as { query: string }).query === 'slo:error_budget_remaining:ratio'
              ? [
                  { metric: { slo: 'turn-completion', service: 'runtime' }, value: [1, '0.75'] },
                  { metric: { slo: 'llm-availability', service: 'llm-proxy' }, value: [1, 'NaN'] },
                ]
              : [],
        },
      })),
    );
    standIns.push(up.app, prometheus.app);
    web = await buildApp(
      readWebConfig({
        WEB__UI_DIR: ui,
        WEB__AUTH_URL: 'http://auth.example',
        WEB__OPS_TARGETS: `auth=${up.url},runtime=http://127.0.0.1:1`,
        PROMETHEUS_URL: prometheus.url,
      }),
      { logger: silentLogger() },
    );
    base = await web.app.listen({ host: '127.0.0.1', port: 0 });
  });
  afterAll(async () => {
    await web?.app.close();
    for (const a of standIns) await a.close();
    rmSync(ui, { recursive: true, force: true });
  });

  it('serves the page at / and at its client-side routes, assets cached, missing files 404', async () => {
    for (const p of ['/', '/c/some-session', '/ops', '/docs/runbooks']) {
      const res = await fetch(`${base}${p}`);
      expect(res.status, p).toBe(200);
      expect(res.headers.get('content-type'), p).toContain('text/html');
      expect(await res.text()).toContain('<title>CodeLab</title>');
    }
    const asset = await fetch(`${base}/assets/app-1.js`);
    expect(asset.status).toBe(200);
    expect(asset.headers.get('cache-control')).toContain('immutable');
    expect((await fetch(`${base}/assets/gone.js`)).status).toBe(404);
    expect((await fetch(`${base}/ready`)).status).toBe(200);
  });

  it('says where auth and the gateway are (empty: the same origin)', async () => {
    expect(await (await fetch(`${base}/config.json`)).json()).toEqual({
      authUrl: 'http://auth.example',
      gatewayUrl: '',
      clientId: 'codelab-flutter-app',
      version: '0.1.0',
    });
  });

  it('serves the README, the troubleshooting guide and the runbooks as Markdown, nothing else', async () => {
    const res = await fetch(`${base}/docs/runbooks.md`);
    expect(res.headers.get('content-type')).toContain('text/markdown');
    expect(await res.text()).toMatch(/^#/m);
    expect((await fetch(`${base}/docs/readme.md`)).status).toBe(200);
    for (const p of ['/docs/..%2FREADME.md', '/docs/.env.md', '/docs/package.json.md'])
      expect((await fetch(`${base}${p}`)).status, p).toBe(404);
  });

  it("reports each service's health and readiness as they answered, and one that cannot be reached", async () => {
    const { services } = (await (await fetch(`${base}/ops/services`)).json()) as { services: Record<string, unknown>[] };
    expect(services[0]).toEqual({
      name: 'auth',
      healthStatus: 200,
      health: { status: 'healthy', service: 'auth', version: '0.1.0' },
      readyStatus: 503,
      ready: { status: 'not_ready', checks: { postgres: 'connection refused' } },
    });
    expect(services[1]).toMatchObject({ name: 'runtime', healthStatus: null, readyStatus: null, error: expect.any(String) });
    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metrics).toMatch(/^web_ops_calls_total\{target="runtime",outcome="unreachable"\} 2$/m);
  });

  it("gives the SLOs' error budget left from Prometheus's recording rule", async () => {
    expect(await (await fetch(`${base}/ops/slo`)).json()).toEqual({
      enabled: true,
      slos: [
        { slo: 'llm-availability', service: 'llm-proxy', budgetRemaining: null },
        { slo: 'turn-completion', service: 'runtime', budgetRemaining: 0.75 },
      ],
    });
  });
});
