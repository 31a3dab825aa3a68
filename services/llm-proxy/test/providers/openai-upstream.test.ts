/**
 * Upstream mode against a second llm-proxy in mock mode, over real HTTP: pass-through for the SDK,
 * retries, fallbacks, the circuit breaker, every timeout, the queue, and client disconnects. What
 * the upstream saw is read from its own metrics.
 */
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import OpenAI from 'openai';
import { parseSse, PeerClient, ServiceMetrics } from '@codelab/service-kit';
import { freePort, TEST_INTERNAL_KEY } from '@codelab/service-kit/testing';
import { chat, startProxy, until, user, type RunningProxy } from '../helpers.ts';

let upstream: RunningProxy;
const proxies: RunningProxy[] = [];

beforeAll(async () => {
  upstream = await startProxy();
});
afterAll(() => upstream.close());
afterEach(async () => {
  await Promise.all(proxies.splice(0).map((p) => p.close()));
});

async function startFront(env: Record<string, string> = {}, upstreamUrl = upstream.url): Promise<{ proxy: RunningProxy; sdk: OpenAI }> {
  const proxy = await startProxy({
    LLM_PROXY__LLM_MODE: 'openai',
    LLM_PROXY__LITELLM_PROXY_URL: upstreamUrl,
    LLM_PROXY__LITELLM_API_KEY: TEST_INTERNAL_KEY,
    LLM_PROXY__RETRY_BASE_DELAY_MS: '5',
    ...env,
  });
  proxies.push(proxy);
  return { proxy, sdk: new OpenAI({ apiKey: TEST_INTERNAL_KEY, baseURL: `${proxy.url}/v1`, maxRetries: 0 }) };
}

/** Upstream requests with this outcome so far (its own llm_proxy_requests_total). */
const seen = (outcome: string, labels: Record<string, string> = {}) => upstream.metric('llm_proxy_requests_total', { outcome, ...labels });

async function sseEvents(res: Response): Promise<string[]> {
  const out: string[] = [];
  for await (const ev of parseSse(res.body as unknown as AsyncIterable<Uint8Array>)) out.push(ev.data);
  return out;
}

describe('upstream mode (openai provider) in front of a mock llm-proxy', () => {
  it('passes streamed text, tool-call deltas and usage through unchanged for the SDK', async () => {
    const { sdk, proxy } = await startFront({ LLM_PROXY__LLM_MODE: 'litellm' });
    const direct = new OpenAI({ apiKey: TEST_INTERNAL_KEY, baseURL: `${upstream.url}/v1`, maxRetries: 0 });
    const messages = user('What is a monad?');
    const collect = async (c: OpenAI) => {
      let text = '';
      let usage: OpenAI.CompletionUsage | undefined;
      for await (const ch of await c.chat.completions.create({
        model: 'fake-llm',
        messages,
        stream: true,
        stream_options: { include_usage: true },
      })) {
        text += ch.choices[0]?.delta.content ?? '';
        if (ch.usage) usage = ch.usage;
      }
      return { text, usage };
    };
    expect(await collect(sdk)).toEqual(await collect(direct));
    const final = await sdk.chat.completions
      .stream({ model: 'fake-llm', messages: user('[[mock:tool_call read_file {"path":"a/b/c.py"}]]') })
      .finalChatCompletion();
    expect(final.choices[0]!.finish_reason).toBe('tool_calls');
    const call = final.choices[0]!.message.tool_calls![0]!;
    expect(call.type === 'function' && JSON.parse(call.function.arguments)).toEqual({ path: 'a/b/c.py' });
    const plain = await sdk.chat.completions.create({ model: 'fake-llm', messages });
    expect(plain.choices[0]!.message.content).toBe((await collect(direct)).text);
    expect(plain.usage!.completion_tokens).toBeGreaterThan(20);
    expect(await proxy.metric('gen_ai_client_operation_time_to_first_chunk_seconds_count', { provider: 'openai' })).toBeGreaterThan(0);
    expect(await proxy.metric('llm_proxy_overhead_seconds_count', { provider: 'openai' })).toBeGreaterThan(0);
    // forwarded streams still yield their usage and one time-per-output-token observation each
    expect(await proxy.metric('gen_ai_client_token_usage_count', { provider: 'openai', token_type: 'output' })).toBe(3);
    expect(await proxy.metric('gen_ai_server_time_per_output_token_seconds_count', { provider: 'openai' })).toBe(2);
  });

  it('renames the upstream model to the public one in forwarded chunks, and keeps usage out unless asked', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'llmp-'));
    const file = path.join(dir, 'models.json');
    await writeFile(file, JSON.stringify({ models: { 'public-name': { upstream: 'mock-llm' } } }));
    const { proxy } = await startFront({ LLM_PROXY__MODEL_MAP_FILE: file });
    for (const includeUsage of [false, true]) {
      const res = await chat(proxy.url, {
        model: 'public-name',
        stream: true,
        ...(includeUsage ? { stream_options: { include_usage: true } } : {}),
        messages: user('[[mock:words 40]]'),
      });
      const events = await sseEvents(res);
      expect(events.at(-1)).toBe('[DONE]');
      const chunks = events
        .slice(0, -1)
        .map((e) => JSON.parse(e) as { model: string; usage?: unknown; choices: { delta: { content?: string } }[] });
      expect(new Set(chunks.map((c) => c.model))).toEqual(new Set(['public-name']));
      expect(chunks.map((c) => c.choices[0]?.delta.content ?? '').join('')).toBe(Array.from({ length: 40 }, (_, i) => `w${i}`).join(' '));
      expect(chunks.some((c) => c.usage)).toBe(includeUsage);
    }
  });

  it('retries 5xx before the first byte, and the upstream counts every attempt', async () => {
    const { sdk, proxy } = await startFront({ LLM_PROXY__MAX_RETRIES: '2', LLM_PROXY__RETRY_MAX_DELAY_MS: '50' });
    const before = await seen('upstream_unavailable');
    const c = await sdk.chat.completions.create({ model: 'fake-llm', messages: user('retry me [[mock:error 503 2]]') });
    expect(c.choices[0]!.message.content).toContain('Mock answer');
    expect((await seen('upstream_unavailable')) - before).toBe(2);
    expect(await proxy.metric('llm_proxy_upstream_retries_total', { upstream: 'fake-llm' })).toBe(2);
  });

  it('gives up after the retries with the upstream status, and never retries a 400', async () => {
    const { sdk, proxy } = await startFront({ LLM_PROXY__MAX_RETRIES: '1', LLM_PROXY__BREAKER_FAILURE_THRESHOLD: '100' });
    const before = await seen('upstream_timeout');
    const err = await sdk.chat.completions.create({ model: 'fake-llm', messages: user('[[mock:error 504]]') }).catch((e: unknown) => e);
    expect((err as InstanceType<typeof OpenAI.APIError>).status).toBe(504);
    expect((await seen('upstream_timeout')) - before).toBe(2);
    const bad = await seen('invalid_request');
    const err400 = await sdk.chat.completions.create({ model: 'fake-llm', messages: user('[[mock:error 400]]') }).catch((e: unknown) => e);
    expect(err400).toBeInstanceOf(OpenAI.BadRequestError);
    expect((await seen('invalid_request')) - bad).toBe(1);
    expect(await proxy.metric('llm_proxy_upstream_retries_total')).toBe(1);
  });

  it('retries 429 honouring Retry-After within the maximum delay', async () => {
    const { sdk } = await startFront({ LLM_PROXY__RETRY_MAX_DELAY_MS: '1500' });
    const started = performance.now();
    const c = await sdk.chat.completions.create({ model: 'fake-llm', messages: user('slow down [[mock:error 429 1]]') });
    expect(c.choices[0]!.message.content).toBeTruthy();
    expect(performance.now() - started).toBeGreaterThanOrEqual(900);
  });

  it('retries connect errors, then answers 503 upstream_unavailable', async () => {
    const port = await freePort();
    const { sdk, proxy } = await startFront({ LLM_PROXY__MAX_RETRIES: '2' }, `http://127.0.0.1:${port}`);
    const err = await sdk.chat.completions.create({ model: 'fake-llm', messages: user('hi') }).catch((e: unknown) => e);
    expect((err as InstanceType<typeof OpenAI.APIError>).status).toBe(503);
    expect((err as InstanceType<typeof OpenAI.APIError>).code).toBe('upstream_unavailable');
    expect(await proxy.metric('llm_proxy_upstream_retries_total', { reason: 'connect_error' })).toBe(2);
  });

  it('falls back to the next upstream model of the model map', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'llmp-'));
    const file = path.join(dir, 'models.json');
    await writeFile(file, JSON.stringify({ models: { smart: { upstream: 'fake-llm', fallbacks: ['mock-llm'] } } }));
    const { sdk, proxy } = await startFront({ LLM_PROXY__MODEL_MAP_FILE: file, LLM_PROXY__MAX_RETRIES: '1' });
    expect((await sdk.models.list()).data.map((m) => m.id)).toEqual(['smart']);
    const okBefore = await seen('ok', { model: 'mock-llm' });
    const c = await sdk.chat.completions.create({ model: 'smart', messages: user('fallback please [[mock:error 503 model=fake-llm]]') });
    expect(c.model).toBe('smart');
    expect(c.choices[0]!.message.content).toContain('Mock answer');
    expect((await seen('ok', { model: 'mock-llm' })) - okBefore).toBe(1);
    expect(await proxy.metric('llm_proxy_upstream_fallbacks_total', { upstream: 'fake-llm' })).toBe(1);
    expect(await proxy.metric('llm_proxy_requests_total', { model: 'smart', outcome: 'ok' })).toBe(1);
    const notServed = await sdk.chat.completions.create({ model: 'fake-llm', messages: user('x') }).catch((e: unknown) => e);
    expect(notServed).toBeInstanceOf(OpenAI.NotFoundError);
  });

  it('opens the breaker after the configured failures, lets one probe through half-open, and closes on its success', async () => {
    // the probe is held at its upstream until the test has seen other calls refused meanwhile
    let reached!: () => void;
    const probeReached = new Promise<void>((r) => (reached = r));
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const gated = await startProxy(
      {},
      {
        beforeListen: (app) =>
          app.addHook('preHandler', async (req) => {
            if (!JSON.stringify(req.body ?? '').includes('probe')) return;
            reached();
            await gate;
          }),
      },
    );
    proxies.push(gated);
    const { sdk, proxy } = await startFront(
      // open for 2 s: the refused call below must come within it (a local call; 0.3 s was a pace assumption)
      { LLM_PROXY__MAX_RETRIES: '0', LLM_PROXY__BREAKER_FAILURE_THRESHOLD: '3', LLM_PROXY__BREAKER_RESET_TIMEOUT: '2' },
      gated.url,
    );
    const state = () => proxy.metric('llm_proxy_circuit_breaker_state', { upstream: 'fake-llm' });
    const gatedSeen = (outcome: string) => gated.metric('llm_proxy_requests_total', { outcome });
    const failing = user('boom [[mock:error 500]]');
    for (let i = 0; i < 3; i++) {
      const err = await sdk.chat.completions.create({ model: 'fake-llm', messages: failing }).catch((e: unknown) => e);
      expect((err as InstanceType<typeof OpenAI.APIError>).status).toBe(502);
    }
    expect(await state()).toBe(2);
    const refused = await chat(proxy.url, { messages: user('hello') });
    expect(refused.status).toBe(503);
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(await refused.json()).toMatchObject({ error: { code: 'upstream_unavailable' } });
    expect(await gatedSeen('internal_error')).toBe(3);

    // the reset timeout is a lower bound: waiting longer changes nothing
    await new Promise((r) => setTimeout(r, 2050));
    const probe = sdk.chat.completions.create({ model: 'fake-llm', messages: user('probe') });
    await probeReached;
    expect(await state()).toBe(1);
    const others = await Promise.all([1, 2, 3].map(() => chat(proxy.url, { messages: user('not now') })));
    expect(others.map((r) => r.status)).toEqual([503, 503, 503]);
    expect(await gatedSeen('ok')).toBe(0);
    release();
    expect((await probe).choices[0]!.message.content).toBeTruthy();
    await until(async () => (await gatedSeen('ok')) === 1);
    expect(await state()).toBe(0);
    expect(
      (await sdk.chat.completions.create({ model: 'fake-llm', messages: user('closed again') })).choices[0]!.message.content,
    ).toBeTruthy();
  });

  it('reopens the breaker when the half-open probe fails', async () => {
    const { sdk, proxy } = await startFront({
      LLM_PROXY__MAX_RETRIES: '0',
      LLM_PROXY__BREAKER_FAILURE_THRESHOLD: '1',
      LLM_PROXY__BREAKER_RESET_TIMEOUT: '0.1',
    });
    await sdk.chat.completions.create({ model: 'fake-llm', messages: user('[[mock:error 502]]') }).catch(() => undefined);
    await new Promise((r) => setTimeout(r, 150));
    await sdk.chat.completions.create({ model: 'fake-llm', messages: user('[[mock:error 502]]') }).catch(() => undefined);
    expect(await proxy.metric('llm_proxy_circuit_breaker_state', { upstream: 'fake-llm' })).toBe(2);
  });

  it('answers 504 when the first token does not come in time, and the upstream sees the disconnect', async () => {
    const { sdk } = await startFront({ LLM_PROXY__FIRST_TOKEN_TIMEOUT: '0.2' });
    const before = await seen('client_disconnected');
    const started = performance.now();
    const err = await sdk.chat.completions
      .create({ model: 'fake-llm', messages: user('[[mock:stall 3000]]'), stream: true })
      .catch((e: unknown) => e);
    expect((err as InstanceType<typeof OpenAI.APIError>).status).toBe(504);
    expect((err as InstanceType<typeof OpenAI.APIError>).code).toBe('upstream_timeout');
    expect(performance.now() - started).toBeLessThan(1500);
    await until(async () => (await seen('client_disconnected')) > before);
  });

  it('ends the stream with an error event when the upstream goes silent between chunks (idle timeout)', async () => {
    const { proxy } = await startFront({ LLM_PROXY__IDLE_TIMEOUT: '0.2' });
    const res = await chat(proxy.url, { stream: true, messages: user('[[mock:stall_after 3 3000]]') });
    expect(res.status).toBe(200);
    const events = await sseEvents(res);
    expect(events).not.toContain('[DONE]');
    expect(JSON.parse(events.at(-1)!)).toMatchObject({ error: { code: 'upstream_timeout' } });
  });

  it('bounds the whole request (request timeout): 504 before the first byte, an error event after', async () => {
    const { proxy, sdk } = await startFront({ LLM_PROXY__REQUEST_TIMEOUT: '0.3' });
    const err = await sdk.chat.completions
      .create({ model: 'fake-llm', messages: user('[[mock:words 40]][[mock:token_delay 20]]') })
      .catch((e: unknown) => e);
    expect((err as InstanceType<typeof OpenAI.APIError>).status).toBe(504);
    const res = await chat(proxy.url, { stream: true, messages: user('[[mock:words 40]][[mock:token_delay 20]]') });
    const events = await sseEvents(res);
    expect(events.length).toBeGreaterThan(3);
    expect(JSON.parse(events.at(-1)!)).toMatchObject({ error: { code: 'upstream_timeout' } });
  });

  it('turns an upstream that drops the connection mid-stream into an error event, never [DONE]', async () => {
    const { proxy } = await startFront();
    const events = await sseEvents(await chat(proxy.url, { stream: true, messages: user('hello [[mock:disconnect_after 4]]') }));
    expect(events).not.toContain('[DONE]');
    expect(JSON.parse(events.at(-1)!)).toMatchObject({ error: { code: 'upstream_error' } });
  });

  it('queues over the concurrency limit: 429 with Retry-After when the queue is full, 503 after waiting too long', async () => {
    const { proxy } = await startFront({
      LLM_PROXY__MAX_CONCURRENT_REQUESTS: '1',
      LLM_PROXY__MAX_QUEUED_REQUESTS: '1',
      LLM_PROXY__QUEUE_TIMEOUT: '0.3',
    });
    const running = chat(proxy.url, { messages: user('[[mock:ttft 800]]') });
    await until(async () => (await proxy.metric('llm_proxy_inflight_requests')) === 1);
    const queued = chat(proxy.url, { messages: user('second') });
    await until(async () => (await proxy.metric('llm_proxy_queued_requests')) === 1);
    const overflow = await chat(proxy.url, { messages: user('third') });
    expect(overflow.status).toBe(429);
    expect(overflow.headers.get('retry-after')).toBe('1');
    expect(await overflow.json()).toMatchObject({ error: { code: 'proxy_overloaded', type: 'rate_limit_error' } });
    const waited = await queued;
    expect(waited.status).toBe(503);
    expect(await waited.json()).toMatchObject({ error: { code: 'queue_timeout' } });
    expect((await running).status).toBe(200);
    expect(await proxy.metric('llm_proxy_queued_requests')).toBe(0);
  });

  it('aborts the upstream request at once when the client disconnects', async () => {
    const { proxy } = await startFront();
    const before = await seen('client_disconnected');
    const ac = new AbortController();
    const res = await chat(proxy.url, { stream: true, messages: user('[[mock:words 500]][[mock:token_delay 20]]') }, { signal: ac.signal });
    const reader = res.body!.getReader();
    await reader.read();
    ac.abort();
    const aborted = performance.now();
    await until(async () => (await seen('client_disconnected')) > before, 2000);
    expect(performance.now() - aborted).toBeLessThan(500);
    await until(async () => (await proxy.metric('llm_proxy_requests_total', { outcome: 'client_disconnected' })) === 1);
    expect(await proxy.metric('llm_proxy_inflight_requests')).toBe(0);
  });

  it('aborts the upstream request when a client over h2c (the runtime) leaves its stream', async () => {
    const { proxy } = await startFront();
    const before = await seen('client_disconnected');
    const client = new PeerClient({
      peer: 'llm-proxy',
      baseUrl: proxy.url,
      internalApiKey: TEST_INTERNAL_KEY,
      metrics: new ServiceMetrics('h2c-caller'),
      h2cStreams: 8,
    });
    const ac = new AbortController();
    const res = await client.request({
      method: 'POST',
      path: '/v1/chat/completions',
      route: '/v1/chat/completions',
      body: { model: 'fake-llm', stream: true, messages: user('[[mock:words 500]][[mock:token_delay 20]]') },
      signal: ac.signal,
    });
    expect(res.statusCode).toBe(200);
    const reader = res.body[Symbol.asyncIterator]();
    await reader.next();
    ac.abort();
    await until(async () => (await seen('client_disconnected')) > before, 10_000);
    await until(async () => (await proxy.metric('llm_proxy_requests_total', { outcome: 'client_disconnected' })) === 1, 10_000);
    expect(await proxy.metric('llm_proxy_inflight_requests')).toBe(0);
    await client.close();
  });
});
