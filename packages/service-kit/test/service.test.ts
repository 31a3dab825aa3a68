import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { isDatabaseUnavailable } from '../src/db-errors.ts';
import { defineErrors } from '../src/errors.ts';
import { createService, type Service, type ServiceOptions } from '../src/service.ts';
import { capturingLogger, freePort, silentLogger, TEST_INTERNAL_KEY } from '@codelab/service-kit/testing';
import { find, value } from './prom-text.ts';

const errors = defineErrors({
  SVC_ERR_GONE: { status: 410, message: 'The item is gone' },
  SVC_ERR_UPSTREAM_DOWN: { status: 503, message: 'The upstream is down' },
});

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const OPENMETRICS = 'application/openmetrics-text; version=1.0.0,text/plain;version=0.0.4;q=0.5';

/** A service with a few routes of each kind. */
function build(opts: Partial<ServiceOptions> = {}): Service {
  const service = createService({ name: 'svc', version: '1.2.3', logLevel: 'info', logger: silentLogger(), ...opts });
  const { app } = service;
  app.get('/items/:id', async (request) => ({ id: (request.params as { id: string }).id, requestId: request.id }));
  app.get('/open', { config: { public: true } }, async () => ({ open: true }));
  app.get('/gone', async () => {
    throw errors.SVC_ERR_GONE();
  });
  app.get('/gone-detailed', async () => {
    throw errors.SVC_ERR_GONE('Item 7 was deleted', { item: 7 });
  });
  app.get('/upstream', async () => {
    throw errors.SVC_ERR_UPSTREAM_DOWN();
  });
  app.get('/boom', async () => {
    throw new Error('secret database password in a message');
  });
  app.post(
    '/things',
    { schema: { body: { type: 'object', required: ['name'], properties: { name: { type: 'string' } } } } },
    async (request) => request.body,
  );
  return service;
}

describe('service', () => {
  describe('createService', () => {
    describe('GET /health', () => {
      it('names the service and its version', async () => {
        const service = build();
        const res = await service.app.inject({ method: 'GET', url: '/health' });
        await service.app.close();
        expect(res.statusCode).toBe(200);
        expect(res.json()).toEqual({ status: 'healthy', service: 'svc', version: '1.2.3' });
      });
    });

    describe('GET /ready', () => {
      it('answers 200 with every check ok', async () => {
        const service = build();
        service.addReadinessCheck('database', async () => undefined);
        service.addReadinessCheck('redis', async () => undefined);
        const res = await service.app.inject({ method: 'GET', url: '/ready' });
        await service.app.close();
        expect(res.statusCode).toBe(200);
        expect(res.json()).toEqual({ status: 'ready', service: 'svc', version: '1.2.3', checks: { database: 'ok', redis: 'ok' } });
      });

      it('answers 200 with no checks at all', async () => {
        const service = build();
        const res = await service.app.inject({ method: 'GET', url: '/ready' });
        await service.app.close();
        expect(res.statusCode).toBe(200);
        expect(res.json()).toEqual({ status: 'ready', service: 'svc', version: '1.2.3', checks: {} });
      });

      it('answers 503 naming the failed check and its error', async () => {
        const service = build();
        service.addReadinessCheck('database', async () => undefined);
        service.addReadinessCheck('redis', async () => {
          throw new Error('connect ECONNREFUSED 127.0.0.1:6379');
        });
        service.addReadinessCheck('runtime', () => Promise.reject('plain string reason'));
        const res = await service.app.inject({ method: 'GET', url: '/ready' });
        await service.app.close();
        expect(res.statusCode).toBe(503);
        const body = res.json();
        expect(body).toEqual({
          status: 'not_ready',
          service: 'svc',
          version: '1.2.3',
          checks: { database: 'ok', redis: 'error: connect ECONNREFUSED 127.0.0.1:6379', runtime: 'error: plain string reason' },
          failed: expect.any(Array),
        });
        expect([...body.failed].sort()).toEqual(['redis', 'runtime']);
      });

      it('reports a check that does not answer within 2 s', async () => {
        const service = build();
        service.addReadinessCheck('database', async () => undefined);
        service.addReadinessCheck('peer', () => new Promise<void>(() => undefined));
        const started = performance.now();
        const res = await service.app.inject({ method: 'GET', url: '/ready' });
        const elapsed = performance.now() - started;
        await service.app.close();
        expect(res.statusCode).toBe(503);
        expect(res.json()).toEqual({
          status: 'not_ready',
          service: 'svc',
          version: '1.2.3',
          checks: { database: 'ok', peer: 'error: no answer within 2000 ms' },
          failed: ['peer'],
        });
        expect(elapsed).toBeGreaterThanOrEqual(1900);
        expect(elapsed).toBeLessThan(5000);
      });

      it('answers 503 `shutdown` once draining started', async () => {
        const service = build();
        service.addReadinessCheck('database', async () => undefined);
        expect(service.draining).toBe(false);
        service.startDraining();
        expect(service.draining).toBe(true);
        const res = await service.app.inject({ method: 'GET', url: '/ready' });
        await service.app.close();
        expect(res.statusCode).toBe(503);
        expect(res.json()).toEqual({
          status: 'not_ready',
          service: 'svc',
          version: '1.2.3',
          checks: { database: 'ok' },
          failed: ['shutdown'],
        });
      });
    });

    describe('internal key', () => {
      let service: Service;
      beforeAll(() => {
        service = build({ requireInternalKey: TEST_INTERNAL_KEY });
      });
      afterAll(() => service.app.close());

      const unauthorized = { error: { code: 'ERR_UNAUTHORIZED', message: 'Missing or invalid x-internal-auth header' } };

      it('answers 401 without the key', async () => {
        const res = await service.app.inject({ method: 'GET', url: '/items/1' });
        expect(res.statusCode).toBe(401);
        expect(res.json()).toEqual(unauthorized);
      });

      it('answers 401 with a wrong key', async () => {
        for (const key of ['wrong', `${TEST_INTERNAL_KEY}x`, TEST_INTERNAL_KEY.slice(0, -1), '']) {
          const res = await service.app.inject({ method: 'GET', url: '/items/1', headers: { 'x-internal-auth': key } });
          expect(res.statusCode, `key ${JSON.stringify(key)}`).toBe(401);
          expect(res.json()).toEqual(unauthorized);
        }
      });

      it('serves the route with the key', async () => {
        const res = await service.app.inject({ method: 'GET', url: '/items/1', headers: { 'X-Internal-Auth': TEST_INTERNAL_KEY } });
        expect(res.statusCode).toBe(200);
        expect(res.json()).toMatchObject({ id: '1' });
      });

      it('serves /health, /ready, /metrics and public routes without the key', async () => {
        for (const url of ['/health', '/ready', '/metrics', '/metrics?name[]=up', '/open']) {
          const res = await service.app.inject({ method: 'GET', url });
          expect(res.statusCode, url).toBe(200);
        }
        expect((await service.app.inject({ method: 'GET', url: '/open' })).json()).toEqual({ open: true });
      });

      it('answers 401, not 404, to an unknown route without the key, and 404 with it', async () => {
        expect((await service.app.inject({ method: 'GET', url: '/nope' })).statusCode).toBe(401);
        const res = await service.app.inject({ method: 'GET', url: '/nope', headers: { 'x-internal-auth': TEST_INTERNAL_KEY } });
        expect(res.statusCode).toBe(404);
        expect(res.json()).toEqual({ error: { code: 'ERR_NOT_FOUND', message: 'Route GET /nope not found' } });
      });

      it('needs no key when the service has none', async () => {
        const open = build();
        const res = await open.app.inject({ method: 'GET', url: '/items/9' });
        await open.app.close();
        expect(res.statusCode).toBe(200);
        expect(res.json()).toMatchObject({ id: '9' });
      });
    });

    describe('errors', () => {
      let service: Service;
      let downPort = 0;
      let lines: () => Record<string, unknown>[];
      beforeAll(async () => {
        downPort = await freePort();
        const capture = capturingLogger('warn');
        lines = capture.lines;
        service = build({ logger: capture.logger, bodyLimit: 64 });
        // a real driver against a database that is not there (nothing listens on the port)
        service.app.get('/db-down', async () => {
          const pool = new pg.Pool({ connectionString: `postgres://postgres@127.0.0.1:${downPort}/none`, connectionTimeoutMillis: 30_000 });
          try {
            return await pool.query('SELECT 1');
          } finally {
            await pool.end();
          }
        });
      });
      afterAll(() => service.app.close());

      it('answers 404 ERR_NOT_FOUND to an unknown route, without the query string', async () => {
        const res = await service.app.inject({ method: 'DELETE', url: '/no/such/route?token=abc' });
        expect(res.statusCode).toBe(404);
        expect(res.json()).toEqual({ error: { code: 'ERR_NOT_FOUND', message: 'Route DELETE /no/such/route not found' } });
      });

      it('renders an AppError of a defineErrors table with its status and code', async () => {
        const res = await service.app.inject({ method: 'GET', url: '/gone' });
        expect(res.statusCode).toBe(410);
        expect(res.json()).toEqual({ error: { code: 'SVC_ERR_GONE', message: 'The item is gone' } });
        const detailed = await service.app.inject({ method: 'GET', url: '/gone-detailed' });
        expect(detailed.statusCode).toBe(410);
        expect(detailed.json()).toEqual({ error: { code: 'SVC_ERR_GONE', message: 'Item 7 was deleted', details: { item: 7 } } });
      });

      it('logs an AppError at error level only when it is a 5xx', async () => {
        const before = lines().filter((l) => l.level === 50).length;
        await service.app.inject({ method: 'GET', url: '/gone' });
        expect(lines().filter((l) => l.level === 50)).toHaveLength(before);
        const res = await service.app.inject({ method: 'GET', url: '/upstream' });
        expect(res.statusCode).toBe(503);
        expect(res.json()).toEqual({ error: { code: 'SVC_ERR_UPSTREAM_DOWN', message: 'The upstream is down' } });
        const logged = lines().filter((l) => l.level === 50);
        expect(logged).toHaveLength(before + 1);
        expect(logged.at(-1)!.msg).toBe('The upstream is down');
      });

      it('answers 400 ERR_VALIDATION to a body that fails the schema', async () => {
        const res = await service.app.inject({ method: 'POST', url: '/things', payload: { other: 1 } });
        expect(res.statusCode).toBe(400);
        expect(res.json()).toEqual({ error: { code: 'ERR_VALIDATION', message: "body must have required property 'name'" } });
      });

      it('answers 400 ERR_VALIDATION to malformed JSON', async () => {
        const res = await service.app.inject({
          method: 'POST',
          url: '/things',
          headers: { 'content-type': 'application/json' },
          payload: '{"name":',
        });
        expect(res.statusCode).toBe(400);
        expect(res.json().error.code).toBe('ERR_VALIDATION');
      });

      it('answers 413 ERR_PAYLOAD_TOO_LARGE past the body limit', async () => {
        const res = await service.app.inject({ method: 'POST', url: '/things', payload: { name: 'x'.repeat(100) } });
        expect(res.statusCode).toBe(413);
        expect(res.json()).toEqual({ error: { code: 'ERR_PAYLOAD_TOO_LARGE', message: 'Request body too large' } });
      });

      it('answers 415 ERR_UNSUPPORTED_MEDIA_TYPE to a body type it cannot parse', async () => {
        const res = await service.app.inject({
          method: 'POST',
          url: '/things',
          headers: { 'content-type': 'application/xml' },
          payload: '<a/>',
        });
        expect(res.statusCode).toBe(415);
        expect(res.json().error.code).toBe('ERR_UNSUPPORTED_MEDIA_TYPE');
      });

      it('answers 503 ERR_DATABASE_UNAVAILABLE with Retry-After when the database cannot be reached, and logs a warning', async () => {
        const res = await service.app.inject({ method: 'GET', url: '/db-down' });
        expect(res.statusCode).toBe(503);
        expect(res.headers['retry-after']).toBe('5');
        expect(res.json()).toEqual({
          error: { code: 'ERR_DATABASE_UNAVAILABLE', message: 'The database cannot be reached; retry shortly' },
        });
        expect(lines().filter((l) => l.msg === 'the database cannot be reached')).toEqual([expect.objectContaining({ level: 40 })]);
      });

      it.each([
        ['refused', Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' }), true],
        [
          'a name that does not resolve (a stopped container)',
          Object.assign(new Error('getaddrinfo EAI_AGAIN postgres'), { code: 'EAI_AGAIN' }),
          true,
        ],
        ['cut while in use', new Error('Connection terminated unexpectedly'), true],
        ['the pool gave up connecting', new Error('timeout exceeded when trying to connect'), true],
        [
          'the server shutting down (57P01)',
          Object.assign(new Error('terminating connection due to administrator command'), { code: '57P01' }),
          true,
        ],
        ['a connection exception (08006)', Object.assign(new Error('connection failure'), { code: '08006' }), true],
        ['wrapped in a cause', new Error('query failed', { cause: Object.assign(new Error('x'), { code: 'ECONNRESET' }) }), true],
        ['a bad query (42601)', Object.assign(new Error('syntax error at or near "SELEC"'), { code: '42601' }), false],
        ['a constraint (23505)', Object.assign(new Error('duplicate key'), { code: '23505' }), false],
        ['not an error', 'ECONNREFUSED', false],
      ])('tells a database that is away from a bad query: %s', (_, err, unavailable) => {
        expect(isDatabaseUnavailable(err)).toBe(unavailable);
      });

      it('answers 500 ERR_INTERNAL to an unexpected throw without leaking its message, and logs it', async () => {
        const res = await service.app.inject({ method: 'GET', url: '/boom' });
        expect(res.statusCode).toBe(500);
        expect(res.json()).toEqual({ error: { code: 'ERR_INTERNAL', message: 'Internal server error' } });
        expect(res.body).not.toContain('secret');
        const logged = lines().filter((l) => l.msg === 'unhandled error');
        expect(logged).toHaveLength(1);
        expect((logged[0]!.err as { message: string }).message).toBe('secret database password in a message');
      });
    });

    describe('request ids', () => {
      it('keeps a well-formed x-request-id and replaces anything else by a UUID', async () => {
        const service = build();
        const kept = await service.app.inject({ method: 'GET', url: '/items/1', headers: { 'x-request-id': 'abc-123.def_4' } });
        const replaced = await service.app.inject({
          method: 'GET',
          url: '/items/1',
          headers: { 'x-request-id': 'has spaces and "quotes"' },
        });
        await service.app.close();
        expect(kept.json().requestId).toBe('abc-123.def_4');
        expect(replaced.json().requestId).toMatch(/^[\da-f]{8}-[\da-f]{4}-4[\da-f]{3}-[89ab][\da-f]{3}-[\da-f]{12}$/);
      });
    });

    describe('RED metrics', () => {
      let service: Service;
      beforeAll(() => {
        service = build({ requireInternalKey: TEST_INTERNAL_KEY });
      });
      afterAll(() => service.app.close());
      const key = { 'x-internal-auth': TEST_INTERNAL_KEY };
      const metricsText = async () => (await service.app.inject({ method: 'GET', url: '/metrics' })).body;

      it('labels requests with the route template, not the path', async () => {
        await service.app.inject({ method: 'GET', url: '/items/42', headers: key });
        await service.app.inject({ method: 'GET', url: '/items/43?x=1', headers: key });
        await service.app.inject({ method: 'GET', url: '/items/44' });
        const body = await metricsText();
        const count = (status: string) =>
          value(body, 'http_server_request_duration_seconds_count', {
            service: 'svc',
            method: 'GET',
            route: '/items/:id',
            status_code: status,
          });
        expect(count('200')).toBe(2);
        expect(count('401')).toBe(1);
        expect(find(body, 'http_server_request_duration_seconds_count').filter((s) => s.labels.route!.startsWith('/items/4'))).toEqual([]);
      });

      it('labels every unmatched path `__unmatched__`', async () => {
        await service.app.inject({ method: 'GET', url: '/nope/1', headers: key });
        await service.app.inject({ method: 'GET', url: '/nope/2', headers: key });
        const body = await metricsText();
        expect(
          value(body, 'http_server_request_duration_seconds_count', { method: 'GET', route: '__unmatched__', status_code: '404' }),
        ).toBe(2);
        expect(find(body, 'http_server_request_duration_seconds_count').filter((s) => s.labels.route!.startsWith('/nope'))).toEqual([]);
      });

      it('keeps exactly the service, method, route and status_code labels', async () => {
        const body = await metricsText();
        const labelSets = new Set(
          find(body, 'http_server_request_duration_seconds_count').map((s) => Object.keys(s.labels).sort().join(',')),
        );
        expect([...labelSets]).toEqual(['method,route,service,status_code']);
      });

      it('counts a request the client gave up on once, as 499', async () => {
        const listening = build({ fastify: { forceCloseConnections: true } });
        let handlerStarted!: () => void;
        let handlerDone!: () => void;
        const started = new Promise<void>((r) => (handlerStarted = r));
        const finished = new Promise<void>((r) => (handlerDone = r));
        listening.app.get('/slow', async () => {
          handlerStarted();
          await new Promise((r) => setTimeout(r, 200));
          setTimeout(handlerDone, 50);
          return { late: true };
        });
        try {
          await listening.app.listen({ host: '127.0.0.1', port: 0 });
          const port = (listening.app.server.address() as { port: number }).port;
          const client = new AbortController();
          const request = fetch(`http://127.0.0.1:${port}/slow`, { signal: client.signal }).then(
            () => 'answered',
            (err: Error) => err.name,
          );
          await started;
          client.abort();
          expect(await request).toBe('AbortError');
          await finished;
          const body = (await listening.app.inject({ method: 'GET', url: '/metrics' })).body;
          expect(
            find(body, 'http_server_request_duration_seconds_count', { route: '/slow' }).map((s) => [s.labels.status_code, s.value]),
          ).toEqual([['499', 1]]);
        } finally {
          await listening.app.close();
        }
      });

      it('attaches the request trace id as exemplar (OpenMetrics)', async () => {
        await service.app.inject({ method: 'GET', url: '/open', headers: { traceparent: `00-${TRACE_ID}-00f067aa0ba902b7-01` } });
        const res = await service.app.inject({ method: 'GET', url: '/metrics', headers: { accept: OPENMETRICS } });
        const exemplars = find(res.body, 'http_server_request_duration_seconds_bucket', { route: '/open' }).flatMap((s) =>
          s.exemplar ? [s.exemplar.labels.trace_id] : [],
        );
        expect(exemplars).toEqual([TRACE_ID]);
      });
    });

    describe('GET /metrics', () => {
      it('serves Prometheus text by default and OpenMetrics when asked', async () => {
        const service = build();
        await service.app.inject({ method: 'GET', url: '/open' });
        const text = await service.app.inject({ method: 'GET', url: '/metrics' });
        const om = await service.app.inject({ method: 'GET', url: '/metrics', headers: { accept: OPENMETRICS } });
        const again = await service.app.inject({ method: 'GET', url: '/metrics', headers: { accept: 'text/plain' } });
        await service.app.close();
        expect(text.statusCode).toBe(200);
        expect(text.headers['content-type']).toBe('text/plain; version=0.0.4; charset=utf-8');
        expect(text.body).not.toContain('# EOF');
        expect(value(text.body, 'http_server_request_duration_seconds_count', { route: '/open' })).toBe(1);
        expect(om.headers['content-type']).toBe('application/openmetrics-text; version=1.0.0; charset=utf-8');
        expect(om.body.endsWith('# EOF\n')).toBe(true);
        expect(again.headers['content-type']).toBe('text/plain; version=0.0.4; charset=utf-8');
        expect(again.body).toMatch(/^# TYPE process_cpu_seconds_total counter$/m);
      });
    });
  });
});

describe('createService from a service config', () => {
  it('never requires the internal key just because the config carries one', async () => {
    const service = createService({
      name: 'svc',
      version: '1.0.0',
      logLevel: 'info',
      internalApiKey: TEST_INTERNAL_KEY,
      logger: silentLogger(),
    } as Parameters<typeof createService>[0]);
    service.app.get('/open-by-default', async () => ({ ok: true }));
    const res = await service.app.inject({ method: 'GET', url: '/open-by-default' });
    expect(res.statusCode).toBe(200);
    await service.app.close();
  });
});
