/**
 * One trace per conversation turn across three processes: gateway → runtime → llm-proxy, with
 * the runtime's database spans, exported over OTLP to a receiver in this test.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { randomBytes, randomUUID } from 'node:crypto';
import { TEST_INTERNAL_KEY } from '@codelab/service-kit/testing';
import { FrameClient } from '../helpers/stack.ts';
import { OtlpReceiver, type ReceivedSpan } from '../helpers/otlp-receiver.ts';
import { startProcess, type RunningProcess } from '../helpers/processes.ts';

const SERVER = 2;
const CLIENT = 3;
const STATUS_ERROR = 2;

describe('distributed tracing of a turn', () => {
  const receiver = new OtlpReceiver();
  const procs: RunningProcess[] = [];
  let gateway: RunningProcess;

  beforeAll(async () => {
    await receiver.start();
    const otel = { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, CODELAB_DATA_DIR: `/tmp/codelab-trace-${randomUUID()}` };
    const llm = await startProcess('llm-proxy', {
      ...otel,
      LLM_PROXY__INTERNAL_API_KEY: TEST_INTERNAL_KEY,
      LLM_PROXY__MOCK_TTFT_MS: '0',
      LLM_PROXY__MOCK_TOKEN_DELAY_MS: '0',
    });
    procs.push(llm);
    const runtime = await startProcess('runtime', {
      ...otel,
      AGENT_RUNTIME__INTERNAL_API_KEY: TEST_INTERNAL_KEY,
      AGENT_RUNTIME__DB_URL: inject('databaseUrl'),
      AGENT_RUNTIME__DB_POOL_SIZE: '2',
      AGENT_RUNTIME__LLM_PROXY_URL: llm.url,
      // with Redis (CI), the frame log's commands are in play: they must not be a span per frame
      ...(inject('redisUrl') ? { AGENT_RUNTIME__REDIS_URL: inject('redisUrl')! } : {}),
    });
    procs.push(runtime);
    gateway = await startProcess('gateway', {
      ...otel,
      GATEWAY__INTERNAL_API_KEY: TEST_INTERNAL_KEY,
      GATEWAY__AGENT_URL: runtime.url,
      GATEWAY__USE_JWT_AUTH: 'false',
    });
    procs.push(gateway);
  }, 90_000);

  afterAll(async () => {
    for (const p of procs.reverse()) expect(await p.stop()).toBe(0);
    await receiver.stop();
  });

  const turn = async (client: FrameClient, frame: Record<string, unknown>): Promise<void> => {
    const from = client.frames.length;
    client.send(frame);
    await client.until((f) => f.is_final === true, from);
  };
  const wsSpans = (): ReceivedSpan[] => receiver.spans.filter((s) => s.service === 'gateway' && s.name === 'ws.message user_message');

  it('chains gateway → runtime → llm-proxy under one trace id, with database spans', async () => {
    const client = new FrameClient(`${gateway.url.replace('http', 'ws')}/api/v1/ws/trace-${randomUUID()}`);
    await client.open();
    const MESSAGE = `trace me ${randomUUID()}`;
    await turn(client, { type: 'user_message', content: MESSAGE, role: 'user' });
    // each process exports on its own schedule: wait until the gateway's message span, the
    // llm-proxy's request span and every span between them have arrived (by condition, not time)
    await receiver.waitFor(() => wsSpans().length === 1);
    const [wsSpan] = wsSpans();
    const traceId = wsSpan!.traceId;
    const llmServerSpan = (): ReceivedSpan | undefined =>
      receiver.spans.find((s) => s.service === 'llm-proxy' && s.kind === SERVER && s.traceId === traceId);
    await receiver.waitFor(() => {
      const span = llmServerSpan();
      return span !== undefined && receiver.ancestry(span).at(-1)!.spanId === wsSpan!.spanId;
    });
    const statements = (): ReceivedSpan[] =>
      receiver.spans.filter((s) => s.service === 'runtime' && s.traceId === traceId && s.name.startsWith('pg.query'));
    // the user's message is stored in the turn's trace
    await receiver.waitFor(() => statements().some((s) => /INSERT INTO messages/.test(String(s.attributes['db.query.text']))));

    const llmServer = llmServerSpan();
    expect(llmServer, 'llm-proxy server span in the turn trace').toBeDefined();
    const chain = receiver.ancestry(llmServer!);
    const services = chain.map((s) => s.service);
    // llm-proxy's request span descends from the runtime's request span, which descends from the gateway's WS message span.
    const runtimeServerIdx = chain.findIndex((s) => s.service === 'runtime' && s.kind === SERVER);
    const wsIdx = chain.findIndex((s) => s.spanId === wsSpan!.spanId);
    expect(runtimeServerIdx, `chain: ${chain.map((s) => `${s.service}:${s.name}`).join(' <- ')}`).toBeGreaterThan(0);
    expect(wsIdx).toBeGreaterThan(runtimeServerIdx);
    // one span per hop and request, named after its route template
    expect(chain[runtimeServerIdx]!.name).toBe('POST /agent/message/stream');
    expect(chain[runtimeServerIdx]!.attributes['http.route']).toBe('/agent/message/stream');
    expect(llmServer!.name).toBe('POST /v1/chat/completions');
    // each hop's request leaves from a CLIENT span named after the peer's route, whose context it carries
    const runtimeClient = chain[1]!;
    expect([runtimeClient.service, runtimeClient.kind, runtimeClient.name]).toEqual(['runtime', CLIENT, 'POST /v1/chat/completions']);
    expect(runtimeClient.attributes['http.response.status_code']).toBe(200);
    expect(runtimeClient.attributes['peer.service']).toBe('llm-proxy');
    const gatewayClient = chain[runtimeServerIdx + 1]!;
    expect([gatewayClient.service, gatewayClient.kind, gatewayClient.name]).toEqual(['gateway', CLIENT, 'POST /agent/message/stream']);
    expect(chain[runtimeServerIdx]!.attributes['http.response.status_code']).toBe(200);
    expect(services.at(-1)).toBe('gateway');
    expect(chain.at(-1)!.spanId).toBe(wsSpan!.spanId); // the WS message span is the root of the turn
    expect(chain.every((s) => s.traceId === traceId)).toBe(true);
    // the runtime's database work belongs to the same trace, under its request span
    const dbSpan = receiver.spans.find((s) => s.service === 'runtime' && s.traceId === traceId && s.name.startsWith('pg.query'));
    expect(dbSpan).toBeDefined();
    expect(dbSpan!.kind).toBe(CLIENT);
    expect(dbSpan!.attributes).toMatchObject({ 'db.system.name': 'postgresql', 'db.client.connection.pool.name': 'runtime' });
    expect(dbSpan!.name).toBe(`pg.query:${dbSpan!.attributes['db.operation.name']} ${dbSpan!.attributes['db.namespace']}`);
    // the statement's text, parameterised: the user's message is never in it
    expect(statements().every((s) => !String(s.attributes['db.query.text']).includes(MESSAGE))).toBe(true);
    expect(receiver.ancestry(dbSpan!).some((s) => s.service === 'runtime' && s.kind === SERVER)).toBe(true);
    // the connection is not one endless span: the message span links to the upgrade request's,
    // which ended with its 101
    expect(wsSpan!.links).toHaveLength(1);
    await receiver.waitFor((spans) => spans.some((s) => s.spanId === wsSpan!.links[0]!.spanId));
    const upgrade = receiver.spans.find((s) => s.spanId === wsSpan!.links[0]!.spanId)!;
    expect([upgrade.service, upgrade.kind, upgrade.name]).toEqual(['gateway', SERVER, 'GET /api/v1/ws/:sessionId']);
    expect(upgrade.attributes['http.response.status_code']).toBe(101);
    client.close();
  });

  it('has a span per hop and per statement, none per token or frame: a 120-token turn has fewer spans than half its tokens', async () => {
    const client = new FrameClient(`${gateway.url.replace('http', 'ws')}/api/v1/ws/trace-${randomUUID()}`);
    await client.open();
    const before = wsSpans().length;
    const from = client.frames.length;
    await turn(client, { type: 'user_message', content: 'count my spans [[mock:words 120]]', role: 'user' });
    // the mock streams a word per token; frames carry one or more of them
    const streamed = client.frames
      .slice(from)
      .filter((f) => typeof f.token === 'string')
      .map((f) => f.token as string);
    const tokens = streamed.join('').trim().split(/\s+/).length;
    expect(tokens).toBeGreaterThanOrEqual(120);
    await receiver.waitFor(() => wsSpans().length > before);
    const traceId = wsSpans()[before]!.traceId;
    // the runtime's request span ends after the turn's last frame went to the log: its spans are in by then
    await receiver.waitFor((spans) => spans.some((s) => s.service === 'runtime' && s.kind === SERVER && s.traceId === traceId));
    const spans = receiver.spans.filter((s) => s.traceId === traceId);
    expect(spans.length, spans.map((s) => `${s.service}:${s.name}`).join(', ')).toBeLessThan(tokens / 2);
    client.close();
  });

  it('starts a new trace per turn, and joins the client trace given in a frame traceparent', async () => {
    const client = new FrameClient(`${gateway.url.replace('http', 'ws')}/api/v1/ws/trace-${randomUUID()}`);
    await client.open();
    const before = wsSpans().length;
    await turn(client, { type: 'user_message', content: 'one' });
    await turn(client, { type: 'user_message', content: 'two' });
    const clientTrace = randomBytes(16).toString('hex');
    const clientSpan = randomBytes(8).toString('hex');
    await turn(client, { type: 'user_message', content: 'three', traceparent: `00-${clientTrace}-${clientSpan}-01` });
    await receiver.waitFor(() => wsSpans().length >= before + 3);
    const [one, two, three] = wsSpans().slice(before);
    expect(one!.traceId).not.toBe(two!.traceId);
    expect(three!.traceId).toBe(clientTrace);
    expect(three!.parentSpanId).toBe(clientSpan);
    await receiver.waitFor((spans) => spans.some((s) => s.service === 'llm-proxy' && s.traceId === clientTrace));
    client.close();
  });

  it('joins the trace of a traceparent header on the WebSocket handshake', async () => {
    const handshakeTrace = randomBytes(16).toString('hex');
    const handshakeSpan = randomBytes(8).toString('hex');
    const client = new FrameClient(`${gateway.url.replace('http', 'ws')}/api/v1/ws/trace-${randomUUID()}`, {
      traceparent: `00-${handshakeTrace}-${handshakeSpan}-01`,
    });
    await client.open();
    await turn(client, { type: 'user_message', content: 'handshake context' });
    // each process exports on its own schedule: wait for the gateway's span too, not only the llm-proxy's
    await receiver.waitFor((spans) => spans.some((s) => s.service === 'llm-proxy' && s.traceId === handshakeTrace));
    await receiver.waitFor(() => wsSpans().some((s) => s.traceId === handshakeTrace));
    const ws = wsSpans().find((s) => s.traceId === handshakeTrace)!;
    expect(ws.parentSpanId).toBe(handshakeSpan);
    client.close();
  });

  it('traces a REST call per hop: server spans named after their routes, in the caller trace, with their status; no probe spans', async () => {
    const traceId = randomBytes(16).toString('hex');
    const callerSpan = randomBytes(8).toString('hex');
    const headers = { traceparent: `00-${traceId}-${callerSpan}-01`, 'content-type': 'application/json' };
    // probes and scrapes are not traced
    expect((await fetch(`${gateway.url}/metrics`)).status).toBe(200);
    expect((await fetch(`${gateway.url}/health`)).status).toBe(200);
    const created = await fetch(`${gateway.url}/api/v1/sessions`, { method: 'POST', headers, body: '{}' });
    expect(created.status).toBe(201);
    const missing = await fetch(`${gateway.url}/api/v1/sessions/no-such-session-${randomUUID()}`, { headers });
    expect(missing.status).toBe(404);

    const inTrace = (): ReceivedSpan[] => receiver.spans.filter((s) => s.traceId === traceId);
    await receiver.waitFor(() => inTrace().filter((s) => s.kind === SERVER).length === 4); // 2 gateway + 2 runtime
    const server = (service: string, name: string): ReceivedSpan => {
      const span = inTrace().find((s) => s.service === service && s.kind === SERVER && s.name === name);
      expect(
        span,
        `${service} ${name} among ${inTrace()
          .map((s) => `${s.service}:${s.name}`)
          .join(', ')}`,
      ).toBeDefined();
      return span!;
    };
    const create = server('gateway', 'POST /api/v1/sessions');
    expect(create.parentSpanId).toBe(callerSpan);
    expect(create.attributes).toMatchObject({
      'http.route': '/api/v1/sessions',
      'http.request.method': 'POST',
      'http.response.status_code': 201,
    });
    const createClient = inTrace().find((s) => s.parentSpanId === create.spanId && s.kind === CLIENT)!;
    expect(createClient.name).toBe('POST /sessions');
    expect(server('runtime', 'POST /sessions').parentSpanId).toBe(createClient.spanId);

    const get = server('gateway', 'GET /api/v1/sessions/:sessionId');
    expect(get.attributes['http.response.status_code']).toBe(404);
    expect(get.attributes['url.path']).toMatch(/^\/api\/v1\/sessions\/no-such-session-/);
    expect(get.statusCode, 'a 4xx is the caller’s error, not the server’s').not.toBe(STATUS_ERROR);
    const getClient = inTrace().find((s) => s.parentSpanId === get.spanId && s.kind === CLIENT)!;
    expect(getClient.attributes['http.response.status_code']).toBe(404);
    expect(getClient.statusCode, 'a 4xx answer is an error of the client span').toBe(STATUS_ERROR);
    expect(server('runtime', 'GET /sessions/:sessionId').parentSpanId).toBe(getClient.spanId);

    expect(receiver.spans.filter((s) => /\/(metrics|health|ready)$/.test(s.name)).map((s) => `${s.service}:${s.name}`)).toEqual([]);
    // the request's one log line, written after its response left, carries its trace id
    const lines = gateway
      .output()
      .split('\n')
      .filter((l) => l.includes(traceId))
      .map((l) => JSON.parse(l) as { msg?: string; span_id?: string; res?: { statusCode?: number } });
    expect(lines.filter((l) => l.msg === 'request completed').map((l) => [l.res?.statusCode, l.span_id])).toEqual(
      expect.arrayContaining([
        [201, create.spanId],
        [404, get.spanId],
      ]),
    );
  });

  it('flushes the spans of the last turn when the processes stop', async () => {
    const client = new FrameClient(`${gateway.url.replace('http', 'ws')}/api/v1/ws/trace-${randomUUID()}`);
    await client.open();
    const clientTrace = randomBytes(16).toString('hex');
    await turn(client, {
      type: 'user_message',
      content: 'last words',
      traceparent: `00-${clientTrace}-${randomBytes(8).toString('hex')}-01`,
    });
    client.close();
    // stop at once: the batch processor has not exported yet, shutdown must flush it
    for (const p of procs.splice(0).reverse()) expect(await p.stop()).toBe(0);
    const services = new Set(receiver.spans.filter((s) => s.traceId === clientTrace).map((s) => s.service));
    expect([...services].sort()).toEqual(['gateway', 'llm-proxy', 'runtime']);
  });
});
