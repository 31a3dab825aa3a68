/** Runtime agents REST against the run's PostgreSQL: the registered agents, a session's agent context, the REST switch. */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import type { Database, Service } from '@codelab/service-kit';
import { createSession, ISO, KEY, newUser, openTestDb, startRuntime } from './fixture.ts';

describe('agents routes', () => {
  let service: Service;
  let db: Database;

  beforeAll(async () => {
    service = await startRuntime(inject('databaseUrl'));
    db = await openTestDb(inject('databaseUrl'));
  });
  afterAll(async () => {
    await service.app.close();
    await db.close();
  });

  describe('GET /agents', () => {
    it('lists the multi-agent mode agents in upstream order with their tools', async () => {
      const res = await service.app.inject({ method: 'GET', url: '/agents', headers: KEY });
      expect(res.statusCode).toBe(200);
      const body = res.json();
      expect(body.total).toBe(5);
      expect(body.agents.map((a: { type: string }) => a.type)).toEqual(['orchestrator', 'coder', 'architect', 'debug', 'ask']);
      expect(body.agents[2]).toEqual({
        type: 'architect',
        name: 'Architect Agent',
        description: 'You are the Architect Agent - specialized in planning, designing, and creating technical specifications.',
        allowed_tools: [
          'read_file',
          'write_file',
          'list_files',
          'search_in_code',
          'attempt_completion',
          'ask_followup_question',
          'switch_mode',
        ],
        has_file_restrictions: true,
      });
      expect(
        body.agents.filter((a: { has_file_restrictions: boolean }) => a.has_file_restrictions).map((a: { type: string }) => a.type),
      ).toEqual(['architect']);
      expect(body.agents[0].allowed_tools).toEqual(['read_file', 'list_files', 'search_in_code']);
    });

    it('needs the internal key', async () => {
      expect((await service.app.inject({ method: 'GET', url: '/agents' })).statusCode).toBe(401);
    });
  });

  describe('GET /agents/:id/current', () => {
    it("answers a new session's context, with the history only when asked", async () => {
      const user = newUser();
      const id = await createSession(service, user.headers);
      const res = await service.app.inject({ method: 'GET', url: `/agents/${id}/current`, headers: user.headers });
      expect(res.statusCode).toBe(200);
      const { context } = res.json();
      expect(context).toEqual({
        id,
        session_id: id,
        current_agent: 'orchestrator',
        switch_count: 0,
        switch_history: null,
        last_switch_at: null,
        created_at: expect.stringMatching(ISO),
      });
      const withHistory = await service.app.inject({
        method: 'GET',
        url: `/agents/${id}/current?include_history=true`,
        headers: user.headers,
      });
      expect(withHistory.json().context.switch_history).toEqual([]);
      const explicitFalse = await service.app.inject({
        method: 'GET',
        url: `/agents/${id}/current?include_history=false`,
        headers: user.headers,
      });
      expect(explicitFalse.json().context.switch_history).toBeNull();
    });

    it("answers 404 for an unknown session and for another user's, 400 for a malformed id or flag", async () => {
      const owner = newUser();
      const id = await createSession(service, owner.headers);
      for (const [url, headers] of [
        [`/agents/none-${randomUUID()}/current`, owner.headers],
        [`/agents/${id}/current`, newUser().headers],
      ] as const) {
        const res = await service.app.inject({ method: 'GET', url, headers });
        expect(res.statusCode).toBe(404);
        expect(res.json()).toEqual({
          error: { code: 'RT_ERR_SESSION_NOT_FOUND', message: expect.stringMatching(/^Agent context for session .+ not found$/) },
        });
      }
      for (const url of ['/agents/bad%20id/current', `/agents/${id}/current?include_history=maybe`]) {
        const res = await service.app.inject({ method: 'GET', url, headers: owner.headers });
        expect(res.statusCode, url).toBe(400);
        expect(res.json()).toMatchObject({ error: { code: 'ERR_VALIDATION' } });
      }
    });
  });

  describe('POST /agents/:id/switch', () => {
    it('switches, keeps the history in agent_switches (source user) and records an agent.switched event', async () => {
      const user = newUser();
      const id = await createSession(service, user.headers);
      const first = await service.app.inject({
        method: 'POST',
        url: `/agents/${id}/switch`,
        headers: user.headers,
        payload: { target_agent: 'coder', reason: 'Needs code changes', confidence: 'high' },
      });
      expect(first.statusCode).toBe(200);
      const c1 = first.json().context;
      expect(c1).toEqual({
        id,
        session_id: id,
        current_agent: 'coder',
        switch_count: 1,
        switch_history: [
          {
            from_agent: 'orchestrator',
            to_agent: 'coder',
            reason: 'Needs code changes',
            switched_at: expect.stringMatching(ISO),
            confidence: 'high',
          },
        ],
        last_switch_at: expect.stringMatching(ISO),
        created_at: expect.stringMatching(ISO),
      });
      const second = await service.app.inject({
        method: 'POST',
        url: `/agents/${id}/switch`,
        headers: user.headers,
        payload: { target_agent: 'architect', reason: 'Plan first' },
      });
      expect(second.statusCode).toBe(200);
      const c2 = second.json().context;
      expect(c2.switch_count).toBe(2);
      expect(c2.switch_history).toEqual([
        c1.switch_history[0],
        { from_agent: 'coder', to_agent: 'architect', reason: 'Plan first', switched_at: expect.stringMatching(ISO), confidence: null },
      ]);
      expect(c2.last_switch_at).toBe(c2.switch_history[1].switched_at);

      // the same state through the reads
      expect(
        (await service.app.inject({ method: 'GET', url: `/agents/${id}/current?include_history=true`, headers: user.headers })).json(),
      ).toEqual({ context: c2 });
      expect(
        (await service.app.inject({ method: 'GET', url: `/sessions/${id}`, headers: user.headers })).json().session.current_agent,
      ).toBe('architect');

      const { rows: switches } = await db.query(
        'SELECT from_agent, to_agent, source FROM agent_switches WHERE session_id = $1 ORDER BY switched_at',
        [id],
      );
      expect(switches).toEqual([
        { from_agent: 'orchestrator', to_agent: 'coder', source: 'user' },
        { from_agent: 'coder', to_agent: 'architect', source: 'user' },
      ]);
      const { rows: events } = await db.query(
        `SELECT category, data FROM events WHERE session_id = $1 AND event_type = 'agent.switched' ORDER BY created_at`,
        [id],
      );
      expect(events).toEqual([
        {
          category: 'agent',
          data: { from_agent: 'orchestrator', to_agent: 'coder', reason: 'Needs code changes', confidence: 'high', source: 'user' },
        },
        { category: 'agent', data: { from_agent: 'coder', to_agent: 'architect', reason: 'Plan first', confidence: null, source: 'user' } },
      ]);
      const metrics = await service.app.inject({ method: 'GET', url: '/metrics' });
      expect(metrics.body).toMatch(/runtime_events_written_total\{type="agent\.switched"\} [1-9]/);
    });

    it('refuses the active agent, an agent not registered in this mode and a malformed body with 400, writing nothing', async () => {
      const user = newUser();
      const id = await createSession(service, user.headers);
      const cases: [unknown, string, RegExp?][] = [
        [{ target_agent: 'orchestrator', reason: 'x' }, 'RT_ERR_AGENT_ALREADY_ACTIVE', /already active/],
        [
          { target_agent: 'universal', reason: 'x' },
          'RT_ERR_INVALID_AGENT',
          /^Invalid agent type: 'universal'. Allowed values: orchestrator, coder, architect, debug, ask$/,
        ],
        [{ target_agent: 'wizard', reason: 'x' }, 'RT_ERR_INVALID_AGENT'],
        [{ target_agent: 'coder' }, 'ERR_VALIDATION', /reason/],
        [{ reason: 'x' }, 'ERR_VALIDATION', /target_agent/],
        [{ target_agent: 'coder', reason: 'x', confidence: 'x'.repeat(17) }, 'ERR_VALIDATION'],
        [{ target_agent: '', reason: 'x' }, 'ERR_VALIDATION'],
      ];
      for (const [payload, code, message] of cases) {
        const res = await service.app.inject({
          method: 'POST',
          url: `/agents/${id}/switch`,
          headers: user.headers,
          payload: payload as object,
        });
        expect(res.statusCode, JSON.stringify(payload)).toBe(400);
        expect(res.json().error.code).toBe(code);
        if (message) expect(res.json().error.message).toMatch(message);
      }
      const { rows } = await db.query('SELECT count(*)::int AS n FROM agent_switches WHERE session_id = $1', [id]);
      expect(rows[0]!.n).toBe(0);
      expect(
        (await service.app.inject({ method: 'GET', url: `/agents/${id}/current`, headers: user.headers })).json().context,
      ).toMatchObject({ current_agent: 'orchestrator', switch_count: 0 });
    });

    it("answers 404 for another user's session and an unknown one, and changes nothing", async () => {
      const owner = newUser();
      const id = await createSession(service, owner.headers);
      for (const [sid, headers] of [
        [id, newUser().headers],
        [`none-${randomUUID()}`, owner.headers],
      ] as const) {
        const res = await service.app.inject({
          method: 'POST',
          url: `/agents/${sid}/switch`,
          headers,
          payload: { target_agent: 'coder', reason: 'x' },
        });
        expect(res.statusCode).toBe(404);
        expect(res.json()).toMatchObject({ error: { code: 'RT_ERR_SESSION_NOT_FOUND' } });
      }
      expect(
        (await service.app.inject({ method: 'GET', url: `/agents/${id}/current`, headers: owner.headers })).json().context.current_agent,
      ).toBe('orchestrator');
    });

    it('serializes concurrent switches of one session: the history stays a chain', async () => {
      const user = newUser();
      const id = await createSession(service, user.headers);
      const targets = ['coder', 'architect', 'debug', 'ask'];
      const results = await Promise.all(
        targets.map((t) =>
          service.app.inject({
            method: 'POST',
            url: `/agents/${id}/switch`,
            headers: user.headers,
            payload: { target_agent: t, reason: `to ${t}` },
          }),
        ),
      );
      expect(results.map((r) => r.statusCode)).toEqual([200, 200, 200, 200]);
      const { context } = (
        await service.app.inject({ method: 'GET', url: `/agents/${id}/current?include_history=true`, headers: user.headers })
      ).json();
      expect(context.switch_count).toBe(4);
      const history = context.switch_history as { from_agent: string; to_agent: string }[];
      expect(history[0]!.from_agent).toBe('orchestrator');
      for (let i = 1; i < history.length; i++) expect(history[i]!.from_agent).toBe(history[i - 1]!.to_agent);
      expect(new Set(history.map((h) => h.to_agent))).toEqual(new Set(targets));
      expect(context.current_agent).toBe(history.at(-1)!.to_agent);
    });
  });
});

describe('agents routes in single-agent mode', () => {
  let service: Service;
  beforeAll(async () => {
    service = await startRuntime(inject('databaseUrl'), { AGENT_RUNTIME__MULTI_AGENT_MODE: 'false' });
  });
  afterAll(() => service.app.close());

  it('lists orchestrator and universal, and switches only to those', async () => {
    const body = (await service.app.inject({ method: 'GET', url: '/agents', headers: KEY })).json();
    expect(body).toMatchObject({ total: 2 });
    expect(body.agents.map((a: { type: string; name: string }) => [a.type, a.name])).toEqual([
      ['orchestrator', 'Orchestrator Agent'],
      ['universal', 'Universal Agent'],
    ]);
    const user = newUser();
    const id = await createSession(service, user.headers);
    const coder = await service.app.inject({
      method: 'POST',
      url: `/agents/${id}/switch`,
      headers: user.headers,
      payload: { target_agent: 'coder', reason: 'x' },
    });
    expect(coder.statusCode).toBe(400);
    expect(coder.json().error).toEqual({
      code: 'RT_ERR_INVALID_AGENT',
      message: "Invalid agent type: 'coder'. Allowed values: orchestrator, universal",
    });
    const universal = await service.app.inject({
      method: 'POST',
      url: `/agents/${id}/switch`,
      headers: user.headers,
      payload: { target_agent: 'universal', reason: 'x' },
    });
    expect(universal.statusCode).toBe(200);
    expect(universal.json().context.current_agent).toBe('universal');
  });
});
