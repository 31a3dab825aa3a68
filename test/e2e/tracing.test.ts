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
    await turn(client, { type: 'user_message', content: 'trace me', role: 'user' });
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
    await receiver.waitFor((spans) => spans.some((s) => s.service === 'runtime' && s.traceId === traceId && s.name.startsWith('pg')));

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
    expect(services.at(-1)).toBe('gateway');
    expect(chain.at(-1)!.spanId).toBe(wsSpan!.spanId); // the WS message span is the root of the turn
    expect(chain.every((s) => s.traceId === traceId)).toBe(true);
    // the runtime's database work belongs to the same trace, under its request span
    const dbSpan = receiver.spans.find((s) => s.service === 'runtime' && s.traceId === traceId && s.name.startsWith('pg.query'));
    expect(dbSpan).toBeDefined();
    expect(receiver.ancestry(dbSpan!).some((s) => s.service === 'runtime' && s.kind === SERVER)).toBe(true);
    // the connection is not one endless span: the message span only links to the upgrade request
    expect(wsSpan!.links.length).toBeLessThanOrEqual(1);
    client.close();
  });

  it('has a span per hop and per statement, none per token: a 120-token turn has fewer spans than half its tokens', async () => {
    const client = new FrameClient(`${gateway.url.replace('http', 'ws')}/api/v1/ws/trace-${randomUUID()}`);
    await client.open();
    const before = wsSpans().length;
    const from = client.frames.length;
    await turn(client, { type: 'user_message', content: 'count my spans [[mock:words 120]]', role: 'user' });
    const tokens = client.frames.slice(from).filter((f) => typeof f.token === 'string').length;
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
