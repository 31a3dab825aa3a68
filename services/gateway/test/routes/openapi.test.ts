/**
 * GET /openapi.json: public, OpenAPI 3.1, and complete: every registered `/api/v1` route is in it
 * with its parameters and the scope it documents, and the documented scope is the one enforced
 * (a token with every other scope is refused with 403).
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { call, startRestStack, type RestStack } from './fixture.ts';

const ALL_SCOPES = ['api:read', 'api:write', 'api:admin'];

/** Every route of the app as [METHOD, path template], read from fastify's own route tree (HEAD left out). */
function registeredRoutes(app: FastifyInstance): [string, string][] {
  const out: [string, string][] = [];
  const stack: string[] = [];
  for (const line of app.printRoutes({ commonPrefix: false }).split('\n')) {
    const m = /^((?:│ {3}| {4})*)[├└]── (\S+)(?: \(([^)]+)\))?/.exec(line);
    if (!m) continue;
    const depth = m[1]!.length / 4;
    stack.length = depth;
    stack.push(m[2]!);
    const methods = m[3]?.split(', ').filter((x) => x !== 'HEAD') ?? [];
    for (const method of methods) out.push([method, stack.join('')]);
  }
  return out;
}

describe('GET /openapi.json', () => {
  let s: RestStack;
  // biome-ignore lint/suspicious/noExplicitAny: the parsed OpenAPI document, walked loosely
  let doc: any;
  beforeAll(async () => {
    s = await startRestStack(inject('databaseUrl'));
    const res = await call(`${s.gateway}/openapi.json`);
    expect(res.status).toBe(200);
    doc = res.body;
  });
  afterAll(() => s?.close());

  it('is public OpenAPI 3.1 with a bearer JWT scheme', () => {
    expect(doc.openapi).toBe('3.1.0');
    expect(doc.info).toMatchObject({ title: 'CodeLab Platform API', version: expect.any(String) });
    expect(doc.components.securitySchemes.bearerAuth).toMatchObject({ type: 'http', scheme: 'bearer', bearerFormat: 'JWT' });
  });

  it('lists every registered /api/v1 route', () => {
    const routes = registeredRoutes(s.stack.gateway.app).filter(([, p]) => p.startsWith('/api/v1/'));
    expect(routes.length).toBeGreaterThanOrEqual(15);
    const missing = routes.filter(([method, p]) => !doc.paths[p.replace(/:(\w+)/g, '{$1}')]?.[method.toLowerCase()]);
    expect(missing).toEqual([]);
    // and nothing else: no internal or kit routes
    expect(Object.keys(doc.paths).filter((p) => !p.startsWith('/api/v1/'))).toEqual([]);
  });

  it('documents the parameters and answers of the routes', () => {
    const audit = doc.paths['/api/v1/events/audit-log'].get;
    expect(audit.parameters.map((p: { name: string; in: string }) => `${p.in}:${p.name}`).sort()).toEqual([
      'query:event_type',
      'query:limit',
      'query:session_id',
    ]);
    expect(audit.responses['200'].content['application/json'].schema).toEqual({ $ref: '#/components/schemas/AuditLog' });
    const current = doc.paths['/api/v1/agents/{sessionId}/current'].get;
    expect(current.parameters.map((p: { name: string; in: string }) => `${p.in}:${p.name}`).sort()).toEqual([
      'path:sessionId',
      'query:include_history',
    ]);
    expect(doc.paths['/api/v1/sessions/{sessionId}'].get.parameters.map((p: { name: string }) => p.name).sort()).toEqual([
      'include_messages',
      'sessionId',
    ]);
    expect(doc.paths['/api/v1/agents/{sessionId}/switch'].post.requestBody.content['application/json'].schema).toMatchObject({
      required: ['target_agent', 'reason'],
    });
    expect(doc.paths['/api/v1/sessions'].post.requestBody.required).toBe(false);
    expect(doc.paths['/api/v1/agents/{sessionId}/switch'].post.requestBody.required).toBe(true);
    for (const name of [
      'Error',
      'AgentList',
      'AgentContext',
      'SessionDetail',
      'PendingApprovals',
      'EventMetrics',
      'SessionMetrics',
      'AuditLog',
      'EventStats',
    ]) {
      expect(doc.components.schemas[name], name).toBeDefined();
    }
  });

  it('gives each route the scope it enforces: a token with every other scope gets 403', async () => {
    const user = await s.user();
    const checked: string[] = [];
    for (const [p, ops] of Object.entries<Record<string, { security?: Record<string, string[]>[] }>>(doc.paths)) {
      for (const [method, op] of Object.entries(ops)) {
        const url = `${s.gateway}${p.replace('{sessionId}', 'some-session')}`;
        if (op.security?.length === 0) {
          expect((await call(url, { method: method.toUpperCase() })).status, `${method} ${p} is public`).toBe(200);
          continue;
        }
        expect(op.security, `${method} ${p}`).toHaveLength(1);
        const scopes = op.security![0]!.bearerAuth!;
        expect(scopes).toHaveLength(1);
        const others = ALL_SCOPES.filter((x) => x !== scopes[0]).join(' ');
        const res = await call(url, {
          method: method.toUpperCase(),
          headers: { authorization: `Bearer ${await s.token(user.sub, others)}` },
        });
        expect(res.status, `${method} ${p} without ${scopes[0]}`).toBe(403);
        checked.push(`${method} ${p}`);
      }
    }
    expect(checked).toContain('get /api/v1/ws/{sessionId}');
    expect(checked.length).toBeGreaterThanOrEqual(14);
  });
});
