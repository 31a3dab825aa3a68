/**
 * The operations view's server side (its pages call the gateway for everything else):
 * - GET /ops/services: each service's GET /health and GET /ready, asked from here (the browser
 *   reaches only auth and the gateway), with the status codes and bodies as they answered.
 * - GET /ops/slo: the SLOs' error budget left (`slo:error_budget_remaining:ratio`, the platform's
 *   recording rules) from PROMETHEUS_URL; `enabled: false` without one.
 * Both public, as the services' /health and /ready are: names, statuses and versions, no user data.
 */
import type { FastifyInstance } from 'fastify';
import type { WebConfig } from '../config.ts';
import type { WebMetrics } from '../metrics.ts';

const TIMEOUT_MS = 2000;
const KNOWN_TARGETS = new Set(['auth', 'gateway', 'runtime', 'llm-proxy', 'prometheus']);

interface Answer {
  status: number | null;
  body: unknown;
  error?: string;
}

export function registerOpsRoutes(app: FastifyInstance, deps: { config: WebConfig; metrics: WebMetrics }): void {
  const targets = deps.config.opsTargets.map((t) => {
    const i = t.indexOf('=');
    if (i < 1) throw new Error(`WEB__OPS_TARGETS: "${t}" is not name=url`);
    return { name: t.slice(0, i), url: t.slice(i + 1).replace(/\/+$/, '') };
  });

  async function ask(target: string, url: string): Promise<Answer> {
    const label = KNOWN_TARGETS.has(target) ? target : 'other';
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(TIMEOUT_MS) });
      const text = await res.text();
      deps.metrics.opsCalls.inc({ target: label, outcome: res.ok ? 'ok' : 'error_status' });
      let body: unknown = text;
      try {
        body = JSON.parse(text);
      } catch {
        // not JSON: kept as text
      }
      return { status: res.status, body };
    } catch (err) {
      deps.metrics.opsCalls.inc({ target: label, outcome: 'unreachable' });
      return { status: null, body: null, error: (err as Error).message };
    }
  }

  app.get('/ops/services', { config: { public: true } }, async () => ({
    services: await Promise.all(
      targets.map(async ({ name, url }) => {
        const [health, ready] = await Promise.all([ask(name, `${url}/health`), ask(name, `${url}/ready`)]);
        return {
          name,
          healthStatus: health.status,
          health: health.body,
          readyStatus: ready.status,
          ready: ready.body,
          ...((health.error ?? ready.error) ? { error: health.error ?? ready.error } : {}),
        };
      }),
    ),
  }));

  app.get('/ops/slo', { config: { public: true } }, async (_request, reply) => {
    const prometheus = deps.config.prometheusUrl?.replace(/\/+$/, '');
    if (!prometheus) return { enabled: false, slos: [] };
    const query = encodeURIComponent('slo:error_budget_remaining:ratio');
    const answer = await ask('prometheus', `${prometheus}/api/v1/query?query=${query}`);
    const result = (answer.body as { data?: { result?: { metric: Record<string, string>; value: [number, string] }[] } } | null)?.data
      ?.result;
    if (answer.status !== 200 || !result)
      return reply
        .status(502)
        .send({ error: { code: 'WEB_ERR_PROMETHEUS', message: `Prometheus answered ${answer.status ?? answer.error}` } });
    return {
      enabled: true,
      slos: result
        .map((r) => ({
          slo: r.metric.slo ?? '',
          service: r.metric.service ?? '',
          budgetRemaining: Number.isFinite(Number(r.value[1])) ? Number(r.value[1]) : null,
        }))
        .sort((a, b) => a.slo.localeCompare(b.slo)),
    };
  });
}
