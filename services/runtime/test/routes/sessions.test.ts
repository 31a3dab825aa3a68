/** Runtime sessions REST against the run's PostgreSQL (internal API: the gateway calls it). */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import type { Service } from '@codelab/service-kit';
import { silentLogger, TEST_INTERNAL_KEY } from '@codelab/service-kit/testing';
import { buildApp } from '../../src/app.ts';
import { readRuntimeConfig } from '../../src/config.ts';
import { openTestDb } from './fixture.ts';

describe('sessions routes', () => {
  let service: Service;
  const key = { 'x-internal-auth': TEST_INTERNAL_KEY };

  beforeAll(async () => {
    service = await buildApp(
      readRuntimeConfig({
        AGENT_RUNTIME__INTERNAL_API_KEY: TEST_INTERNAL_KEY,
        AGENT_RUNTIME__DB_URL: inject('databaseUrl'),
        AGENT_RUNTIME__DB_POOL_SIZE: '2',
      }),
      { logger: silentLogger() },
    );
  });
  afterAll(() => service.app.close());

  it('refuses calls without the internal key', async () => {
    const res = await service.app.inject({ method: 'GET', url: '/sessions' });
    expect(res.statusCode).toBe(401);
    expect(res.json()).toMatchObject({ error: { code: 'ERR_UNAUTHORIZED' } });
    const wrong = await service.app.inject({ method: 'GET', url: '/sessions', headers: { 'x-internal-auth': 'x'.repeat(32) } });
    expect(wrong.statusCode).toBe(401);
  });

  it('creates a session with a given id (201), refuses the same id again (409), and generates ids', async () => {
    const id = `rt-${randomUUID()}`;
    const res = await service.app.inject({ method: 'POST', url: '/sessions', headers: key, payload: { session_id: id } });
    expect(res.statusCode).toBe(201);
    expect(res.json()).toMatchObject({ id, message_count: 0, is_active: true, current_agent: 'orchestrator' });
    const again = await service.app.inject({ method: 'POST', url: '/sessions', headers: key, payload: { session_id: id } });
    expect(again.statusCode).toBe(409);
    expect(again.json()).toMatchObject({ error: { code: 'RT_ERR_SESSION_EXISTS' } });
    const generated = await service.app.inject({ method: 'POST', url: '/sessions', headers: key });
    expect(generated.statusCode).toBe(201);
    expect(generated.json().id).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('rejects malformed session ids and paging parameters with 400', async () => {
    const bad = await service.app.inject({
      method: 'POST',
      url: '/sessions',
      headers: key,
      payload: { session_id: 'has spaces/and slashes' },
    });
    expect(bad.statusCode).toBe(400);
    for (const qs of ['limit=0', 'limit=1001', 'offset=-1', 'limit=abc']) {
      const res = await service.app.inject({ method: 'GET', url: `/sessions?${qs}`, headers: key });
      expect(res.statusCode, qs).toBe(400);
      expect(res.json()).toMatchObject({ error: { code: 'ERR_VALIDATION' } });
    }
  });

  it("lists the caller's sessions newest first with a true total, honouring limit and offset", async () => {
    const caller = { ...key, 'x-codelab-user': `user-${randomUUID()}` };
    const ids = [`rt-a-${randomUUID()}`, `rt-b-${randomUUID()}`, `rt-c-${randomUUID()}`];
    for (const id of ids) await service.app.inject({ method: 'POST', url: '/sessions', headers: caller, payload: { session_id: id } });
    const page = (await service.app.inject({ method: 'GET', url: '/sessions?limit=2&offset=0', headers: caller })).json();
    expect(page.sessions.map((s: { id: string }) => s.id)).toEqual([ids[2], ids[1]]);
    expect(page).toMatchObject({ total: 3, limit: 2, offset: 0 });
    const next = (await service.app.inject({ method: 'GET', url: '/sessions?limit=2&offset=2', headers: caller })).json();
    expect(next.sessions.map((s: { id: string }) => s.id)).toEqual([ids[0]]);
    expect(next.total).toBe(3);
    // a page that holds the whole list (its total needs no count), and one past the end (it does)
    const whole = (await service.app.inject({ method: 'GET', url: '/sessions?limit=3', headers: caller })).json();
    expect(whole.sessions).toHaveLength(3);
    expect(whole.total).toBe(3);
    const beyond = (await service.app.inject({ method: 'GET', url: '/sessions?limit=2&offset=5', headers: caller })).json();
    expect(beyond).toMatchObject({ sessions: [], total: 3, limit: 2, offset: 5 });
  });

  it("keeps each user's sessions to that user: another user gets 404 and an empty list", async () => {
    const owner = { ...key, 'x-codelab-user': `owner-${randomUUID()}` };
    const other = { ...key, 'x-codelab-user': `other-${randomUUID()}` };
    const id = `rt-own-${randomUUID()}`;
    expect((await service.app.inject({ method: 'POST', url: '/sessions', headers: owner, payload: { session_id: id } })).statusCode).toBe(
      201,
    );
    for (const url of [`/sessions/${id}`, `/sessions/${id}/history`]) {
      expect((await service.app.inject({ method: 'GET', url, headers: owner })).statusCode).toBe(200);
      const res = await service.app.inject({ method: 'GET', url, headers: other });
      expect(res.statusCode).toBe(404);
      expect(res.json()).toMatchObject({ error: { code: 'RT_ERR_SESSION_NOT_FOUND' } });
    }
    expect((await service.app.inject({ method: 'GET', url: '/sessions', headers: other })).json()).toMatchObject({
      sessions: [],
      total: 0,
    });
    // the same id cannot be taken over by creating it again, and the refusal is what every route
    // answers for a session the caller cannot see (only the owner hears 409)
    const takeover = await service.app.inject({ method: 'POST', url: '/sessions', headers: other, payload: { session_id: id } });
    expect(takeover.statusCode).toBe(404);
    expect(takeover.json()).toEqual((await service.app.inject({ method: 'GET', url: `/sessions/${id}`, headers: other })).json());
    expect(takeover.json()).toEqual({ error: { code: 'RT_ERR_SESSION_NOT_FOUND', message: `Session ${id} not found` } });
    expect((await service.app.inject({ method: 'POST', url: '/sessions', headers: owner, payload: { session_id: id } })).statusCode).toBe(
      409,
    );
    // the access check the gateway makes before a WebSocket
    expect((await service.app.inject({ method: 'GET', url: `/sessions/${id}/access`, headers: owner })).json()).toEqual({
      exists: true,
      allowed: true,
    });
    expect((await service.app.inject({ method: 'GET', url: `/sessions/${id}/access`, headers: other })).json()).toEqual({
      exists: true,
      allowed: false,
    });
    expect((await service.app.inject({ method: 'GET', url: `/sessions/free-${randomUUID()}/access`, headers: other })).json()).toEqual({
      exists: false,
      allowed: true,
    });
    // a turn on someone else's session is refused before anything is stored
    const turn = await service.app.inject({
      method: 'POST',
      url: '/agent/message/stream',
      headers: other,
      payload: { session_id: id, message: { type: 'user_message', content: 'hijack' } },
    });
    expect(turn.statusCode).toBe(404);
    expect((await service.app.inject({ method: 'GET', url: `/sessions/${id}/history`, headers: owner })).json().messages).toEqual([]);
  });

  it('answers 404 for the history and detail of an unknown session', async () => {
    for (const url of [`/sessions/none-${randomUUID()}/history`, `/sessions/none-${randomUUID()}`]) {
      const res = await service.app.inject({ method: 'GET', url, headers: key });
      expect(res.statusCode).toBe(404);
      expect(res.json()).toMatchObject({ error: { code: 'RT_ERR_SESSION_NOT_FOUND' } });
    }
  });

  it('answers the session detail in upstream shape, with its messages only when include_messages is true', async () => {
    const caller = { ...key, 'x-codelab-user': `user-${randomUUID()}` };
    const id = `rt-msg-${randomUUID()}`;
    expect((await service.app.inject({ method: 'POST', url: '/sessions', headers: caller, payload: { session_id: id } })).statusCode).toBe(
      201,
    );
    const db = await openTestDb(inject('databaseUrl'));
    const ids = [randomUUID(), randomUUID(), randomUUID()];
    const toolCalls = [{ id: 'call_1', type: 'function', function: { name: 'read_file', arguments: '{"path":"a.py"}' } }];
    try {
      await db.query(
        `INSERT INTO messages (id, session_id, seq, role, content, name, tool_call_id, tool_calls, created_at) VALUES
           ($2, $1, 1, 'user', 'Read a.py', NULL, NULL, NULL, '2026-01-01T10:00:00Z'),
           ($3, $1, 2, 'assistant', NULL, NULL, NULL, $5, '2026-01-01T10:00:01Z'),
           ($4, $1, 3, 'tool', 'print(1)', 'read_file', 'call_1', NULL, '2026-01-01T10:00:02Z')`,
        [id, ...ids, JSON.stringify(toolCalls)],
      );
      await db.query(`UPDATE sessions SET message_count = 3, title = 'Read a.py' WHERE id = $1`, [id]);
    } finally {
      await db.close();
    }
    const plain = (await service.app.inject({ method: 'GET', url: `/sessions/${id}`, headers: caller })).json();
    expect(plain.session).toMatchObject({ id, title: 'Read a.py', description: null, message_count: 3, messages: null, is_active: true });
    expect(Object.keys(plain.session).sort()).toEqual(
      [
        'created_at',
        'current_agent',
        'description',
        'duration_seconds',
        'id',
        'is_active',
        'last_activity',
        'message_count',
        'messages',
        'title',
      ].sort(),
    );
    for (const qs of ['', '?include_messages=false']) {
      expect(
        (await service.app.inject({ method: 'GET', url: `/sessions/${id}${qs}`, headers: caller })).json().session.messages,
      ).toBeNull();
    }
    const full = (await service.app.inject({ method: 'GET', url: `/sessions/${id}?include_messages=true`, headers: caller })).json();
    expect(full.session.messages).toEqual([
      {
        id: ids[0],
        role: 'user',
        content: 'Read a.py',
        name: null,
        tool_call_id: null,
        tool_calls: null,
        created_at: '2026-01-01T10:00:00.000Z',
      },
      {
        id: ids[1],
        role: 'assistant',
        content: null,
        name: null,
        tool_call_id: null,
        tool_calls: toolCalls,
        created_at: '2026-01-01T10:00:01.000Z',
      },
      {
        id: ids[2],
        role: 'tool',
        content: 'print(1)',
        name: 'read_file',
        tool_call_id: 'call_1',
        tool_calls: null,
        created_at: '2026-01-01T10:00:02.000Z',
      },
    ]);
    expect((await service.app.inject({ method: 'GET', url: `/sessions/${id}?include_messages=yes`, headers: caller })).statusCode).toBe(
      400,
    );
    expect(
      (
        await service.app.inject({
          method: 'GET',
          url: `/sessions/${id}?include_messages=true`,
          headers: { ...key, 'x-codelab-user': 'someone-else' },
        })
      ).statusCode,
    ).toBe(404);
  });

  it('reports database and llm-proxy readiness', async () => {
    const res = await service.app.inject({ method: 'GET', url: '/ready' });
    // No llm-proxy listens at the default URL in this suite.
    expect(res.statusCode).toBe(503);
    expect(res.json()).toMatchObject({ checks: { postgres: 'ok' }, failed: ['llm-proxy'] });
  });
});
