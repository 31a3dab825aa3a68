/** Sessions REST through the real stack: detail with include_messages, pending approvals, scopes, ownership, validation before relaying. */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { call, createSession, startRestStack, type RestStack } from './fixture.ts';

describe('gateway sessions routes', () => {
  let s: RestStack;
  beforeAll(async () => {
    s = await startRestStack(inject('databaseUrl'));
  });
  afterAll(() => s?.close());

  describe('GET /api/v1/sessions/:id', () => {
    it('relays the detail, forwarding include_messages', async () => {
      const user = await s.user();
      const id = await createSession(s.gateway, user.auth);
      await s.db.query(`INSERT INTO messages (id, session_id, seq, role, content) VALUES ($1, $2, 1, 'user', 'hello')`, [randomUUID(), id]);
      const plain = await call(`${s.gateway}/api/v1/sessions/${id}`, { headers: user.auth });
      expect(plain.status).toBe(200);
      expect(plain.body.session).toMatchObject({ id, messages: null, description: null, is_active: true });
      const full = await call(`${s.gateway}/api/v1/sessions/${id}?include_messages=true`, { headers: user.auth });
      expect(full.body.session.messages).toEqual([
        {
          id: expect.any(String),
          role: 'user',
          content: 'hello',
          name: null,
          tool_call_id: null,
          tool_calls: null,
          created_at: expect.any(String),
        },
      ]);
    });

    it("answers the runtime's 404 for another user's session, and 400 for bad input without calling the runtime", async () => {
      const owner = await s.user();
      const id = await createSession(s.gateway, owner.auth);
      const other = await s.user();
      const foreign = await call(`${s.gateway}/api/v1/sessions/${id}`, { headers: other.auth });
      expect(foreign.status).toBe(404);
      expect(foreign.body).toMatchObject({ error: { code: 'RT_ERR_SESSION_NOT_FOUND' } });

      const before = await s.runtimeCalls('/sessions/:id');
      for (const url of [`/api/v1/sessions/${id}?include_messages=perhaps`, '/api/v1/sessions/bad%20id']) {
        const res = await call(`${s.gateway}${url}`, { headers: owner.auth });
        expect(res.status, url).toBe(400);
        expect(res.body).toMatchObject({ error: { code: 'ERR_VALIDATION' } });
      }
      expect(await s.runtimeCalls('/sessions/:id')).toBe(before);
    });

    it('needs a token with api:read', async () => {
      const owner = await s.user();
      const id = await createSession(s.gateway, owner.auth);
      expect((await call(`${s.gateway}/api/v1/sessions/${id}`)).status).toBe(401);
      const writeOnly = { authorization: `Bearer ${await s.token(owner.sub, 'api:write')}` };
      const res = await call(`${s.gateway}/api/v1/sessions/${id}`, { headers: writeOnly });
      expect(res.status).toBe(403);
      expect(res.body).toMatchObject({ error: { code: 'GW_ERR_INSUFFICIENT_SCOPE' } });
    });
  });

  describe('GET /api/v1/sessions/:id/pending-approvals', () => {
    it('relays the pending tool calls of the caller’s session, and 404 for anyone else', async () => {
      const user = await s.user();
      const id = await createSession(s.gateway, user.auth);
      await s.db.query(
        `INSERT INTO tool_calls (session_id, call_id, batch, position, agent, tool_name, arguments, requires_approval, approval_reason, status, created_at)
         VALUES ($1, 'call_9', $2, 0, 'coder', 'write_file', '{"path":"x.md"}', true, 'File modification requires user approval', 'pending_approval', '2026-02-01T00:00:00Z')`,
        [id, randomUUID()],
      );
      const res = await call(`${s.gateway}/api/v1/sessions/${id}/pending-approvals`, { headers: user.auth });
      expect(res.status).toBe(200);
      expect(res.body).toEqual({
        session_id: id,
        pending_approvals: [
          {
            request_id: 'call_9',
            request_type: 'tool',
            subject: 'write_file',
            details: { arguments: { path: 'x.md' } },
            reason: 'File modification requires user approval',
            created_at: '2026-02-01T00:00:00.000Z',
            call_id: 'call_9',
            tool_name: 'write_file',
            arguments: { path: 'x.md' },
            expires_at: null,
          },
        ],
        count: 1,
      });
      const other = await s.user();
      expect((await call(`${s.gateway}/api/v1/sessions/${id}/pending-approvals`, { headers: other.auth })).status).toBe(404);
      expect((await call(`${s.gateway}/api/v1/sessions/none-${randomUUID()}/pending-approvals`, { headers: user.auth })).status).toBe(404);
    });
  });
});
