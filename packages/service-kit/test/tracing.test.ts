/**
 * With tracing on, as a service's main.ts turns it on (startTracing and the standard OTEL_*
 * variables), spans exported over OTLP to a receiver in this test: what a sampled request
 * records, and what one the sampler dropped costs: no span of its own below it (no CLIENT span,
 * no Redis span), while its logs and the traceparent it sends on still carry its trace.
 */
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import { context, propagation, ROOT_CONTEXT, trace, TraceFlags } from '@opentelemetry/api';
import { afterAll, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import { OtlpReceiver, type ReceivedSpan } from '../../../test/helpers/otlp-receiver.ts';
import { PeerClient } from '../src/http-client.ts';
import { createLogger } from '../src/logger.ts';
import { ServiceMetrics } from '../src/metrics.ts';
import { openRedis } from '../src/redis.ts';
import { createService, type Service } from '../src/service.ts';
import { shutdownTracing, startTracing, tracingEnabled } from '../src/tracing.ts';
import { memoryLines, missingServer, silentLogger, TEST_INTERNAL_KEY } from '@codelab/service-kit/testing';

/** OTLP's span kinds (one more than the API's). */
const SERVER = 2;
const CLIENT = 3;
const STATUS_ERROR = 2;
const hex = (bytes: number): string => randomBytes(bytes).toString('hex');

const receiver = new OtlpReceiver();
const OTEL = { OTEL_EXPORTER_OTLP_ENDPOINT: '', OTEL_BSP_SCHEDULE_DELAY: '20', OTEL_SERVICE_NAME: 'kit-test' };

beforeAll(async () => {
  await receiver.start();
  OTEL.OTEL_EXPORTER_OTLP_ENDPOINT = receiver.url;
  Object.assign(process.env, OTEL);
  expect(await startTracing({ serviceName: 'kit-test', serviceVersion: '1.0.0' })).toBe(true);
  expect(tracingEnabled()).toBe(true);
});
afterAll(async () => {
  await shutdownTracing();
  trace.disable();
  context.disable();
  propagation.disable();
  for (const key of Object.keys(OTEL)) delete process.env[key];
  await receiver.stop();
});

/**
 * Spans of `traceId` once a later sampled trace's spans have arrived: the processor exports in the
 * order spans end, so what the first trace ended would have come by then.
 */
async function spansOf(traceId: string, after: () => Promise<string>): Promise<ReceivedSpan[]> {
  const later = await after();
  await receiver.waitFor((spans) => spans.some((s) => s.traceId === later));
  return receiver.spans.filter((s) => s.traceId === traceId);
}

describe('a request through a service and on to its peer', () => {
  let front: Service;
  let peer: Service;
  let frontUrl = '';
  let client: PeerClient;
  const { destination, lines } = memoryLines();

  beforeAll(async () => {
    peer = createService({ name: 'runtime', version: '1.0.0', logLevel: 'warn', logger: silentLogger() });
    peer.app.get('/seen', async (request) => ({ traceparent: request.headers.traceparent ?? null }));
    await peer.app.listen({ host: '127.0.0.1', port: 0 });
    const peerUrl = `http://127.0.0.1:${(peer.app.server.address() as { port: number }).port}`;
    const metrics = new ServiceMetrics('gateway');
    client = new PeerClient({ peer: 'runtime', baseUrl: peerUrl, internalApiKey: TEST_INTERNAL_KEY, metrics });
    front = createService({
      name: 'gateway',
      version: '1.0.0',
      logLevel: 'info',
      logger: createLogger({ service: 'gateway', level: 'info', destination }),
    });
    front.app.get('/work', async (request) => {
      request.log.info('working');
      const seen = await client.json<{ traceparent: string | null }>({ method: 'GET', path: '/seen', route: '/seen' });
      return { ...request.traceIds(), sent: seen.body.traceparent };
    });
    front.app.addHook('onClose', () => client.close());
    await front.app.listen({ host: '127.0.0.1', port: 0 });
    frontUrl = `http://127.0.0.1:${(front.app.server.address() as { port: number }).port}`;
  });
  afterAll(async () => {
    await front?.app.close();
    await peer?.app.close();
  });

  const work = async (headers: Record<string, string> = {}) => {
    const res = await fetch(`${frontUrl}/work`, { headers });
    expect(res.status).toBe(200);
    return (await res.json()) as { trace_id: string; span_id: string; sent: string };
  };
  /** The request's log lines, once its last one ('request completed', written as its response ends) is there. */
  const linesOf = async (requestId: string) => {
    const mine = () => lines().filter((l) => l.reqId === requestId);
    await vi.waitFor(() => expect(mine().map((l) => l.msg)).toContain('request completed'), { timeout: 30_000, interval: 20 });
    return mine();
  };

  it('sampled: a SERVER span with its attributes, a CLIENT span whose context the peer receives, the ids on every log line', async () => {
    const ids = await work({ 'x-request-id': 'sampled-1', 'user-agent': 'kit-test/1' });
    // the front's SERVER and CLIENT spans, and the peer's SERVER span below them
    await receiver.waitFor((spans) => spans.filter((s) => s.traceId === ids.trace_id).length >= 3);
    const spans = receiver.spans.filter((s) => s.traceId === ids.trace_id);
    expect(spans).toHaveLength(3);
    const server = spans.find((s) => s.spanId === ids.span_id)!;
    const clientSpan = spans.find((s) => s.kind === CLIENT)!;
    const peerServer = spans.find((s) => s.kind === SERVER && s.parentSpanId === clientSpan.spanId)!;
    expect([server.kind, server.name, server.parentSpanId]).toEqual([SERVER, 'GET /work', undefined]);
    expect(peerServer.name).toBe('GET /seen');
    expect(server.attributes).toMatchObject({
      'http.request.method': 'GET',
      'http.route': '/work',
      'url.path': '/work',
      'url.scheme': 'http',
      'user_agent.original': 'kit-test/1',
      'http.response.status_code': 200,
    });
    expect(clientSpan.name).toBe('GET /seen');
    expect(clientSpan.parentSpanId).toBe(server.spanId);
    expect(clientSpan.attributes).toMatchObject({ 'peer.service': 'runtime', 'url.template': '/seen', 'http.response.status_code': 200 });
    expect(ids.sent).toBe(`00-${ids.trace_id}-${clientSpan.spanId}-01`);
    const mine = await linesOf('sampled-1');
    expect(mine.map((l) => l.msg)).toEqual(['working', 'request completed']);
    for (const line of mine) expect(line).toMatchObject({ trace_id: ids.trace_id, span_id: ids.span_id, trace_flags: '01' });
  });

  it('dropped by the sampler: no span, the trace passed on unsampled, and the ids still on every log line', async () => {
    const traceId = hex(16);
    const callerSpan = hex(8);
    const ids = await work({ 'x-request-id': 'dropped-1', traceparent: `00-${traceId}-${callerSpan}-00` });
    expect(ids.trace_id).toBe(traceId);
    expect(ids.span_id).toMatch(/^[\da-f]{16}$/);
    expect(ids.span_id).not.toBe(callerSpan); // the request's own (dropped) span
    // the peer hears the request's span as the parent, not sampled: it records nothing either
    expect(ids.sent).toBe(`00-${traceId}-${ids.span_id}-00`);
    const mine = await linesOf('dropped-1');
    expect(mine.map((l) => l.msg)).toEqual(['working', 'request completed']);
    for (const line of mine) expect(line).toMatchObject({ trace_id: traceId, span_id: ids.span_id, trace_flags: '00' });
    expect(await spansOf(traceId, async () => (await work()).trace_id)).toEqual([]);
  });

  it('a call made after its sampled span ended (the WebSocket upgrade span ends with its 101) still has its CLIENT span', async () => {
    const tracer = trace.getTracer('test');
    const upgrade = tracer.startSpan('upgrade');
    upgrade.end();
    const seen = await context.with(trace.setSpan(context.active(), upgrade), () =>
      client.json<{ traceparent: string | null }>({ method: 'GET', path: '/seen', route: '/seen' }),
    );
    const { traceId, spanId } = upgrade.spanContext();
    await receiver.waitFor((spans) => spans.some((s) => s.traceId === traceId && s.kind === CLIENT));
    const clientSpan = receiver.spans.find((s) => s.traceId === traceId && s.kind === CLIENT)!;
    expect([clientSpan.name, clientSpan.parentSpanId]).toEqual(['GET /seen', spanId]);
    expect(seen.body.traceparent).toBe(`00-${traceId}-${clientSpan.spanId}-01`);
  });
});

describe.skipIf(missingServer('Redis', 'TEST_REDIS_URL', inject('redisUrl')))('Redis commands (openRedis)', () => {
  const tracer = trace.getTracer('test');
  const key = `kit-trace:${hex(6)}`;
  let redis: ReturnType<typeof openRedis>;
  beforeAll(async () => {
    redis = openRedis(inject('redisUrl')!, silentLogger()); // with tracing on (the file's beforeAll)
    if (redis.status !== 'ready') await once(redis, 'ready');
  });
  afterAll(async () => {
    await redis.del(key);
    redis.disconnect();
  });

  /** Runs `work` in a new sampled span and answers its trace id once its spans have arrived. */
  const inSampledTurn = async (work: () => Promise<unknown>): Promise<ReceivedSpan[]> => {
    const traceId = await tracer.startActiveSpan('turn', async (span) => {
      await work();
      span.end();
      return span.spanContext().traceId;
    });
    await receiver.waitFor((spans) => spans.some((s) => s.traceId === traceId && s.name === 'turn'));
    return receiver.spans.filter((s) => s.traceId === traceId && s.name !== 'turn');
  };

  it('is a CLIENT span per command inside a sampled span, with the operation and the server, not the arguments', async () => {
    const spans = await inSampledTurn(async () => {
      await redis.set(key, 'a secret value', 'EX', 60);
      expect(await redis.get(key)).toBe('a secret value');
    });
    const turn = receiver.spans.find((s) => s.traceId === spans[0]?.traceId && s.name === 'turn')!;
    expect(spans.map((s) => s.name)).toEqual(['set', 'get']);
    for (const span of spans) {
      expect(span.kind).toBe(CLIENT);
      expect(span.parentSpanId).toBe(turn.spanId);
      expect(span.attributes).toMatchObject({ 'db.system.name': 'redis', 'server.address': expect.any(String) });
      expect(Number(span.attributes['server.port'])).toBeGreaterThan(0);
      expect(JSON.stringify(span.attributes)).not.toContain('secret');
      expect(JSON.stringify(span.attributes)).not.toContain(key);
    }
    expect(spans.map((s) => s.attributes['db.operation.name'])).toEqual(['SET', 'GET']);
  });

  it("names a pipeline's commands, and marks a failed command as an error while the caller still gets the error", async () => {
    const spans = await inSampledTurn(async () => {
      await redis.pipeline().set(key, '1', 'EX', 60).incr(key).exec();
      await redis.set(key, 'not a number', 'EX', 60);
      await expect(redis.incr(key)).rejects.toThrow(/not an integer/);
    });
    expect(spans.map((s) => s.attributes['db.operation.name'])).toEqual(['PIPELINE SET', 'PIPELINE INCR', 'SET', 'INCR']);
    const failed = spans.at(-1)!;
    expect(failed.statusCode).toBe(STATUS_ERROR);
    expect(failed.attributes).toMatchObject({ 'error.type': 'ERR', 'db.response.status_code': 'ERR' });
    expect(spans.slice(0, -1).every((s) => s.statusCode !== STATUS_ERROR)).toBe(true);
  });

  it('spans a command of a sampled trace whose span has ended', async () => {
    const ended = tracer.startSpan('request');
    ended.end();
    await context.with(trace.setSpan(context.active(), ended), () => redis.get(key));
    const { traceId, spanId } = ended.spanContext();
    await receiver.waitFor((spans) => spans.some((s) => s.traceId === traceId && s.name === 'get'));
    expect(receiver.spans.find((s) => s.traceId === traceId && s.name === 'get')!.parentSpanId).toBe(spanId);
  });

  it('makes no span outside a trace or inside one the sampler dropped', async () => {
    const dropped = trace.setSpan(ROOT_CONTEXT, trace.wrapSpanContext({ traceId: hex(16), spanId: hex(8), traceFlags: TraceFlags.NONE }));
    const droppedTrace = trace.getSpan(dropped)!.spanContext().traceId;
    await context.with(dropped, async () => {
      await redis.set(key, 'x', 'EX', 60);
      await redis.pipeline().get(key).get(key).exec();
    });
    await redis.get(key); // no span active at all
    const later = await inSampledTurn(() => redis.get(key));
    expect(later.map((s) => s.name)).toEqual(['get']);
    // everything the commands above would have made ended before the later trace's spans
    expect(receiver.spans.filter((s) => s.traceId === droppedTrace)).toEqual([]);
    expect(receiver.spans.filter((s) => s.attributes['db.system.name'] === 'redis' && s.parentSpanId === undefined)).toEqual([]);
  });
});
