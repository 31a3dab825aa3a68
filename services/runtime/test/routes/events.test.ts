/**
 * Events REST against the run's PostgreSQL: events and LLM usage are written through the
 * EventWriter (as the turn engine writes them) and read back through the routes in upstream's
 * exact JSON. Each test works on a fresh user's sessions, and reads as that user, so suites
 * running at the same time on the same database never change its numbers.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { ServiceMetrics, type Database, type Service } from '@codelab/service-kit';
import { capturingLogger, silentLogger } from '@codelab/service-kit/testing';
import { EventReports } from '../../src/store/event-reports.ts';
import { EventWriter } from '../../src/store/event-writer.ts';
import { createSession, ISO, KEY, newUser, openTestDb, startRuntime } from './fixture.ts';

describe('events routes', () => {
  let service: Service;
  let db: Database;
  let events: EventWriter;

  beforeAll(async () => {
    service = await startRuntime(inject('databaseUrl'));
    db = await openTestDb(inject('databaseUrl'));
    events = new EventWriter(db, { logger: silentLogger(), metrics: new ServiceMetrics('test') });
  });
  afterAll(async () => {
    await service.app.close();
    await db.close();
  });

  const get = (url: string, headers: Record<string, string>) => service.app.inject({ method: 'GET', url, headers });

  /** One user's conversation, as the engine records it: two sessions, switches, tools, decisions, errors, LLM calls. */
  async function recordConversation(headers: Record<string, string>): Promise<{ s1: string; s2: string }> {
    const s1 = await createSession(service, headers);
    const s2 = await createSession(service, headers);
    const c = 'turn-1';
    await events.record({
      type: 'agent.switched',
      sessionId: s1,
      correlationId: c,
      data: { from_agent: 'orchestrator', to_agent: 'coder', reason: 'Task classified as coder', confidence: 'low', source: 'routing' },
    });
    await events.record({
      type: 'agent.switched',
      sessionId: s2,
      data: { from_agent: 'orchestrator', to_agent: 'coder', reason: 'r', confidence: null },
    });
    await events.record({
      type: 'agent.switched',
      sessionId: s2,
      data: { from_agent: 'coder', to_agent: 'architect', reason: 'r', confidence: 'high' },
    });
    await events.record({ type: 'agent.processing.completed', sessionId: s1, data: { agent: 'coder', duration_ms: 100.5, success: true } });
    await events.record({ type: 'agent.processing.completed', sessionId: s1, data: { agent: 'coder', duration_ms: 300, success: false } });
    await events.record({
      type: 'agent.processing.completed',
      sessionId: s2,
      data: { agent: 'architect', duration_ms: 1000, success: true },
    });
    await events.record({
      type: 'agent.error.occurred',
      sessionId: s1,
      correlationId: c,
      data: { agent: 'coder', error_message: 'LLM down', error_type: 'LlmUnavailableError' },
    });
    await events.record({
      type: 'tool.execution.requested',
      sessionId: s1,
      data: { tool_name: 'write_file', arguments: { path: 'a.py' }, call_id: 'call_1', agent: 'coder' },
    });
    await events.record({
      type: 'tool.approval.required',
      sessionId: s1,
      data: { tool_name: 'write_file', arguments: { path: 'a.py' }, call_id: 'call_1', reason: 'File modification requires user approval' },
    });
    await events.record({
      type: 'hitl.decision.made',
      sessionId: s1,
      data: { tool_name: 'write_file', call_id: 'call_1', decision: 'approve' },
    });
    await events.record({ type: 'tool.execution.completed', sessionId: s1, data: { tool_name: 'write_file', call_id: 'call_1' } });
    await events.record({
      type: 'tool.execution.requested',
      sessionId: s1,
      data: { tool_name: 'write_file', arguments: { path: 'b.py' }, call_id: 'call_2', agent: 'coder' },
    });
    await events.record({
      type: 'hitl.decision.made',
      sessionId: s1,
      data: { tool_name: 'write_file', call_id: 'call_2', decision: 'REJECT' },
    });
    await events.record({
      type: 'tool.execution.failed',
      sessionId: s1,
      data: { tool_name: 'write_file', call_id: 'call_2', error: 'Rejected by the user' },
    });
    await events.record({
      type: 'tool.execution.requested',
      sessionId: s1,
      data: { tool_name: 'read_file', arguments: { path: 'a.py' }, call_id: 'call_3', agent: 'coder' },
    });
    await events.record({ type: 'approval.requested', sessionId: s1, data: { request_id: 'call_1', request_type: 'tool' } });
    await events.recordLlmRequest({
      sessionId: s1,
      agent: 'coder',
      model: 'fake-llm',
      durationMs: 812.4,
      promptTokens: 100,
      completionTokens: 20,
      hasToolCalls: true,
      success: true,
    });
    await events.recordLlmRequest({
      sessionId: s1,
      agent: 'coder',
      model: 'fake-llm',
      durationMs: 400,
      promptTokens: 50,
      completionTokens: 10,
      hasToolCalls: false,
      success: true,
    });
    await events.recordLlmRequest({
      sessionId: s1,
      agent: 'coder',
      model: 'fake-llm',
      durationMs: 30,
      promptTokens: 0,
      completionTokens: 0,
      hasToolCalls: false,
      success: false,
      error: 'upstream_unavailable',
    });
    return { s1, s2 };
  }

  const EXPECTED_METRICS = {
    agent_switches: { orchestrator_to_coder: 2, coder_to_architect: 1 },
    agent_processing: {
      architect: { count: 1, total_duration_ms: 1000, success_count: 1, failure_count: 0 },
      coder: { count: 2, total_duration_ms: 400.5, success_count: 1, failure_count: 1 },
    },
    tool_executions: {
      read_file: { requested: 1, completed: 0, failed: 0, requires_approval: 0 },
      write_file: { requested: 2, completed: 1, failed: 1, requires_approval: 1 },
    },
    hitl_decisions: { write_file: { APPROVE: 1, EDIT: 0, REJECT: 1 } },
    errors: { coder: { LlmUnavailableError: 1 } },
  };
  const EXPECTED_COMPUTED = {
    architect_avg_duration_ms: 1000,
    coder_avg_duration_ms: 200.25,
    read_file_success_rate: 0,
    write_file_success_rate: 0.5,
  };

  describe('GET /events/metrics', () => {
    it("aggregates the caller's events into upstream's exact JSON", async () => {
      const user = newUser();
      await recordConversation(user.headers);
      const res = await get('/events/metrics', user.headers);
      expect(res.statusCode).toBe(200);
      const body = res.json();
      expect(Object.keys(body)).toEqual(['metrics', 'computed', 'timestamp']);
      expect(body.metrics).toEqual(EXPECTED_METRICS);
      expect(body.computed).toEqual(EXPECTED_COMPUTED);
      expect(body.timestamp).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}\+00:00$/);
    });

    it('answers empty metrics to a caller without events, and includes every user without a caller', async () => {
      const user = newUser();
      expect((await get('/events/metrics', user.headers)).json()).toMatchObject({
        metrics: { agent_switches: {}, agent_processing: {}, tool_executions: {}, hitl_decisions: {}, errors: {} },
        computed: {},
      });
      await recordConversation(user.headers);
      const all = (await get('/events/metrics', KEY)).json();
      expect(all.metrics.agent_switches.orchestrator_to_coder).toBeGreaterThanOrEqual(2);
      expect(all.metrics.tool_executions.write_file.requires_approval).toBeGreaterThanOrEqual(1);
    });

    it('is durable: another runtime on the same database answers the same numbers', async () => {
      const user = newUser();
      await recordConversation(user.headers);
      const before = (await get('/events/metrics', user.headers)).json();
      const second = await startRuntime(inject('databaseUrl'));
      try {
        const after = (await second.app.inject({ method: 'GET', url: '/events/metrics', headers: user.headers })).json();
        expect({ ...after, timestamp: undefined }).toEqual({ ...before, timestamp: undefined });
        expect(after.metrics).toEqual(EXPECTED_METRICS);
        const stats = (await second.app.inject({ method: 'GET', url: '/events/stats', headers: user.headers })).json();
        expect(stats.total_published).toBe(19);
      } finally {
        await second.app.close();
      }
    });
  });

  describe('GET /events/metrics/sessions and /events/metrics/session/:id', () => {
    it("lists the caller's sessions with LLM usage and answers a session's usage in upstream's exact JSON", async () => {
      const user = newUser();
      const { s1 } = await recordConversation(user.headers);
      expect((await get('/events/metrics/sessions', user.headers)).json()).toEqual({ sessions: [s1], count: 1 });

      const res = await get(`/events/metrics/session/${s1}`, user.headers);
      expect(res.statusCode).toBe(200);
      const body = res.json();
      expect(body).toEqual({
        session_id: s1,
        total_requests: 3,
        successful_requests: 2,
        failed_requests: 1,
        total_duration_ms: 1212,
        average_duration_ms: 606,
        total_prompt_tokens: 150,
        total_completion_tokens: 30,
        total_tokens: 180,
        average_tokens_per_request: 90,
        requests_with_tools: 1,
        requests: [
          {
            timestamp: expect.stringMatching(ISO),
            model: 'fake-llm',
            duration_ms: 812,
            prompt_tokens: 100,
            completion_tokens: 20,
            total_tokens: 120,
            has_tool_calls: true,
            success: true,
            error: null,
          },
          {
            timestamp: expect.stringMatching(ISO),
            model: 'fake-llm',
            duration_ms: 400,
            prompt_tokens: 50,
            completion_tokens: 10,
            total_tokens: 60,
            has_tool_calls: false,
            success: true,
            error: null,
          },
          {
            timestamp: expect.stringMatching(ISO),
            model: 'fake-llm',
            duration_ms: 30,
            prompt_tokens: 0,
            completion_tokens: 0,
            total_tokens: 0,
            has_tool_calls: false,
            success: false,
            error: 'upstream_unavailable',
          },
        ],
      });
      expect(Object.keys(body)).toEqual([
        'session_id',
        'total_requests',
        'successful_requests',
        'failed_requests',
        'total_duration_ms',
        'average_duration_ms',
        'total_prompt_tokens',
        'total_completion_tokens',
        'total_tokens',
        'average_tokens_per_request',
        'requests_with_tools',
        'requests',
      ]);
      // the LLM calls are events too
      const { rows } = await db.query(
        `SELECT event_type, category, data FROM events WHERE session_id = $1 AND event_type LIKE 'llm.%' ORDER BY created_at`,
        [s1],
      );
      expect(rows.map((r) => [r.event_type, r.category])).toEqual([
        ['llm.request.completed', 'metrics'],
        ['llm.request.completed', 'metrics'],
        ['llm.request.failed', 'metrics'],
      ]);
      expect(rows[0]!.data).toEqual({
        model: 'fake-llm',
        agent: 'coder',
        duration_ms: 812,
        prompt_tokens: 100,
        completion_tokens: 20,
        total_tokens: 120,
        has_tool_calls: true,
      });
    });

    it('answers 404 with its own code for a session without LLM calls, and 404 session-not-found for unknown and foreign sessions', async () => {
      const owner = newUser();
      const { s1, s2 } = await recordConversation(owner.headers);
      const none = await get(`/events/metrics/session/${s2}`, owner.headers);
      expect(none.statusCode).toBe(404);
      expect(none.json()).toEqual({ error: { code: 'RT_ERR_NO_SESSION_METRICS', message: `No metrics found for session ${s2}` } });
      for (const [url, headers] of [
        [`/events/metrics/session/${s1}`, newUser().headers],
        [`/events/metrics/session/none-${randomUUID()}`, owner.headers],
      ] as const) {
        const res = await get(url, headers);
        expect(res.statusCode).toBe(404);
        expect(res.json()).toMatchObject({ error: { code: 'RT_ERR_SESSION_NOT_FOUND' } });
      }
      expect((await get('/events/metrics/sessions', newUser().headers)).json()).toEqual({ sessions: [], count: 0 });
      expect((await get('/events/metrics/session/a%20b', owner.headers)).statusCode).toBe(400);
    });
  });

  describe('GET /events/audit-log', () => {
    it("answers the caller's audited events oldest first, each with its data", async () => {
      const user = newUser();
      const { s1, s2 } = await recordConversation(user.headers);
      const res = await get('/events/audit-log', user.headers);
      expect(res.statusCode).toBe(200);
      const body = res.json();
      expect(body.filters).toEqual({ session_id: null, event_type: null, limit: 100 });
      expect(body.count).toBe(8);
      expect(body.audit_log.map((e: { event_type: string; session_id: string }) => [e.event_type, e.session_id])).toEqual([
        ['agent_switched', s1],
        ['agent_switched', s2],
        ['agent_switched', s2],
        ['agent_error', s1],
        ['tool_approval_required', s1],
        ['hitl_decision_made', s1],
        ['hitl_decision_made', s1],
        ['tool_execution_failed', s1],
      ]);
      expect(body.audit_log[3]).toEqual({
        timestamp: expect.stringMatching(ISO),
        event_type: 'agent_error',
        event_id: expect.stringMatching(/^[0-9a-f-]{36}$/),
        session_id: s1,
        correlation_id: 'turn-1',
        agent: 'coder',
        error_message: 'LLM down',
        error_type: 'LlmUnavailableError',
      });
      expect(body.audit_log[4]).toMatchObject({
        tool_name: 'write_file',
        call_id: 'call_1',
        reason: 'File modification requires user approval',
        arguments: { path: 'a.py' },
        correlation_id: null,
      });
    });

    it('filters by session and entry type and keeps the last `limit` entries', async () => {
      const user = newUser();
      const { s1, s2 } = await recordConversation(user.headers);
      const bySession = (await get(`/events/audit-log?session_id=${s2}`, user.headers)).json();
      expect(bySession.count).toBe(2);
      expect(bySession.audit_log.map((e: { to_agent: string }) => e.to_agent)).toEqual(['coder', 'architect']);
      expect(bySession.filters).toEqual({ session_id: s2, event_type: null, limit: 100 });

      const byType = (await get('/events/audit-log?event_type=hitl_decision_made', user.headers)).json();
      expect(byType.audit_log.map((e: { decision: string }) => e.decision)).toEqual(['approve', 'REJECT']);

      const last = (await get(`/events/audit-log?session_id=${s1}&limit=2`, user.headers)).json();
      expect(last.audit_log.map((e: { event_type: string }) => e.event_type)).toEqual(['hitl_decision_made', 'tool_execution_failed']);
      expect(last).toMatchObject({ count: 2, filters: { session_id: s1, event_type: null, limit: 2 } });

      // another user's session filters to nothing
      expect((await get(`/events/audit-log?session_id=${s1}`, newUser().headers)).json()).toMatchObject({ audit_log: [], count: 0 });
    });

    it.each(['event_type=agent.switched', 'event_type=nope', 'limit=0', 'limit=1001', 'limit=ten', 'session_id=a%20b'])(
      'rejects %s with 400',
      async (qs) => {
        const res = await get(`/events/audit-log?${qs}`, KEY);
        expect(res.statusCode).toBe(400);
        expect(res.json()).toMatchObject({ error: { code: 'ERR_VALIDATION' } });
      },
    );
  });

  describe('GET /events/stats', () => {
    it("counts the caller's stored events", async () => {
      const user = newUser();
      expect((await get('/events/stats', user.headers)).json()).toEqual({
        total_published: 0,
        successful_handlers: 0,
        failed_handlers: 0,
        last_event_time: null,
        success_rate: 0,
      });
      await recordConversation(user.headers);
      const stats = (await get('/events/stats', user.headers)).json();
      expect(stats).toEqual({
        total_published: 19,
        successful_handlers: 19,
        failed_handlers: 0,
        last_event_time: expect.stringMatching(ISO),
        success_rate: 1,
      });
    });
  });

  describe('EventWriter writes', () => {
    it('never fail the caller: a write the database refuses is logged, counted and reported as a failed handler', async () => {
      const { logger, lines } = capturingLogger('warn');
      const metrics = new ServiceMetrics('test');
      const store = new EventWriter(db, { logger, metrics });
      // no such session: the llm_requests foreign key refuses the row (and its event with it)
      await expect(
        store.recordLlmRequest({
          sessionId: `none-${randomUUID()}`,
          agent: null,
          model: 'm',
          durationMs: 1,
          promptTokens: 0,
          completionTokens: 0,
          hasToolCalls: false,
          success: true,
        }),
      ).resolves.toBeUndefined();
      // data PostgreSQL cannot store in jsonb
      await expect(store.record({ type: 'session.updated', data: { text: 'nul \u0000 byte' } })).resolves.toBeUndefined();
      expect(
        lines()
          .filter((l) => l.msg === 'event could not be written; continuing without it')
          .map((l) => l.event_type),
      ).toEqual(['llm.request.completed', 'session.updated']);
      const text = (await metrics.render(undefined)).body;
      expect(text).toContain('runtime_events_write_failures_total{type="llm.request.completed"} 1');
      expect(text).toContain('runtime_events_write_failures_total{type="session.updated"} 1');
      const user = newUser();
      const stats = await new EventReports(db, store).stats(user.sub);
      expect(stats).toMatchObject({ total_published: 2, successful_handlers: 0, failed_handlers: 2, success_rate: 0 });
    });

    it('drain waits for writes still in flight', async () => {
      const user = newUser();
      const id = await createSession(service, user.headers);
      const store = new EventWriter(db, { logger: silentLogger(), metrics: new ServiceMetrics('test') });
      for (let i = 0; i < 5; i++)
        void store.record({
          type: 'tool.execution.requested',
          sessionId: id,
          data: { tool_name: 't', arguments: {}, call_id: `c${i}`, agent: 'coder' },
        });
      await store.drain();
      const { rows } = await db.query('SELECT count(*)::int AS n FROM events WHERE session_id = $1', [id]);
      expect(rows[0]!.n).toBe(5);
    });
  });
});
