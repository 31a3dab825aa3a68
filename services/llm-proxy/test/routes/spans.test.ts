/** The `chat {model}` span: gen_ai.* attributes always, message contents only when enabled. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { trace } from '@opentelemetry/api';
import { InMemorySpanExporter, SimpleSpanProcessor, TracerProvider } from '@opentelemetry/sdk-trace';
import { chat, startProxy, user } from '../helpers.ts';

const exporter = new InMemorySpanExporter();
const provider = new TracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter })] });

describe('chat spans', () => {
  beforeAll(() => {
    trace.setGlobalTracerProvider(provider);
  });
  afterAll(async () => {
    await provider.shutdown();
    trace.disable();
  });

  const chatSpan = () => exporter.getFinishedSpans().find((s) => s.name === 'chat fake-llm')!;

  it('carries gen_ai attributes and no contents by default', async () => {
    const proxy = await startProxy();
    exporter.reset();
    await (await chat(proxy.url, { messages: user('secret question'), max_tokens: 50, temperature: 0.2 })).json();
    await proxy.close();
    const span = chatSpan();
    expect(span.attributes).toMatchObject({
      'gen_ai.operation.name': 'chat',
      'gen_ai.provider.name': 'codelab.mock',
      'gen_ai.request.model': 'fake-llm',
      'gen_ai.request.max_tokens': 50,
      'gen_ai.request.temperature': 0.2,
      'gen_ai.response.finish_reasons': ['stop'],
    });
    expect(span.attributes['gen_ai.usage.output_tokens']).toBeGreaterThan(0);
    expect(JSON.stringify(span.attributes)).not.toContain('secret question');
  });

  it('records prompts and answers with LLM_PROXY__CAPTURE_MESSAGE_CONTENT=true', async () => {
    const proxy = await startProxy({ LLM_PROXY__CAPTURE_MESSAGE_CONTENT: 'true' });
    exporter.reset();
    await (await chat(proxy.url, { messages: user('secret question') })).json();
    await proxy.close();
    const span = chatSpan();
    expect(span.attributes['gen_ai.input.messages']).toContain('secret question');
    expect(span.attributes['gen_ai.output.messages']).toContain('Mock answer');
  });
});
