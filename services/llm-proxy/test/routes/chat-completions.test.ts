/** The llm-proxy (mock mode) driven by the official `openai` SDK, unchanged, over real HTTP. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import OpenAI from 'openai';
import { parseSse } from '@codelab/service-kit';
import { TEST_INTERNAL_KEY } from '@codelab/service-kit/testing';
import { mockReply, tokenize } from '../../src/mock-llm.ts';
import { chat, startProxy, user, type RunningProxy } from '../helpers.ts';

describe('POST /v1/chat/completions', () => {
  let proxy: RunningProxy;
  let client: OpenAI;
  let baseUrl: string;

  beforeAll(async () => {
    proxy = await startProxy();
    baseUrl = proxy.url;
    client = new OpenAI({ apiKey: TEST_INTERNAL_KEY, baseURL: `${baseUrl}/v1`, maxRetries: 0 });
  });
  afterAll(() => proxy.close());

  const messages = [{ role: 'user' as const, content: 'How do I reverse a list in Python?' }];
  const tools: OpenAI.ChatCompletionTool[] = [
    {
      type: 'function',
      function: { name: 'read_file', description: 'Read a file', parameters: { type: 'object', properties: { path: { type: 'string' } } } },
    },
  ];

  it('streams a deterministic answer of at least 20 tokens, then finish_reason stop and usage', async () => {
    const stream = await client.chat.completions.create({
      model: 'fake-llm',
      messages,
      stream: true,
      stream_options: { include_usage: true },
    });
    const tokens: string[] = [];
    let finish: string | null = null;
    let usage: OpenAI.CompletionUsage | undefined;
    for await (const chunk of stream) {
      const choice = chunk.choices[0];
      if (choice?.delta.content) tokens.push(choice.delta.content);
      if (choice?.finish_reason) finish = choice.finish_reason;
      if (chunk.usage) usage = chunk.usage;
    }
    expect(tokens.length).toBeGreaterThanOrEqual(20);
    expect(tokens.join('')).toBe(mockReply(messages));
    expect(finish).toBe('stop');
    expect(usage).toMatchObject({ completion_tokens: tokens.length });
    expect(usage!.total_tokens).toBe(usage!.prompt_tokens + usage!.completion_tokens);
  });

  it('sends no usage chunk unless stream_options.include_usage asks for it', async () => {
    const stream = await client.chat.completions.create({ model: 'fake-llm', messages, stream: true });
    for await (const chunk of stream) expect(chunk.usage ?? undefined).toBeUndefined();
  });

  it('answers the same text without streaming', async () => {
    const completion = await client.chat.completions.create({ model: 'fake-llm', messages });
    expect(completion.choices[0]!.message.content).toBe(mockReply(messages));
    expect(completion.choices[0]!.finish_reason).toBe('stop');
    expect(completion.usage!.completion_tokens).toBe(tokenize(mockReply(messages)).length);
  });

  it('answers differently to a different question, and the same to the same one', async () => {
    const a = await client.chat.completions.create({ model: 'fake-llm', messages: [{ role: 'user', content: 'alpha' }] });
    const b = await client.chat.completions.create({ model: 'fake-llm', messages: [{ role: 'user', content: 'beta' }] });
    const a2 = await client.chat.completions.create({ model: 'fake-llm', messages: [{ role: 'user', content: 'alpha' }] });
    expect(a.choices[0]!.message.content).not.toBe(b.choices[0]!.message.content);
    expect(a2.choices[0]!.message.content).toBe(a.choices[0]!.message.content);
  });

  it('streams tool calls in pieces that the SDK assembles (finish_reason tool_calls)', async () => {
    const content = 'Open it [[mock:tool_call read_file {"path":"src/a_rather_long_name.py"}]] [[mock:tool_call list_dir {"dir":"."}]]';
    const runner = client.chat.completions.stream({ model: 'fake-llm', messages: [{ role: 'user', content }], tools, tool_choice: 'auto' });
    let argumentDeltas = 0;
    runner.on('chunk', (c) => {
      if (c.choices[0]?.delta.tool_calls?.[0]?.function?.arguments) argumentDeltas++;
    });
    const final = await runner.finalChatCompletion();
    const calls = final.choices[0]!.message.tool_calls!;
    expect(final.choices[0]!.finish_reason).toBe('tool_calls');
    expect(calls.map((c) => c.type === 'function' && [c.function.name, JSON.parse(c.function.arguments)])).toEqual([
      ['read_file', { path: 'src/a_rather_long_name.py' }],
      ['list_dir', { dir: '.' }],
    ]);
    expect(calls[0]!.id).toMatch(/^call_/);
    expect(argumentDeltas).toBeGreaterThan(2);
  });

  it('returns assembled tool calls without streaming', async () => {
    const completion = await client.chat.completions.create({
      model: 'fake-llm',
      messages: user('[[mock:tool_call read_file {"path":"a.py"}]]'),
      tools,
    });
    const call = completion.choices[0]!.message.tool_calls![0]!;
    expect(completion.choices[0]!.finish_reason).toBe('tool_calls');
    expect(call.type === 'function' && call.function).toEqual({ name: 'read_file', arguments: '{"path":"a.py"}' });
  });

  it('stops at max_tokens with finish_reason length', async () => {
    const completion = await client.chat.completions.create({ model: 'fake-llm', messages, max_tokens: 5 });
    expect(completion.choices[0]!.finish_reason).toBe('length');
    expect(completion.usage!.completion_tokens).toBe(5);
  });

  it('answers the routing classifier with valid JSON chosen by whole-word keywords', async () => {
    const ask = async (msg: string) => {
      const c = await client.chat.completions.create({
        model: 'fake-llm',
        temperature: 0.3,
        messages: [
          { role: 'system', content: 'You are a task classifier. Respond only with JSON.' },
          {
            role: 'user',
            content: `Classify the task. Agents: coder (write code, fix bugs), architect (design), debug, ask.\nUser message: ${msg}\nAnswer {"agent","confidence","reasoning"}`,
          },
        ],
      });
      return JSON.parse(c.choices[0]!.message.content!) as { agent: string; confidence: string; reasoning: string };
    };
    expect(await ask('Please design the architecture')).toMatchObject({ agent: 'architect', confidence: 'high' });
    expect(await ask('why does it crash?')).toMatchObject({ agent: 'debug' });
    expect(await ask('explain closures')).toMatchObject({ agent: 'ask' });
    expect(await ask('add a prefix to the specific names')).toMatchObject({ agent: 'coder', confidence: 'low' });
  });

  it('maps injected error statuses to the SDK exception classes, with Retry-After on 429/503', async () => {
    const cases: [number, unknown][] = [
      [400, OpenAI.BadRequestError],
      [401, OpenAI.AuthenticationError],
      [404, OpenAI.NotFoundError],
      [429, OpenAI.RateLimitError],
      [500, OpenAI.InternalServerError],
      [502, OpenAI.InternalServerError],
      [503, OpenAI.InternalServerError],
      [504, OpenAI.InternalServerError],
    ];
    for (const [status, cls] of cases) {
      for (const stream of [false, true]) {
        const err = await client.chat.completions
          .create({ model: 'fake-llm', messages: user(`[[mock:error ${status}]]`), stream })
          .catch((e: unknown) => e);
        expect(err, `${status} stream=${stream}`).toBeInstanceOf(cls);
        expect((err as InstanceType<typeof OpenAI.APIError>).status).toBe(status);
      }
    }
    const res = await chat(baseUrl, { messages: user('[[mock:error 503]]') });
    expect(res.headers.get('retry-after')).toBe('1');
    expect(await res.json()).toMatchObject({ error: { code: 'upstream_unavailable', type: 'server_error' } });
  });

  it('ends a stream that fails after it started with an error event and no [DONE]', async () => {
    const res = await chat(baseUrl, { stream: true, messages: user('hello [[mock:error_after 3 502]]') });
    expect(res.status).toBe(200);
    const events = [];
    for await (const ev of parseSse(res.body as unknown as AsyncIterable<Uint8Array>)) events.push(ev.data);
    expect(events.at(-1)).not.toBe('[DONE]');
    expect(JSON.parse(events.at(-1)!)).toMatchObject({ error: { code: 'upstream_error', type: 'server_error' } });
    const tokens = events
      .slice(0, -1)
      .map((d) => JSON.parse(d) as { choices: { delta: { content?: string } }[] })
      .filter((c) => c.choices[0]?.delta.content);
    expect(tokens).toHaveLength(3);
    const sdkErr = await (async () => {
      for await (const _ of await client.chat.completions.create({
        model: 'fake-llm',
        messages: user('x [[mock:error_after 1]]'),
        stream: true,
      }))
        void _;
    })().catch((e: unknown) => e);
    expect(sdkErr).toBeInstanceOf(OpenAI.APIError);
  });

  it('applies a per-request latency profile from the x-mock header', async () => {
    const started = performance.now();
    await client.chat.completions.create(
      { model: 'fake-llm', messages: user('hi') },
      { headers: { 'x-mock': '[[mock:ttft 150]][[mock:words 3]]' } },
    );
    expect(performance.now() - started).toBeGreaterThanOrEqual(140);
  });

  it('rejects a malformed directive with 400', async () => {
    const err = await client.chat.completions.create({ model: 'fake-llm', messages: user('[[mock:error abc]]') }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
  });

  it('rejects a wrong key with 401 AuthenticationError', async () => {
    const bad = new OpenAI({ apiKey: 'wrong-key', baseURL: `${baseUrl}/v1`, maxRetries: 0 });
    await expect(bad.chat.completions.create({ model: 'fake-llm', messages })).rejects.toBeInstanceOf(OpenAI.AuthenticationError);
  });

  it('answers an unknown model with 404 model_not_found', async () => {
    const err = await client.chat.completions.create({ model: 'gpt-99', messages }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.NotFoundError);
    expect((err as InstanceType<typeof OpenAI.NotFoundError>).code).toBe('model_not_found');
  });

  it('answers an invalid body with 400 and an OpenAI error object, never 200', async () => {
    for (const body of [
      {},
      { model: 'fake-llm', messages: [] },
      { model: 'fake-llm', messages: [{ role: 'robot', content: 'x' }] },
      { model: 'fake-llm', messages, temperature: 9 },
    ]) {
      const res = await fetch(`${baseUrl}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${TEST_INTERNAL_KEY}` },
        body: JSON.stringify(body),
      });
      expect(res.status).toBe(400);
      expect(await res.json()).toMatchObject({
        error: { type: 'invalid_request_error', code: 'invalid_request', message: expect.any(String) },
      });
    }
    const notJson = await fetch(`${baseUrl}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-internal-auth': TEST_INTERNAL_KEY },
      body: '{oops',
    });
    expect(notJson.status).toBe(400);
    expect(await notJson.json()).toMatchObject({ error: { type: 'invalid_request_error' } });
  });

  it("lists models in the OpenAI shape and in upstream's /v1/llm/models shape", async () => {
    const list = await client.models.list();
    expect(list.data.map((m) => m.id)).toEqual(['fake-llm', 'mock-llm']);
    const upstream = await fetch(`${baseUrl}/v1/llm/models`);
    expect(upstream.status).toBe(200);
    expect(((await upstream.json()) as { id: string }[]).map((m) => m.id)).toEqual(['fake-llm', 'mock-llm']);
  });

  it('records time to first token, token usage and requests by bounded model label', async () => {
    expect(await proxy.metric('gen_ai_server_time_to_first_token_seconds_count', { model: 'fake-llm', provider: 'mock' })).toBeGreaterThan(
      0,
    );
    expect(await proxy.metric('gen_ai_client_token_usage_count', { model: 'fake-llm', token_type: 'output' })).toBeGreaterThan(0);
    expect(
      await proxy.metric('llm_proxy_requests_total', { model: 'fake-llm', provider: 'mock', stream: 'true', outcome: 'ok' }),
    ).toBeGreaterThan(0);
    expect(await proxy.metric('llm_proxy_requests_total', { outcome: 'upstream_unavailable' })).toBeGreaterThan(0);
    expect(await proxy.metric('llm_proxy_overhead_seconds_count', { provider: 'mock' })).toBeGreaterThan(0);
    const { body } = await proxy.service.metrics.render(undefined);
    expect(body).not.toContain('gpt-99');
  });
});
