/** GET /sessions/:id/pending-approvals against the run's PostgreSQL, with tool_calls rows inserted where the turn engine would. */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import type { Database, Service } from '@codelab/service-kit';
import { createSession, newUser, openTestDb, startRuntime } from './fixture.ts';

describe('GET /sessions/:id/pending-approvals', () => {
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

  const insertCall = (
    sessionId: string,
    c: {
      callId: string;
      tool: string;
      args: unknown;
      status: string;
      reason?: string | null;
      createdAt: string;
      expiresAt?: string | null;
      position?: number;
    },
  ) =>
    db.query(
      `INSERT INTO tool_calls (session_id, call_id, batch, position, agent, tool_name, arguments, requires_approval, approval_reason, status, created_at, expires_at)
       VALUES ($1, $2, $3, $4, 'coder', $5, $6, true, $7, $8, $9, $10)`,
      [
        sessionId,
        c.callId,
        randomUUID(),
        c.position ?? 0,
        c.tool,
        JSON.stringify(c.args),
        c.reason ?? null,
        c.status,
        c.createdAt,
        c.expiresAt ?? null,
      ],
    );

  it('lists the pending calls oldest first in upstream shape, leaving out decided and expired ones', async () => {
    const user = newUser();
    const id = await createSession(service, user.headers);
    const other = await createSession(service, user.headers);
    const soon = new Date(Date.now() + 3600_000).toISOString();
    await insertCall(id, {
      callId: 'call_2',
      tool: 'execute_command',
      args: { command: 'npm test' },
      status: 'pending_approval',
      reason: 'Command execution requires user approval',
      createdAt: '2026-01-01T10:00:02.000Z',
      expiresAt: soon,
    });
    await insertCall(id, {
      callId: 'call_1',
      tool: 'write_file',
      args: { path: 'a.py', content: 'x' },
      status: 'pending_approval',
      reason: 'File modification requires user approval',
      createdAt: '2026-01-01T10:00:01.000Z',
    });
    await insertCall(id, { callId: 'call_0', tool: 'write_file', args: {}, status: 'approved', createdAt: '2026-01-01T10:00:00.000Z' });
    await insertCall(id, {
      callId: 'call_old',
      tool: 'write_file',
      args: {},
      status: 'pending_approval',
      createdAt: '2026-01-01T09:00:00.000Z',
      expiresAt: '2026-01-01T09:05:00.000Z',
    });
    await insertCall(other, {
      callId: 'call_x',
      tool: 'write_file',
      args: {},
      status: 'pending_approval',
      createdAt: '2026-01-01T10:00:00.000Z',
    });

    const res = await service.app.inject({ method: 'GET', url: `/sessions/${id}/pending-approvals`, headers: user.headers });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({
      session_id: id,
      pending_approvals: [
        {
          request_id: 'call_1',
          request_type: 'tool',
          subject: 'write_file',
          details: { arguments: { path: 'a.py', content: 'x' } },
          reason: 'File modification requires user approval',
          created_at: '2026-01-01T10:00:01.000Z',
          call_id: 'call_1',
          tool_name: 'write_file',
          arguments: { path: 'a.py', content: 'x' },
          expires_at: null,
        },
        {
          request_id: 'call_2',
          request_type: 'tool',
          subject: 'execute_command',
          details: { arguments: { command: 'npm test' } },
          reason: 'Command execution requires user approval',
          created_at: '2026-01-01T10:00:02.000Z',
          call_id: 'call_2',
          tool_name: 'execute_command',
          arguments: { command: 'npm test' },
          expires_at: soon,
        },
      ],
      count: 2,
    });
  });

  it('answers an empty list for a session without pending calls', async () => {
    const user = newUser();
    const id = await createSession(service, user.headers);
    expect((await service.app.inject({ method: 'GET', url: `/sessions/${id}/pending-approvals`, headers: user.headers })).json()).toEqual({
      session_id: id,
      pending_approvals: [],
      count: 0,
    });
  });

  it("answers 404 for an unknown session and for another user's (upstream never did), 400 for a malformed id", async () => {
    const owner = newUser();
    const id = await createSession(service, owner.headers);
    await insertCall(id, {
      callId: 'call_1',
      tool: 'write_file',
      args: {},
      status: 'pending_approval',
      createdAt: new Date().toISOString(),
    });
    for (const [url, headers] of [
      [`/sessions/${id}/pending-approvals`, newUser().headers],
      [`/sessions/none-${randomUUID()}/pending-approvals`, owner.headers],
    ] as const) {
      const res = await service.app.inject({ method: 'GET', url, headers });
      expect(res.statusCode).toBe(404);
      expect(res.json()).toMatchObject({ error: { code: 'RT_ERR_SESSION_NOT_FOUND' } });
    }
    const bad = await service.app.inject({ method: 'GET', url: '/sessions/a%20b/pending-approvals', headers: owner.headers });
    expect(bad.statusCode).toBe(400);
  });
});
