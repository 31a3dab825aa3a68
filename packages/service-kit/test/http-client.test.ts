import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isJsonType, parseAnswer, PeerClient, PeerUnavailableError } from '../src/http-client.ts';
import { ServiceMetrics } from '../src/metrics.ts';
import { createService, type Service } from '../src/service.ts';
import { freePort, misbehavingRoutes, silentLogger, TEST_INTERNAL_KEY } from '@codelab/service-kit/testing';
import { find, value } from './prom-text.ts';

/** The calls `metrics` counted for `route`: [status_code, count] per status (http_client_request_duration_seconds). */
async function counted(metrics: ServiceMetrics, route: string): Promise<[string | undefined, number][]> {
  const { body } = await metrics.render(undefined);
  return find(body, 'http_client_request_duration_seconds_count', { route }).map((s) => [s.labels.status_code, s.value]);
}

async function listen(app: FastifyInstance): Promise<string> {
  await app.listen({ host: '127.0.0.1', port: 0 });
  return `http://127.0.0.1:${(app.server.address() as { port: number }).port}`;
}

describe('http-client', () => {
  let peer: Service;
  let base: string;
  let releaseSlow: () => void = () => undefined;
  const slowReleased = new Promise<void>((r) => (releaseSlow = r));

  beforeAll(async () => {
    peer = createService({
      name: 'runtime',
      version: '1.0.0',
      logLevel: 'info',
      logger: silentLogger(),
      requireInternalKey: TEST_INTERNAL_KEY,
      fastify: { forceCloseConnections: true },
    });
    peer.app.get('/echo/:id', async (request) => ({
      id: (request.params as { id: string }).id,
      query: request.query,
      key: request.headers['x-internal-auth'],
      extra: request.headers['x-extra'] ?? null,
    }));
    peer.app.post('/things', async (request, reply) =>
      reply.status(201).send({ got: request.body, contentType: request.headers['content-type'] }),
    );
    peer.app.get('/text', async (_request, reply) => reply.type('text/plain').send('upstream exploded'));
    peer.app.get('/empty', async (_request, reply) => reply.status(204).send());
    peer.app.get('/slow', async () => {
      await slowReleased;
      return { late: true };
    });
    base = await listen(peer.app);
  });
  afterAll(async () => {
    releaseSlow();
    await peer.app.close();
  });

  function client(extra: Partial<ConstructorParameters<typeof PeerClient>[0]> = {}): { client: PeerClient; metrics: ServiceMetrics } {
    const metrics = new ServiceMetrics('gateway');
    return {
      client: new PeerClient({ peer: 'runtime', baseUrl: `${base}/`, internalApiKey: TEST_INTERNAL_KEY, metrics, ...extra }),
      metrics,
    };
  }

  describe('PeerClient.request', () => {
    it('sends the internal key, the query and the caller headers', async () => {
      const { client: c } = client();
      try {
        const res = await c.request({
          method: 'GET',
          path: '/echo/7',
          route: '/echo/:id',
          query: { a: 1, b: true, skip: undefined, s: 'x y' },
          headers: { 'x-extra': 'yes' },
        });
        expect(res.statusCode).toBe(200);
        expect(await res.body.json()).toEqual({ id: '7', query: { a: '1', b: 'true', s: 'x y' }, key: TEST_INTERNAL_KEY, extra: 'yes' });
      } finally {
        await c.close();
      }
    });

    it('is refused by the peer without the key', async () => {
      const { client: c } = client({ internalApiKey: undefined });
      try {
        const res = await c.json({ method: 'GET', path: '/echo/7', route: '/echo/:id' });
        expect(res).toEqual({
          statusCode: 401,
          body: { error: { code: 'ERR_UNAUTHORIZED', message: 'Missing or invalid x-internal-auth header' } },
        });
      } finally {
        await c.close();
      }
    });

    it('throws PeerUnavailableError (not a timeout) when nothing listens', async () => {
      const port = await freePort();
      const metrics = new ServiceMetrics('gateway');
      const c = new PeerClient({ peer: 'llm-proxy', baseUrl: `http://127.0.0.1:${port}`, metrics });
      try {
        const error = await c.request({ method: 'GET', path: '/v1/models', route: '/v1/models' }).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(PeerUnavailableError);
        const e = error as PeerUnavailableError;
        expect({ name: e.name, peer: e.peer, timeout: e.timeout }).toEqual({
          name: 'PeerUnavailableError',
          peer: 'llm-proxy',
          timeout: false,
        });
        expect(e.message).toMatch(/^llm-proxy is unreachable: .*ECONNREFUSED/);
        const { body } = await metrics.render(undefined);
        expect(
          value(body, 'http_client_request_duration_seconds_count', {
            service: 'gateway',
            peer: 'llm-proxy',
            method: 'GET',
            route: '/v1/models',
            status_code: 'error',
          }),
        ).toBe(1);
      } finally {
        await c.close();
      }
    });

    it('throws a timeout PeerUnavailableError when the headers do not come in time', async () => {
      const { client: c, metrics } = client({ headersTimeoutMs: 200 });
      try {
        const started = performance.now();
        const error = await c.request({ method: 'GET', path: '/slow', route: '/slow' }).catch((e: unknown) => e);
        const elapsed = performance.now() - started;
        expect(error).toBeInstanceOf(PeerUnavailableError);
        const e = error as PeerUnavailableError;
        expect({ peer: e.peer, timeout: e.timeout }).toEqual({ peer: 'runtime', timeout: true });
        expect(e.message).toMatch(/^runtime did not answer in time: /);
        expect(elapsed).toBeGreaterThanOrEqual(150);
        expect(elapsed).toBeLessThan(3000);
        const { body } = await metrics.render(undefined);
        expect(value(body, 'http_client_request_duration_seconds_count', { peer: 'runtime', route: '/slow', status_code: 'error' })).toBe(
          1,
        );
      } finally {
        await c.close();
      }
    });

    it('rethrows an abort by the caller as is, counted as aborted', async () => {
      const { client: c, metrics } = client();
      const controller = new AbortController();
      try {
        setTimeout(() => controller.abort(), 50);
        const error = await c.request({ method: 'GET', path: '/slow', route: '/slow', signal: controller.signal }).catch((e: unknown) => e);
        expect(error).not.toBeInstanceOf(PeerUnavailableError);
        expect((error as Error).name).toBe('AbortError');
        expect(await counted(metrics, '/slow')).toEqual([['aborted', 1]]);
      } finally {
        await c.close();
      }
    });

    // Regression: an abort with a reason (startSse's signal, AbortSignal.timeout) was counted as
    // status_code="error", inflating the peer's error rate.
    it('counts an abort that carries a reason as aborted', async () => {
      const { client: c, metrics } = client();
      const controller = new AbortController();
      try {
        setTimeout(() => controller.abort(new Error('client disconnected')), 50);
        const error = await c.request({ method: 'GET', path: '/slow', route: '/slow', signal: controller.signal }).catch((e: unknown) => e);
        expect(error).not.toBeInstanceOf(PeerUnavailableError);
        expect((error as Error).message).toBe('client disconnected');
        expect(await counted(metrics, '/slow')).toEqual([['aborted', 1]]);
      } finally {
        await c.close();
      }
    });

    it('records http_client_request_duration_seconds by peer, route template and status', async () => {
      const { client: c, metrics } = client();
      try {
        for (const id of ['1', '2', '3']) await (await c.request({ method: 'GET', path: `/echo/${id}`, route: '/echo/:id' })).body.dump();
        await (await c.request({ method: 'GET', path: '/missing', route: '/missing' })).body.dump();
        const { body } = await metrics.render(undefined);
        expect(
          value(body, 'http_client_request_duration_seconds_count', {
            service: 'gateway',
            peer: 'runtime',
            method: 'GET',
            route: '/echo/:id',
            status_code: '200',
          }),
        ).toBe(3);
        expect(
          value(body, 'http_client_request_duration_seconds_count', {
            service: 'gateway',
            peer: 'runtime',
            method: 'GET',
            route: '/missing',
            status_code: '404',
          }),
        ).toBe(1);
        expect(find(body, 'http_client_request_duration_seconds_count').map((s) => s.labels.route)).toEqual(['/echo/:id', '/missing']);
      } finally {
        await c.close();
      }
    });
  });

  describe('PeerClient.json', () => {
    it('sends a JSON body (an object, or a Buffer of JSON as it is) and parses the JSON answer', async () => {
      const { client: c } = client();
      try {
        expect(await c.json({ method: 'POST', path: '/things', route: '/things', body: { name: 'ada', n: [1, 2] } })).toEqual({
          statusCode: 201,
          body: { got: { name: 'ada', n: [1, 2] }, contentType: 'application/json' },
        });
        // a Buffer is JSON encoded already: sent as it is
        const encoded = Buffer.from(JSON.stringify({ name: 'grace' }));
        expect(await c.json({ method: 'POST', path: '/things', route: '/things', body: encoded })).toEqual({
          statusCode: 201,
          body: { got: { name: 'grace' }, contentType: 'application/json' },
        });
      } finally {
        await c.close();
      }
    });

    it('gives an error object for a body that is not JSON, and undefined for none', async () => {
      const { client: c } = client();
      try {
        expect(await c.json({ method: 'GET', path: '/text', route: '/text' })).toEqual({
          statusCode: 200,
          body: { error: { code: 'ERR_BAD_UPSTREAM_BODY', message: 'upstream exploded' } },
        });
        expect(await c.json({ method: 'GET', path: '/empty', route: '/empty' })).toEqual({ statusCode: 204, body: undefined });
      } finally {
        await c.close();
      }
    });
  });

  describe('PeerClient.text', () => {
    it('answers the body as it came, with its content type, for a relay to send on unparsed', async () => {
      const { client: c } = client();
      try {
        const answer = await c.text({ method: 'POST', path: '/things', route: '/things', body: { name: 'ada' } });
        expect(answer.statusCode).toBe(201);
        expect(isJsonType(answer.contentType)).toBe(true);
        expect(JSON.parse(answer.text)).toEqual({ got: { name: 'ada' }, contentType: 'application/json' });
        const text = await c.text({ method: 'GET', path: '/text', route: '/text' });
        expect(isJsonType(text.contentType)).toBe(false);
        expect(parseAnswer(text.text)).toEqual({ error: { code: 'ERR_BAD_UPSTREAM_BODY', message: 'upstream exploded' } });
      } finally {
        await c.close();
      }
    });

    describe('reads the body whole without a body stream', () => {
      let odd: FastifyInstance;
      let url: string;
      let misbehaving: { release(): void } | undefined;
      let release: () => void = () => undefined;
      /** Requests /held has received. */
      let heldCalls = 0;
      beforeAll(async () => {
        odd = Fastify({ forceCloseConnections: true });
        // a long answer in many writes, multi-byte characters split across them
        odd.get('/long', async (_request, reply) => {
          const text = JSON.stringify({ words: Array.from({ length: 4000 }, (_, i) => `wört-${i}-€`) });
          const bytes = Buffer.from(text);
          reply.hijack();
          reply.raw.writeHead(200, { 'content-type': 'application/json; charset=utf-8' });
          for (let i = 0; i < bytes.length; i += 1001) {
            reply.raw.write(bytes.subarray(i, i + 1001));
            await new Promise((r) => setImmediate(r));
          }
          reply.raw.end();
        });
        // an informational answer (103 Early Hints) before the real one
        odd.get('/hinted', async (_request, reply) => {
          reply.raw.writeEarlyHints({ link: '</style.css>; rel=preload; as=style' });
          return reply.type('application/json').send('{"hinted":true}');
        });
        // held until the test lets it go
        odd.get('/held', async (_request, reply) => {
          heldCalls++;
          await new Promise<void>((r) => (release = r));
          return reply.type('application/json').send('{"held":true}');
        });
        misbehaving = misbehavingRoutes(odd);
        url = await listen(odd);
      });
      afterAll(async () => {
        misbehaving?.release();
        release();
        await odd.close();
      });

      it('gathers a body sent in many writes, characters split across them included', async () => {
        const metrics = new ServiceMetrics('gateway');
        const c = new PeerClient({ peer: 'runtime', baseUrl: url, metrics });
        try {
          const answer = await c.text({ method: 'GET', path: '/long', route: '/long' });
          expect(answer.statusCode).toBe(200);
          expect(answer.contentType).toBe('application/json; charset=utf-8');
          const words = (JSON.parse(answer.text) as { words: string[] }).words;
          expect(words).toHaveLength(4000);
          expect(words[3999]).toBe('wört-3999-€');
          const { body } = await metrics.render(undefined);
          expect(value(body, 'http_client_request_duration_seconds_count', { route: '/long', status_code: '200' })).toBe(1);
        } finally {
          await c.close();
        }
      });

      it('a peer that breaks off its body is unavailable (its status counted once)', async () => {
        const metrics = new ServiceMetrics('gateway');
        const c = new PeerClient({ peer: 'runtime', baseUrl: url, metrics });
        try {
          const error = await c.text({ method: 'GET', path: '/broken', route: '/broken' }).catch((e: unknown) => e);
          expect(error).toBeInstanceOf(PeerUnavailableError);
          expect({ peer: (error as PeerUnavailableError).peer, timeout: (error as PeerUnavailableError).timeout }).toEqual({
            peer: 'runtime',
            timeout: false,
          });
          expect(await counted(metrics, '/broken')).toEqual([['200', 1]]);
        } finally {
          await c.close();
        }
      });

      it('a request undici refuses to send (a header with a line break) is a failed call, counted as an error', async () => {
        const metrics = new ServiceMetrics('gateway');
        const c = new PeerClient({ peer: 'runtime', baseUrl: url, metrics });
        try {
          const error = await c
            .bytes({ method: 'GET', path: '/long', route: '/long', headers: { 'x-bad': 'a\r\nb' } })
            .catch((e: unknown) => e);
          expect(error).toBeInstanceOf(PeerUnavailableError);
          expect(await counted(metrics, '/long')).toEqual([['error', 1]]);
        } finally {
          await c.close();
        }
      });

      it('answers the final status after an informational one, counted once', async () => {
        const metrics = new ServiceMetrics('gateway');
        const c = new PeerClient({ peer: 'runtime', baseUrl: url, metrics });
        try {
          const answer = await c.bytes({ method: 'GET', path: '/hinted', route: '/hinted' });
          expect([answer.statusCode, answer.contentType, answer.body.toString()]).toEqual([
            200,
            'application/json; charset=utf-8',
            '{"hinted":true}',
          ]);
          expect(await counted(metrics, '/hinted')).toEqual([['200', 1]]);
        } finally {
          await c.close();
        }
      });

      it('an abort while the call waits for a connection ends it at once, with the reason', async () => {
        const metrics = new ServiceMetrics('gateway');
        const c = new PeerClient({ peer: 'runtime', baseUrl: url, metrics, connections: 1 });
        try {
          // the one connection is busy until `release`
          const busy = c.bytes({ method: 'GET', path: '/held', route: '/held' });
          await expect.poll(() => heldCalls).toBe(1);
          const queued = new AbortController();
          const waiting = c.bytes({ method: 'GET', path: '/hinted', route: '/hinted', signal: queued.signal }).catch((e: unknown) => e);
          queued.abort(new Error('gave up waiting'));
          // settles while the connection is still held (before the fix it waited for `release`)
          expect(((await waiting) as Error).message).toBe('gave up waiting');
          release();
          expect((await busy).body.toString()).toBe('{"held":true}');
          expect(await counted(metrics, '/hinted')).toEqual([['aborted', 1]]);
        } finally {
          await c.close();
        }
      });

      it('a body silent past the body timeout is a timeout', async () => {
        const c = new PeerClient({ peer: 'runtime', baseUrl: url, metrics: new ServiceMetrics('gateway'), bodyTimeoutMs: 200 });
        try {
          const error = await c.text({ method: 'GET', path: '/stalls', route: '/stalls' }).catch((e: unknown) => e);
          expect(error).toBeInstanceOf(PeerUnavailableError);
          expect((error as PeerUnavailableError).timeout).toBe(true);
          expect((error as Error).message).toMatch(/^runtime did not answer in time: /);
        } finally {
          await c.close();
        }
      });

      it('an abort by the caller, before the answer or while its body comes, ends the call with the abort reason', async () => {
        const metrics = new ServiceMetrics('gateway');
        const c = new PeerClient({ peer: 'runtime', baseUrl: `${base}/`, internalApiKey: TEST_INTERNAL_KEY, metrics });
        const d = new PeerClient({ peer: 'runtime', baseUrl: url, metrics });
        try {
          const early = new AbortController();
          const pending = c.text({ method: 'GET', path: '/slow', route: '/slow', signal: early.signal }).catch((e: unknown) => e);
          early.abort(new Error('client disconnected'));
          expect(((await pending) as Error).message).toBe('client disconnected');
          const before = new AbortController();
          before.abort();
          expect(
            ((await c.text({ method: 'GET', path: '/slow', route: '/slow', signal: before.signal }).catch((e: unknown) => e)) as Error)
              .name,
          ).toBe('AbortError');
          // headers came, the body has not ended: the abort still ends the call
          const late = new AbortController();
          const started = d.text({ method: 'GET', path: '/stalls', route: '/stalls', signal: late.signal }).catch((e: unknown) => e);
          await expect
            .poll(async () =>
              value((await metrics.render(undefined)).body, 'http_client_request_duration_seconds_count', { route: '/stalls' }),
            )
            .toBe(1);
          late.abort(new Error('gone'));
          const error = await started;
          expect(error).not.toBeInstanceOf(PeerUnavailableError);
          expect((error as Error).message).toBe('gone');
          expect(await counted(metrics, '/slow')).toEqual([['aborted', 2]]);
        } finally {
          await c.close();
          await d.close();
        }
      });
    });

    it.each([
      ['application/json', true],
      ['application/json; charset=utf-8', true],
      ['Application/JSON;charset=utf-8', true],
      ['application/problem+json', true],
      ['application/jsonp', false],
      ['text/json', false],
      ['text/plain; charset=utf-8', false],
      [undefined, false],
    ])('isJsonType(%s) is %s', (type, json) => {
      expect(isJsonType(type)).toBe(json);
    });
  });

  describe('PeerClient.checkHealth', () => {
    it('resolves when the peer /health answers 200', async () => {
      const { client: c } = client();
      try {
        await expect(c.checkHealth()).resolves.toBeUndefined();
      } finally {
        await c.close();
      }
    });

    it('rejects naming the status otherwise', async () => {
      const sick = Fastify();
      sick.get('/health', async (_request, reply) => reply.status(503).send({ status: 'unhealthy' }));
      const url = await listen(sick);
      const c = new PeerClient({ peer: 'auth', baseUrl: url, metrics: new ServiceMetrics('gateway') });
      try {
        await expect(c.checkHealth()).rejects.toThrow('auth /health answered 503');
      } finally {
        await c.close();
        await sick.close();
      }
    });
  });
});
