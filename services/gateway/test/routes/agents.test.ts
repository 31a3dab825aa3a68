/** Agents REST through the real stack: the list, a session's context with include_history forwarded, the switch (api:write). */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { call, createSession, startRestStack, type RestStack } from './fixture.ts';

describe('gateway agents routes', () => {
  let s: RestStack;
  beforeAll(async () => {
    s = await startRestStack(inject('databaseUrl'));
  });
  afterAll(() => s?.close());

  it('GET /api/v1/agents relays the registered agents', async () => {
    const user = await s.user('api:read');
    const res = await call(`${s.gateway}/api/v1/agents`, { headers: user.auth });
    expect(res.status).toBe(200);
    expect(res.body.total).toBe(5);
    expect(res.body.agents[1]).toEqual({
      type: 'coder',
      name: 'Coder Agent',
      description: 'You are the Coder Agent - specialized in writing, modifying, and refactoring code.',
      allowed_tools: [
        'read_file',
        'write_file',
        'list_files',
        'search_in_code',
        'create_directory',
        'execute_command',
        'attempt_completion',
        'ask_followup_question',
      ],
      has_file_restrictions: false,
    });
  });

  it('switches with api:write and shows the context with or without history (include_history forwarded)', async () => {
    const user = await s.user();
    const id = await createSession(s.gateway, user.auth);
    const switched = await call(`${s.gateway}/api/v1/agents/${id}/switch`, {
      method: 'POST',
      headers: user.auth,
      body: { target_agent: 'debug', reason: 'A crash', confidence: 'medium' },
    });
    expect(switched.status).toBe(200);
    expect(switched.body.context).toMatchObject({ session_id: id, current_agent: 'debug', switch_count: 1 });
    expect(switched.body.context.switch_history).toEqual([
      { from_agent: 'orchestrator', to_agent: 'debug', reason: 'A crash', switched_at: expect.any(String), confidence: 'medium' },
    ]);

    const plain = await call(`${s.gateway}/api/v1/agents/${id}/current`, { headers: user.auth });
    expect(plain.status).toBe(200);
    expect(plain.body.context).toMatchObject({ current_agent: 'debug', switch_count: 1, switch_history: null });
    const withHistory = await call(`${s.gateway}/api/v1/agents/${id}/current?include_history=true`, { headers: user.auth });
    expect(withHistory.body.context.switch_history).toHaveLength(1);
  });

  it("relays the runtime's refusals as they are (status and body)", async () => {
    const user = await s.user();
    const id = await createSession(s.gateway, user.auth);
    const invalid = await call(`${s.gateway}/api/v1/agents/${id}/switch`, {
      method: 'POST',
      headers: user.auth,
      body: { target_agent: 'universal', reason: 'x' },
    });
    expect(invalid.status).toBe(400);
    expect(invalid.body).toEqual({
      error: {
        code: 'RT_ERR_INVALID_AGENT',
        message: "Invalid agent type: 'universal'. Allowed values: orchestrator, coder, architect, debug, ask",
      },
    });
    const active = await call(`${s.gateway}/api/v1/agents/${id}/switch`, {
      method: 'POST',
      headers: user.auth,
      body: { target_agent: 'orchestrator', reason: 'x' },
    });
    expect(active.body).toMatchObject({ error: { code: 'RT_ERR_AGENT_ALREADY_ACTIVE' } });
    const other = await s.user();
    for (const res of [
      await call(`${s.gateway}/api/v1/agents/${id}/current`, { headers: other.auth }),
      await call(`${s.gateway}/api/v1/agents/${id}/switch`, {
        method: 'POST',
        headers: other.auth,
        body: { target_agent: 'coder', reason: 'x' },
      }),
    ]) {
      expect(res.status).toBe(404);
      expect(res.body).toMatchObject({ error: { code: 'RT_ERR_SESSION_NOT_FOUND' } });
    }
  });

  it('refuses a switch without api:write (403) and a malformed one (400) before calling the runtime', async () => {
    const user = await s.user();
    const id = await createSession(s.gateway, user.auth);
    const before = await s.runtimeCalls('/agents/:id/switch');
    const readOnly = { authorization: `Bearer ${await s.token(user.sub, 'api:read')}` };
    const forbidden = await call(`${s.gateway}/api/v1/agents/${id}/switch`, {
      method: 'POST',
      headers: readOnly,
      body: { target_agent: 'coder', reason: 'x' },
    });
    expect(forbidden.status).toBe(403);
    expect(forbidden.body).toMatchObject({ error: { code: 'GW_ERR_INSUFFICIENT_SCOPE' } });
    for (const body of [
      { target_agent: 'coder' },
      { reason: 'x' },
      { target_agent: 'coder', reason: 'x', confidence: 'x'.repeat(17) },
      { target_agent: '', reason: 'x' },
    ]) {
      const res = await call(`${s.gateway}/api/v1/agents/${id}/switch`, { method: 'POST', headers: user.auth, body });
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.body).toMatchObject({ error: { code: 'ERR_VALIDATION' } });
    }
    expect((await call(`${s.gateway}/api/v1/agents/${id}/current?include_history=sometimes`, { headers: user.auth })).status).toBe(400);
    expect(await s.runtimeCalls('/agents/:id/switch')).toBe(before);
    expect((await call(`${s.gateway}/api/v1/agents/${id}/current`, { headers: user.auth })).body.context.current_agent).toBe(
      'orchestrator',
    );
  });
});
