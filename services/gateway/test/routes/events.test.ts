/**
 * Events REST through the real stack: the global views need api:admin and cover every user; a
 * session's LLM usage is its owner's (api:read) or an admin's; query parameters are forwarded.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { call, createSession, startRestStack, type RestStack } from './fixture.ts';

describe('gateway events routes', () => {
  let s: RestStack;
  beforeAll(async () => {
    s = await startRestStack(inject('databaseUrl'));
  });
  afterAll(() => s?.close());

  /** A user's session with events and LLM calls, written where the runtime's engine writes them. */
  async function sessionWithActivity(auth: Record<string, string>): Promise<string> {
    const id = await createSession(s.gateway, auth);
    const event = (type: string, category: string, data: unknown) =>
      s.db.query(
        'INSERT INTO events (id, event_type, category, session_id, data, created_at) VALUES ($1, $2, $3, $4, $5, clock_timestamp())',
        [randomUUID(), type, category, id, JSON.stringify(data)],
      );
    await event('agent.switched', 'agent', { from_agent: 'orchestrator', to_agent: 'coder', reason: 'r', confidence: 'high' });
    await event('tool.approval.required', 'hitl', {
      tool_name: 'write_file',
      call_id: 'c1',
      reason: 'File modification requires user approval',
      arguments: {},
    });
    await event('agent.error.occurred', 'agent', { agent: 'coder', error_message: 'boom', error_type: 'LlmUnavailableError' });
    await s.db.query(
      `INSERT INTO llm_requests (id, session_id, agent, model, duration_ms, prompt_tokens, completion_tokens, has_tool_calls, success)
       VALUES ($1, $2, 'coder', 'fake-llm', 250, 10, 5, false, true)`,
      [randomUUID(), id],
    );
    return id;
  }

  const ADMIN_ROUTES = ['/api/v1/events/metrics', '/api/v1/events/metrics/sessions', '/api/v1/events/audit-log', '/api/v1/events/stats'];

  it.each(ADMIN_ROUTES)('%s needs api:admin (403 otherwise, without calling the runtime)', async (path) => {
    const user = await s.user('api:read api:write');
    const route = path.replace('/api/v1', '');
    const before = await s.runtimeCalls(route);
    const res = await call(`${s.gateway}${path}`, { headers: user.auth });
    expect(res.status).toBe(403);
    expect(res.body).toEqual({ error: { code: 'GW_ERR_INSUFFICIENT_SCOPE', message: 'This call needs the scope api:admin' } });
    expect(res.headers.get('www-authenticate')).toContain('scope="api:admin"');
    expect((await call(`${s.gateway}${path}`)).status).toBe(401);
    expect(await s.runtimeCalls(route)).toBe(before);
  });

  it("gives an admin the global views, across every user's sessions", async () => {
    const owner = await s.user();
    const id = await sessionWithActivity(owner.auth);
    const admin = await s.user('api:admin');

    const metrics = await call(`${s.gateway}/api/v1/events/metrics`, { headers: admin.auth });
    expect(metrics.status).toBe(200);
    expect(Object.keys(metrics.body)).toEqual(['metrics', 'computed', 'timestamp']);
    expect(metrics.body.metrics.agent_switches.orchestrator_to_coder).toBeGreaterThanOrEqual(1);
    expect(metrics.body.metrics.errors.coder.LlmUnavailableError).toBeGreaterThanOrEqual(1);

    const sessions = await call(`${s.gateway}/api/v1/events/metrics/sessions`, { headers: admin.auth });
    expect(sessions.body.sessions).toContain(id);
    expect(sessions.body.count).toBe(sessions.body.sessions.length);

    const stats = await call(`${s.gateway}/api/v1/events/stats`, { headers: admin.auth });
    expect(stats.body).toMatchObject({ failed_handlers: expect.any(Number), last_event_time: expect.any(String) });
    expect(stats.body.total_published).toBeGreaterThanOrEqual(3);
  });

  it('forwards the audit-log query parameters, and refuses bad ones with 400 without calling the runtime', async () => {
    const owner = await s.user();
    const id = await sessionWithActivity(owner.auth);
    const admin = await s.user('api:admin');
    const res = await call(`${s.gateway}/api/v1/events/audit-log?session_id=${id}&event_type=agent_error&limit=5`, { headers: admin.auth });
    expect(res.status).toBe(200);
    expect(res.body.filters).toEqual({ session_id: id, event_type: 'agent_error', limit: 5 });
    expect(res.body.audit_log).toEqual([
      {
        timestamp: expect.any(String),
        event_type: 'agent_error',
        event_id: expect.any(String),
        session_id: id,
        correlation_id: null,
        agent: 'coder',
        error_message: 'boom',
        error_type: 'LlmUnavailableError',
      },
    ]);
    const all = await call(`${s.gateway}/api/v1/events/audit-log?session_id=${id}`, { headers: admin.auth });
    expect(all.body.audit_log.map((e: { event_type: string }) => e.event_type)).toEqual([
      'agent_switched',
      'tool_approval_required',
      'agent_error',
    ]);
    expect(all.body.filters).toEqual({ session_id: id, event_type: null, limit: 100 });
    const last = await call(`${s.gateway}/api/v1/events/audit-log?session_id=${id}&limit=1`, { headers: admin.auth });
    expect(last.body.audit_log.map((e: { event_type: string }) => e.event_type)).toEqual(['agent_error']);

    const before = await s.runtimeCalls('/events/audit-log');
    for (const qs of ['event_type=agent.switched', 'limit=0', 'limit=5000', 'session_id=no%20spaces']) {
      const bad = await call(`${s.gateway}/api/v1/events/audit-log?${qs}`, { headers: admin.auth });
      expect(bad.status, qs).toBe(400);
      expect(bad.body).toMatchObject({ error: { code: 'ERR_VALIDATION' } });
    }
    expect(await s.runtimeCalls('/events/audit-log')).toBe(before);
  });

  describe('GET /api/v1/events/metrics/session/:id', () => {
    it('answers the owner (api:read) and an admin, and 404 to another user', async () => {
      const owner = await s.user('api:read api:write');
      const id = await sessionWithActivity(owner.auth);
      const mine = await call(`${s.gateway}/api/v1/events/metrics/session/${id}`, { headers: owner.auth });
      expect(mine.status).toBe(200);
      expect(mine.body).toMatchObject({
        session_id: id,
        total_requests: 1,
        successful_requests: 1,
        total_duration_ms: 250,
        total_tokens: 15,
      });
      expect(mine.body.requests).toHaveLength(1);

      const admin = await s.user('api:read api:admin');
      expect((await call(`${s.gateway}/api/v1/events/metrics/session/${id}`, { headers: admin.auth })).body).toEqual(mine.body);

      const other = await s.user('api:read');
      const foreign = await call(`${s.gateway}/api/v1/events/metrics/session/${id}`, { headers: other.auth });
      expect(foreign.status).toBe(404);
      expect(foreign.body).toMatchObject({ error: { code: 'RT_ERR_SESSION_NOT_FOUND' } });
    });

    it('answers 404 RT_ERR_NO_SESSION_METRICS for a session without LLM calls', async () => {
      const owner = await s.user();
      const id = await createSession(s.gateway, owner.auth);
      const res = await call(`${s.gateway}/api/v1/events/metrics/session/${id}`, { headers: owner.auth });
      expect(res.status).toBe(404);
      expect(res.body).toEqual({ error: { code: 'RT_ERR_NO_SESSION_METRICS', message: `No metrics found for session ${id}` } });
    });
  });
});
