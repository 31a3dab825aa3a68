/** Runtime sessions REST against the run's PostgreSQL (internal API: the gateway calls it). */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import type { Service } from '@codelab/service-kit';
import { silentLogger, TEST_INTERNAL_KEY } from '@codelab/service-kit/testing';
import { buildApp } from '../../src/app.ts';
import { readRuntimeConfig } from '../../src/config.ts';

describe('sessions routes', () => {
  let service: Service;
  const key = { 'x-internal-auth': TEST_INTERNAL_KEY };

  beforeAll(async () => {
    service = await buildApp(
      readRuntimeConfig({ AGENT_RUNTIME__INTERNAL_API_KEY: TEST_INTERNAL_KEY, AGENT_RUNTIME__DB_URL: inject('databaseUrl'), AGENT_RUNTIME__DB_POOL_SIZE: '2' }),
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
    const res = await service.app.inject({ method: 'POST', url: '/sessions', headers: key, payload: { session_id: id, user_id: 'user-1' } });
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
    const bad = await service.app.inject({ method: 'POST', url: '/sessions', headers: key, payload: { session_id: 'has spaces/and slashes' } });
    expect(bad.statusCode).toBe(400);
    for (const qs of ['limit=0', 'limit=1001', 'offset=-1', 'limit=abc']) {
      const res = await service.app.inject({ method: 'GET', url: `/sessions?${qs}`, headers: key });
      expect(res.statusCode, qs).toBe(400);
      expect(res.json()).toMatchObject({ error: { code: 'ERR_VALIDATION' } });
    }
  });

  it('lists sessions newest first with a true total, honouring limit and offset', async () => {
    const ids = [`rt-a-${randomUUID()}`, `rt-b-${randomUUID()}`, `rt-c-${randomUUID()}`];
    for (const id of ids) await service.app.inject({ method: 'POST', url: '/sessions', headers: key, payload: { session_id: id } });
    const page = (await service.app.inject({ method: 'GET', url: '/sessions?limit=2&offset=0', headers: key })).json();
    expect(page.sessions).toHaveLength(2);
    expect(page.sessions.map((s: { id: string }) => s.id)).toEqual([ids[2], ids[1]]);
    expect(page.total).toBeGreaterThanOrEqual(3);
    expect(page).toMatchObject({ limit: 2, offset: 0 });
    const next = (await service.app.inject({ method: 'GET', url: '/sessions?limit=1&offset=2', headers: key })).json();
    expect(next.sessions[0].id).toBe(ids[0]);
    expect(next.total).toBe(page.total);
  });

  it('answers 404 for the history and detail of an unknown session', async () => {
    for (const url of [`/sessions/none-${randomUUID()}/history`, `/sessions/none-${randomUUID()}`]) {
      const res = await service.app.inject({ method: 'GET', url, headers: key });
      expect(res.statusCode).toBe(404);
      expect(res.json()).toMatchObject({ error: { code: 'RT_ERR_SESSION_NOT_FOUND' } });
    }
  });

  it('reports database and llm-proxy readiness', async () => {
    const res = await service.app.inject({ method: 'GET', url: '/ready' });
    // No llm-proxy listens at the default URL in this suite.
    expect(res.statusCode).toBe(503);
    expect(res.json()).toMatchObject({ checks: { database: 'ok' }, failed: ['llm-proxy'] });
  });
});
