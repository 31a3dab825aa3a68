/**
 * The REST API as an IDE uses it: create a session, list the user's sessions, then read the new
 * session's history, pending approvals and current agent. One login in setup(); its bearer token is
 * shared by every VU. `k6 run -e PASSWORD=… [-e PROFILE=ci] loadtests/k6/api.ts`
 */
// imports
import { check } from 'k6';
import http, { type RefinedResponse } from 'k6/http';
import { Trend } from 'k6/metrics';
import { loginForRun } from './lib/auth.ts';
import { buildOptions, profileName, profileSeconds } from './lib/options.ts';
import { assertReady } from './lib/ready.ts';
import { summaryFor } from './lib/summary.ts';

// where the platform listens
const BASE_URL = __ENV.BASE_URL || 'http://127.0.0.1:8000';
const AUTH_URL = __ENV.AUTH_URL || 'http://127.0.0.1:8003';

// load shape and thresholds (loadtests/lib/profiles.ts, loadtests/generated/thresholds.json)
export const options = buildOptions('api');

// custom metrics (prefixed with the journey)
/** One IDE round (the five calls), end to end. */
const roundDuration = new Trend('api_round_duration', true);

// setup: the gateway and auth are up, and a token for the run
interface Data {
  token: string;
}

export function setup(): Data {
  assertReady('gateway', BASE_URL);
  assertReady('auth', AUTH_URL);
  return { token: loginForRun(AUTH_URL, profileSeconds('api', profileName())) };
}

// what the user does
function json(res: RefinedResponse<'text'>): Record<string, unknown> | undefined {
  try {
    const body: unknown = JSON.parse(String(res.body));
    return body !== null && typeof body === 'object' ? (body as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

export function openSession(data: Data): void {
  const headers = { Authorization: `Bearer ${data.token}` };
  const started = Date.now();

  const created = http.post(`${BASE_URL}/api/v1/sessions`, null, { headers, tags: { name: 'POST /api/v1/sessions' } });
  const session = json(created);
  const id = typeof session?.id === 'string' ? session.id : undefined;
  check(created, { 'creating a session answers 201 with its id': (r) => r.status === 201 && id !== undefined });

  const list = http.get(`${BASE_URL}/api/v1/sessions?limit=20`, { headers, tags: { name: 'GET /api/v1/sessions' } });
  check(list, { 'listing sessions answers 200 with a page of sessions': (r) => r.status === 200 && Array.isArray(json(r)?.sessions) });
  if (id === undefined) return;

  const path = encodeURIComponent(id);
  const history = http.get(`${BASE_URL}/api/v1/sessions/${path}/history`, { headers, tags: { name: 'GET /api/v1/sessions/:id/history' } });
  check(history, {
    'the new session has an empty history': (r) => r.status === 200 && (json(r)?.messages as unknown[] | undefined)?.length === 0,
  });

  const pending = http.get(`${BASE_URL}/api/v1/sessions/${path}/pending-approvals`, {
    headers,
    tags: { name: 'GET /api/v1/sessions/:id/pending-approvals' },
  });
  check(pending, { 'the new session has no pending approval': (r) => r.status === 200 && json(r)?.count === 0 });

  const agent = http.get(`${BASE_URL}/api/v1/agents/${path}/current`, { headers, tags: { name: 'GET /api/v1/agents/:id/current' } });
  check(agent, {
    'the new session has a current agent': (r) =>
      r.status === 200 && typeof (json(r)?.context as { current_agent?: unknown } | undefined)?.current_agent === 'string',
  });

  roundDuration.add(Date.now() - started);
}

// end-of-test summary
export const handleSummary = summaryFor('api');
