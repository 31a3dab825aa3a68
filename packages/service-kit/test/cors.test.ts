/** CORS (`corsOrigins`): the listed browser origins only, preflights answered; without the option, no CORS header at all. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '@codelab/service-kit/testing';
import { createService, type Service } from '../src/service.ts';

describe('corsOrigins', () => {
  let withCors: Service;
  let without: Service;
  beforeAll(async () => {
    const opts = { version: '1', logLevel: 'info', logger: silentLogger() };
    withCors = createService({ name: 'gateway', ...opts, corsOrigins: ['http://127.0.0.1:3000'] });
    without = createService({ name: 'auth', ...opts });
    for (const s of [withCors, without]) s.app.get('/api/v1/things', { config: { public: true } }, async () => ({ ok: true }));
    await Promise.all([withCors.app.ready(), without.app.ready()]);
  });
  afterAll(async () => {
    await withCors.app.close();
    await without.app.close();
  });

  const preflight = (s: Service, origin: string) =>
    s.app.inject({
      method: 'OPTIONS',
      url: '/api/v1/things',
      headers: { origin, 'access-control-request-method': 'GET', 'access-control-request-headers': 'authorization' },
    });

  it("lets the website's origin in, preflight and request, and no other", async () => {
    const ok = await preflight(withCors, 'http://127.0.0.1:3000');
    expect(ok.statusCode).toBe(204);
    expect(ok.headers['access-control-allow-origin']).toBe('http://127.0.0.1:3000');
    expect(String(ok.headers['access-control-allow-headers'])).toContain('authorization');
    const get = await withCors.app.inject({ method: 'GET', url: '/api/v1/things', headers: { origin: 'http://127.0.0.1:3000' } });
    expect(get.headers['access-control-allow-origin']).toBe('http://127.0.0.1:3000');
    expect(get.headers['access-control-allow-credentials']).toBeUndefined();
    const other = await withCors.app.inject({ method: 'GET', url: '/api/v1/things', headers: { origin: 'http://evil.example' } });
    expect(other.headers['access-control-allow-origin']).toBeUndefined();
  });

  it('sends no CORS header without corsOrigins', async () => {
    const get = await without.app.inject({ method: 'GET', url: '/api/v1/things', headers: { origin: 'http://127.0.0.1:3000' } });
    expect(get.headers['access-control-allow-origin']).toBeUndefined();
  });
});
