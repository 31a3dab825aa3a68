/** The llm-proxy driven by the official `openai` SDK, unchanged, over real HTTP. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import OpenAI from 'openai';
import { listen, type Service } from '@codelab/service-kit';
import { silentLogger, TEST_INTERNAL_KEY } from '@codelab/service-kit/testing';
import { buildApp } from '../../src/app.ts';
import { readLlmProxyConfig } from '../../src/config.ts';
import { mockReply, tokenize } from '../../src/mock-llm.ts';

describe('POST /v1/chat/completions', () => {
  let service: Service;
  let client: OpenAI;
  let baseUrl: string;

  beforeAll(async () => {
    service = await buildApp(readLlmProxyConfig({ LLM_PROXY__INTERNAL_API_KEY: TEST_INTERNAL_KEY, LLM_PROXY__MOCK_TTFT_MS: '0', LLM_PROXY__MOCK_TOKEN_DELAY_MS: '0' }), {
      logger: silentLogger(),
    });
    baseUrl = await listen(service, { host: '127.0.0.1', port: 0 });
    client = new OpenAI({ apiKey: TEST_INTERNAL_KEY, baseURL: `${baseUrl}/v1`, maxRetries: 0 });
  });
  afterAll(() => service.app.close());

  const messages = [{ role: 'user' as const, content: 'How do I reverse a list in Python?' }];

  it('streams a deterministic answer of at least 20 tokens, then finish_reason stop and usage', async () => {
    const stream = await client.chat.completions.create({ model: 'fake-llm', messages, stream: true, stream_options: { include_usage: true } });
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
    for (const body of [{}, { model: 'fake-llm', messages: [] }, { model: 'fake-llm', messages: [{ role: 'robot', content: 'x' }] }, { model: 'fake-llm', messages, temperature: 9 }]) {
      const res = await fetch(`${baseUrl}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${TEST_INTERNAL_KEY}` }, body: JSON.stringify(body) });
      expect(res.status).toBe(400);
      expect(await res.json()).toMatchObject({ error: { type: 'invalid_request_error', code: 'invalid_request', message: expect.any(String) } });
    }
    const notJson = await fetch(`${baseUrl}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-internal-auth': TEST_INTERNAL_KEY }, body: '{oops' });
    expect(notJson.status).toBe(400);
    expect(await notJson.json()).toMatchObject({ error: { type: 'invalid_request_error' } });
  });

  it('lists models in the OpenAI shape and in upstream\'s /v1/llm/models shape', async () => {
    const list = await client.models.list();
    expect(list.data.map((m) => m.id)).toEqual(['fake-llm', 'mock-llm']);
    const upstream = await fetch(`${baseUrl}/v1/llm/models`);
    expect(upstream.status).toBe(200);
    expect(((await upstream.json()) as { id: string }[]).map((m) => m.id)).toEqual(['fake-llm', 'mock-llm']);
  });

  it('records time to first token, token usage and requests by bounded model label', async () => {
    const { body } = await service.metrics.render(undefined);
    expect(body).toMatch(/gen_ai_server_time_to_first_token_seconds_count\{model="fake-llm"\} [1-9]/);
    expect(body).toMatch(/gen_ai_client_token_usage_count\{model="fake-llm",token_type="output"\} [1-9]/);
    expect(body).toMatch(/llm_proxy_requests_total\{model="fake-llm",stream="true",outcome="ok"\} [1-9]/);
    expect(body).not.toContain('gpt-99');
  });
});
