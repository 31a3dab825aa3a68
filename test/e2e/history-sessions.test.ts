/**
 * Sessions REST through the gateway, end to end: another user's session id is answered exactly as
 * an id nobody has (creation included), which sessions are active, and the agent switches in
 * `/history`.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { createUser } from '@codelab/auth/users';
import { FrameClient, passwordToken, startStack, type Stack } from '../helpers/stack.ts';

type Frame = Record<string, unknown>;

describe('sessions REST: privacy, activity, agent history', () => {
  let stack: Stack;
  let alice: string;
  let bob: string;
  let db: pg.Pool;
  beforeAll(async () => {
    stack = await startStack({ databaseUrl: inject('databaseUrl') });
    alice = await stack.token();
    db = new pg.Pool({ connectionString: inject('databaseUrl'), max: 1 });
    const other = { username: `bob-${randomUUID()}`, password: `pw-${randomUUID()}` };
    await createUser(db, { username: other.username, email: `${other.username}@test.local`, password: other.password });
    bob = await passwordToken(stack.url.auth, other.username, other.password);
  });
  afterAll(async () => {
    await db?.end();
    await stack?.close();
  });

  const call = async (token: string, method: string, path: string, body?: unknown) => {
    const res = await fetch(`${stack.url.gateway}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };
  /** One turn on a fresh WebSocket of the session; returns its frames. */
  const turn = async (token: string, sessionId: string, frame: unknown): Promise<Frame[]> => {
    const client = new FrameClient(`${stack.url.ws}/api/v1/ws/${sessionId}`, { authorization: `Bearer ${token}` });
    await client.open();
    client.send(frame);
    const frames = await client.until((f) => f.is_final === true && !(f.metadata as { resent?: boolean } | undefined)?.resent);
    client.close();
    return frames;
  };

  it("answers another user's session id exactly as an id nobody has, on every route, creation included", async () => {
    const aliceId = `alice-s1-${randomUUID()}`;
    expect((await call(alice, 'POST', '/api/v1/sessions', { session_id: aliceId })).status).toBe(201);
    // a session with history, an agent, LLM usage and an approval waiting
    await turn(alice, aliceId, {
      type: 'user_message',
      content: 'implement it [[mock:tool_call write_file {"path":"a.py","content":"A"}]]',
    });
    // the owner hears that the id is taken
    expect(await call(alice, 'POST', '/api/v1/sessions', { session_id: aliceId })).toMatchObject({
      status: 409,
      body: { error: { code: 'RT_ERR_SESSION_EXISTS' } },
    });

    const nobodyId = `nobody-${randomUUID()}`;
    const routes: [string, (id: string) => string, unknown?][] = [
      ['GET', (id) => `/api/v1/sessions/${id}`],
      ['GET', (id) => `/api/v1/sessions/${id}?include_messages=true`],
      ['GET', (id) => `/api/v1/sessions/${id}/history`],
      ['GET', (id) => `/api/v1/sessions/${id}/pending-approvals`],
      ['GET', (id) => `/api/v1/agents/${id}/current?include_history=true`],
      ['POST', (id) => `/api/v1/agents/${id}/switch`, { target_agent: 'debug', reason: 'probe' }],
      ['GET', (id) => `/api/v1/events/metrics/session/${id}`],
    ];
    for (const [method, path, body] of routes) {
      const theirs = await call(bob, method, path(aliceId), body);
      const nobodys = await call(bob, method, path(nobodyId), body);
      expect(theirs.status, path(aliceId)).toBe(404);
      expect(JSON.stringify(theirs).replaceAll(aliceId, 'ID'), path(aliceId)).toBe(JSON.stringify(nobodys).replaceAll(nobodyId, 'ID'));
    }
    // creating it: the same answer as any other route gives for a session Bob cannot see
    const create = await call(bob, 'POST', '/api/v1/sessions', { session_id: aliceId });
    expect(create).toEqual(await call(bob, 'GET', `/api/v1/sessions/${aliceId}`));
    expect(create).toEqual({ status: 404, body: { error: { code: 'RT_ERR_SESSION_NOT_FOUND', message: `Session ${aliceId} not found` } } });
    // nothing of Alice's changed
    expect((await call(alice, 'GET', `/api/v1/agents/${aliceId}/current`)).body).toMatchObject({ context: { current_agent: 'coder' } });
  });

  it('a session is active while it has had a message within the idle timeout, a turn running or a call waiting', async () => {
    const ids = {
      recent: `recent-${randomUUID()}`,
      idle: `idle-${randomUUID()}`,
      waiting: `waiting-${randomUUID()}`,
      running: `running-${randomUUID()}`,
    };
    for (const id of Object.values(ids)) expect((await call(alice, 'POST', '/api/v1/sessions', { session_id: id })).status).toBe(201);
    await turn(alice, ids.waiting, {
      type: 'user_message',
      content: 'implement it [[mock:tool_call write_file {"path":"w.py","content":"W"}]]',
    });
    // idle for two hours (AGENT_RUNTIME__SESSION_IDLE_TIMEOUT defaults to one)
    await db.query(`UPDATE sessions SET last_activity = now() - interval '2 hours' WHERE id = ANY($1::text[])`, [
      [ids.idle, ids.waiting, ids.running],
    ]);
    await db.query(`UPDATE sessions SET lease_owner = 'test:turn', lease_until = now() + interval '1 minute' WHERE id = $1`, [ids.running]);
    try {
      const listed = async (query: string) => {
        const { body } = await call(alice, 'GET', `/api/v1/sessions?limit=1000${query}`);
        return new Map((body.sessions as { id: string; is_active: boolean }[]).map((s) => [s.id, s.is_active]));
      };
      const active = await listed('&active_only=true');
      expect([ids.recent, ids.idle, ids.waiting, ids.running].map((id) => active.get(id))).toEqual([true, undefined, true, true]);
      expect((await listed('')).has(ids.idle)).toBe(false); // active_only defaults to true (upstream)
      const all = await listed('&active_only=false');
      expect([ids.recent, ids.idle, ids.waiting, ids.running].map((id) => all.get(id))).toEqual([true, false, true, true]);
      expect((await call(alice, 'GET', `/api/v1/sessions/${ids.idle}`)).body).toMatchObject({ session: { is_active: false } });
      expect((await call(alice, 'GET', `/api/v1/sessions/${ids.recent}`)).body).toMatchObject({ session: { is_active: true } });
    } finally {
      await db.query(`UPDATE sessions SET lease_owner = NULL, lease_until = NULL WHERE id = $1`, [ids.running]);
    }
    // a message makes an idle session active again
    await turn(alice, ids.idle, { type: 'user_message', content: 'back again' });
    expect((await call(alice, 'GET', `/api/v1/sessions/${ids.idle}`)).body).toMatchObject({ session: { is_active: true } });
  });

  it("/history's agent_history lists the switches as /agents/:id/current?include_history does", async () => {
    const id = `switches-${randomUUID()}`;
    await turn(alice, id, { type: 'user_message', content: 'Explain what a closure is' }); // routed: orchestrator → ask
    expect(
      (
        await call(alice, 'POST', `/api/v1/agents/${id}/switch`, {
          target_agent: 'coder',
          reason: 'time to write code',
          confidence: 'high',
        })
      ).status,
    ).toBe(200);
    const history = (await call(alice, 'GET', `/api/v1/sessions/${id}/history`)).body;
    const current = (await call(alice, 'GET', `/api/v1/agents/${id}/current?include_history=true`)).body as {
      context: { switch_history: unknown[] };
    };
    expect(history.agent_history).toEqual(current.context.switch_history);
    expect(history.agent_history).toEqual([
      {
        from_agent: 'orchestrator',
        to_agent: 'ask',
        reason: expect.any(String),
        switched_at: expect.any(String),
        confidence: expect.any(String),
      },
      { from_agent: 'ask', to_agent: 'coder', reason: 'time to write code', switched_at: expect.any(String), confidence: 'high' },
    ]);
    expect(history.current_agent).toBe('coder');
  });
});
