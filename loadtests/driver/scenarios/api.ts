/**
 * api: the REST API as an IDE uses it (as loadtests/k6/api.ts): create a session, list the user's
 * sessions (`?limit=20`), then read the new session's history, pending approvals and current agent,
 * with the bearer token got at setup (refreshed before it expires). `api_round_duration`: the five
 * calls, end to end.
 */
import { TokenSource } from './token.ts';
import type { Scenario } from './types.ts';

type Json = Record<string, unknown> | undefined;

export const api: Scenario<{ tokens: TokenSource }> = {
  name: 'api',
  description: 'POST /api/v1/sessions, GET /api/v1/sessions?limit=20, the new session’s history, pending approvals and current agent',
  needs: ['auth', 'gateway'],
  metrics: [{ name: 'api_round_duration', type: 'trend', unit: 'ms', description: 'one IDE round (the five calls), end to end' }],
  latencyMetric: 'http_req_duration',
  errorMetric: 'http_req_failed',
  async setup(env) {
    return { tokens: await TokenSource.login(env) };
  },
  async iteration(state, ctx, env) {
    const { http, metrics, targets } = env;
    const base = `${targets.gateway}/api/v1`;
    const headers = { authorization: `Bearer ${await state.tokens.get()}` };
    const signal = ctx.signal;
    const started = performance.now();

    const created = await http.send({ name: 'POST /api/v1/sessions', method: 'POST', url: `${base}/sessions`, headers, signal });
    const session = created.json<Json>();
    const id = typeof session?.id === 'string' ? session.id : undefined;
    metrics.check('creating a session answers 201 with its id', created.status === 201 && id !== undefined);

    const list = await http.send({ name: 'GET /api/v1/sessions', url: `${base}/sessions?limit=20`, headers, signal });
    metrics.check(
      'listing sessions answers 200 with a page of sessions',
      list.status === 200 && Array.isArray(list.json<Json>()?.sessions),
    );
    if (id === undefined || signal.aborted) return;

    const path = encodeURIComponent(id);
    const history = await http.send({ name: 'GET /api/v1/sessions/:id/history', url: `${base}/sessions/${path}/history`, headers, signal });
    metrics.check(
      'the new session has an empty history',
      history.status === 200 && (history.json<Json>()?.messages as unknown[] | undefined)?.length === 0,
    );

    const pending = await http.send({
      name: 'GET /api/v1/sessions/:id/pending-approvals',
      url: `${base}/sessions/${path}/pending-approvals`,
      headers,
      signal,
    });
    metrics.check('the new session has no pending approval', pending.status === 200 && pending.json<Json>()?.count === 0);

    const agent = await http.send({ name: 'GET /api/v1/agents/:id/current', url: `${base}/agents/${path}/current`, headers, signal });
    metrics.check(
      'the new session has a current agent',
      agent.status === 200 && typeof (agent.json<Json>()?.context as { current_agent?: unknown } | undefined)?.current_agent === 'string',
    );

    metrics.add('api_round_duration', performance.now() - started);
  },
};
