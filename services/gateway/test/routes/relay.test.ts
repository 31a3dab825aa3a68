/**
 * RuntimeClient.relay against a stand-in runtime: a JSON answer leaves byte for byte as the runtime
 * wrote it (its status and content type too), a body that is not JSON becomes
 * ERR_BAD_UPSTREAM_BODY, and a runtime that breaks off its body or goes silent in it is a 502 or 504
 * for the client (not a 500), as one that does not answer at all.
 */
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createService, ServiceMetrics, type Service } from '@codelab/service-kit';
import { misbehavingRoutes, silentLogger, TEST_INTERNAL_KEY } from '@codelab/service-kit/testing';
import { RuntimeClient } from '../../src/runtime-client.ts';

describe('RuntimeClient.relay', () => {
  let runtime: FastifyInstance;
  let gateway: Service;
  let client: RuntimeClient;
  /** Gives up on a silent body after 300 ms (only /stalls goes through it: the others have a patient client). */
  let impatient: RuntimeClient;
  let gatewayUrl: string;
  let misbehaving: { release(): void } | undefined;
  /** What the runtime wrote on /json: odd spacing and characters a re-serialization would change. */
  const written = '{ "title":"Grüße \\u00e9 ✓",  "n" :1.50,"nested":{"a":[1, 2]} }';

  beforeAll(async () => {
    runtime = Fastify({ forceCloseConnections: true });
    runtime.get('/json', async (_request, reply) => reply.status(207).type('application/json; charset=utf-8').send(written));
    runtime.get('/plain', async (_request, reply) => reply.status(500).type('text/plain').send('the runtime fell over'));
    misbehaving = misbehavingRoutes(runtime);
    await runtime.listen({ host: '127.0.0.1', port: 0 });
    const runtimeUrl = `http://127.0.0.1:${(runtime.server.address() as { port: number }).port}`;

    gateway = createService({
      name: 'gateway',
      version: 'test',
      logLevel: 'info',
      logger: silentLogger(),
      fastify: { forceCloseConnections: true },
    });
    const runtimeClient = (timeoutMs: number) =>
      new RuntimeClient({
        baseUrl: runtimeUrl,
        internalApiKey: TEST_INTERNAL_KEY,
        metrics: new ServiceMetrics('gateway'),
        requestTimeoutMs: timeoutMs,
        streamIdleTimeoutMs: timeoutMs,
      });
    client = runtimeClient(30_000);
    impatient = runtimeClient(300);
    gateway.app.get<{ Params: { what: string } }>('/relay/:what', (request, reply) =>
      (request.params.what === 'stalls' ? impatient : client).relay(reply, 'user-1', {
        method: 'GET',
        path: `/${request.params.what}`,
        route: `/${request.params.what}`,
      }),
    );
    await gateway.app.listen({ host: '127.0.0.1', port: 0 });
    gatewayUrl = `http://127.0.0.1:${(gateway.app.server.address() as { port: number }).port}`;
  });
  afterAll(async () => {
    misbehaving?.release();
    await client.close();
    await impatient.close();
    await gateway.app.close();
    await runtime.close();
  });

  it('sends a JSON answer on byte for byte, with its status and content type', async () => {
    const res = await fetch(`${gatewayUrl}/relay/json`);
    expect(res.status).toBe(207);
    expect(res.headers.get('content-type')).toBe('application/json; charset=utf-8');
    expect(Buffer.from(await res.arrayBuffer()).equals(Buffer.from(written))).toBe(true);
  });

  it('answers a body that is not JSON as ERR_BAD_UPSTREAM_BODY with the runtime status', async () => {
    const res = await fetch(`${gatewayUrl}/relay/plain`);
    expect(res.status).toBe(500);
    expect(await res.json()).toEqual({ error: { code: 'ERR_BAD_UPSTREAM_BODY', message: 'the runtime fell over' } });
  });

  it('answers 502 when the runtime breaks off its body, 504 when it goes silent in it', async () => {
    const broken = await fetch(`${gatewayUrl}/relay/broken`);
    expect(broken.status).toBe(502);
    expect(((await broken.json()) as { error: { code: string } }).error.code).toBe('GW_ERR_RUNTIME_UNAVAILABLE');
    const silent = await fetch(`${gatewayUrl}/relay/stalls`);
    expect(silent.status).toBe(504);
    expect(((await silent.json()) as { error: { code: string } }).error.code).toBe('GW_ERR_RUNTIME_TIMEOUT');
  });
});
