/**
 * The runtime's LLM client against a real llm-proxy in mock mode: tokens, tool calls assembled from
 * their streamed pieces, usage, and every kind of upstream failure as LlmError (never text).
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ServiceMetrics, type Service } from '@codelab/service-kit';
import { collectGarbage, freePort, TEST_INTERNAL_KEY } from '@codelab/service-kit/testing';
import { mockReply } from '@codelab/llm-proxy/mock-llm';
import { MAX_WRITE_INTERVAL_MS, WRITE_INTERVAL_HEADER, type ChatMessage } from '@codelab/protocol';
import { LLM_FAILURE_TEXT, LlmClient, LlmError, type LlmEvent } from '../src/llm-client.ts';
import { createRuntimeMetrics } from '../src/metrics.ts';
import { startMockLlm } from './routes/fixture.ts';

describe('LlmClient', () => {
  let llm: Service;
  let client: LlmClient;
  let llmUrl: string;
  const clientFor = (baseUrl: string, timeouts = { first: 5000, idle: 5000 }, writeIntervalMs?: number) => {
    const serviceMetrics = new ServiceMetrics('runtime-test');
    return new LlmClient({
      baseUrl,
      internalApiKey: TEST_INTERNAL_KEY,
      model: 'fake-llm',
      firstByteTimeoutMs: timeouts.first,
      idleTimeoutMs: timeouts.idle,
      ...(writeIntervalMs === undefined ? {} : { writeIntervalMs }),
      serviceMetrics,
      metrics: createRuntimeMetrics(serviceMetrics),
    });
  };

  beforeAll(async () => {
    ({ service: llm, url: llmUrl } = await startMockLlm());
    client = clientFor(llmUrl);
  });
  afterAll(async () => {
    await client.close();
    await llm.app.close();
  });

  const collect = async (content: string): Promise<LlmEvent[]> => {
    const out: LlmEvent[] = [];
    for await (const ev of client.streamChat([{ role: 'user', content }])) out.push(ev);
    return out;
  };

  it('yields the tokens, the usage and finish_reason stop', async () => {
    const events = await collect('What is a closure?');
    const text = events.flatMap((e) => (e.kind === 'token' ? [e.token] : [])).join('');
    expect(text).toBe(mockReply([{ role: 'user', content: 'What is a closure?' }]));
    expect(events.find((e) => e.kind === 'finish')).toEqual({ kind: 'finish', reason: 'stop' });
    const usage = events.find((e) => e.kind === 'usage');
    expect(usage?.kind === 'usage' && usage.usage.completion_tokens).toBe(events.filter((e) => e.kind === 'token').length);
  });

  it('asks the llm-proxy for its write interval when it has one (whole ms, at most the maximum), and not otherwise', async () => {
    const asked: (string | undefined)[] = [];
    const server = createServer((req, res) => {
      asked.push(req.headers[WRITE_INTERVAL_HEADER] as string | undefined);
      req.resume();
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.end(`data: ${JSON.stringify({ choices: [{ index: 0, delta: { content: 'hi' }, finish_reason: 'stop' }] })}\n\ndata: [DONE]\n\n`);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      for (const ms of [30, 12.6, 5000, 0, undefined]) {
        const c = clientFor(url, undefined, ms);
        for await (const _ of c.streamChat([{ role: 'user', content: 'hello' }])) void _;
        await c.close();
      }
      expect(asked).toEqual(['30', '13', String(MAX_WRITE_INTERVAL_MS), undefined, undefined]);
    } finally {
      server.close();
    }
  });

  it('reads the whole answer when the llm-proxy writes it at an interval', async () => {
    const paced = clientFor(llmUrl, undefined, 1000);
    try {
      const out: LlmEvent[] = [];
      for await (const ev of paced.streamChat([{ role: 'user', content: 'What is a closure? [[mock:token_delay 2]]' }])) out.push(ev);
      expect(out.flatMap((e) => (e.kind === 'token' ? [e.token] : [])).join('')).toBe(
        mockReply([{ role: 'user', content: 'What is a closure?' }]),
      );
      expect(out.find((e) => e.kind === 'finish')).toEqual({ kind: 'finish', reason: 'stop' });
    } finally {
      await paced.close();
    }
  });

  it('assembles streamed tool-call deltas into complete tool calls', async () => {
    const events = await collect(
      'Look [[mock:tool_call read_file {"path":"src/some/long/path.ts","lines":[1,20]}]] [[mock:tool_call grep {"q":"x"}]]',
    );
    const calls = events.filter((e) => e.kind === 'tool_calls');
    expect(calls).toHaveLength(1);
    const list = calls[0]!.kind === 'tool_calls' ? calls[0]!.calls : [];
    expect(list.map((c) => [c.function.name, JSON.parse(c.function.arguments)])).toEqual([
      ['read_file', { path: 'src/some/long/path.ts', lines: [1, 20] }],
      ['grep', { q: 'x' }],
    ]);
    expect(list.every((c) => c.id.startsWith('call_') && c.type === 'function')).toBe(true);
    expect(events.find((e) => e.kind === 'finish')).toEqual({ kind: 'finish', reason: 'tool_calls' });
  });

  it('surfaces an HTTP error status as LlmError with status and code', async () => {
    const err = await collect('[[mock:error 503]]').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LlmError);
    expect(err).toMatchObject({
      status: 503,
      code: 'upstream_unavailable',
      message: expect.stringContaining('503 (upstream_unavailable)'),
    });
  });

  it('surfaces a mid-stream error event as LlmError, after the tokens that came before', async () => {
    const seen: LlmEvent[] = [];
    const err = await (async () => {
      for await (const ev of client.streamChat([{ role: 'user', content: 'hi [[mock:error_after 2 504]]' }])) seen.push(ev);
    })().catch((e: unknown) => e);
    expect(seen.filter((e) => e.kind === 'token')).toHaveLength(2);
    expect(err).toBeInstanceOf(LlmError);
    expect(err).toMatchObject({ code: 'upstream_timeout', message: expect.stringContaining('LLM stream failed (upstream_timeout)') });
  });

  it('treats a stream cut without [DONE] as a failure', async () => {
    const err = await collect('hi [[mock:disconnect_after 2]]').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LlmError);
  });

  describe('what comes after [DONE]', () => {
    /** A proxy that streams one token and [DONE], then `after` (more events, or the connection cut without ending the response). */
    const proxyThat = async (after: 'sends more' | 'cuts the connection') => {
      const server = createServer((req, res) => {
        req.resume();
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        const chunk = (content: string, finish?: string) =>
          `data: ${JSON.stringify({ choices: [{ index: 0, delta: { content }, finish_reason: finish ?? null }] })}\n\n`;
        res.write(`${chunk('hi ', 'stop')}data: [DONE]\n\n`);
        if (after === 'sends more') res.end(chunk('IGNORED '));
        else setImmediate(() => res.socket?.destroy());
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
    };

    it.each(['sends more', 'cuts the connection'] as const)('a proxy that %s after [DONE] has given its whole answer', async (after) => {
      const { server, url } = await proxyThat(after);
      const c = clientFor(url);
      try {
        const events: LlmEvent[] = [];
        for await (const ev of c.streamChat([{ role: 'user', content: 'x' }])) events.push(ev);
        expect(events.filter((e) => e.kind === 'token')).toEqual([{ kind: 'token', token: 'hi ' }]);
        expect(events.at(-1)).toEqual({ kind: 'finish', reason: 'stop' });
      } finally {
        await c.close();
        server.closeAllConnections();
        await new Promise((resolve) => server.close(resolve));
      }
    });
  });

  it('keeps no object of the prompt while the answer streams (it is sent as encoded when the call is made)', async () => {
    // A prompt carries the session's history: kept for a whole answer, it outlived the collector's
    // young generation on every turn (bench:ttft's open rounds stalled on the full collections).
    const gc = collectGarbage();
    let finish = (): void => undefined;
    const server = createServer((req, res) => {
      req.resume();
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(`data: ${JSON.stringify({ choices: [{ index: 0, delta: { content: 'hi' }, finish_reason: null }] })}\n\n`);
      finish = () => res.end(`data: ${JSON.stringify({ choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] })}\n\ndata: [DONE]\n\n`);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const c = clientFor(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    try {
      // (made in a function of its own: nothing of this test's frame refers to the prompt)
      const start = () => {
        const prompt: ChatMessage[] = [
          { role: 'system', content: 'You are a helper.' },
          { role: 'user', content: 'a long history' },
        ];
        return { prompt: new WeakRef(prompt), events: c.streamChat(prompt) };
      };
      const { prompt, events } = start();
      const first = await events.next();
      expect(first.value).toEqual({ kind: 'token', token: 'hi' });
      // the answer is still streaming: its prompt is gone once the collector has run
      await new Promise((resolve) => setImmediate(resolve));
      gc();
      expect(prompt.deref()).toBeUndefined();
      finish();
      const rest: LlmEvent[] = [];
      for await (const ev of { [Symbol.asyncIterator]: () => events }) rest.push(ev);
      expect(rest.at(-1)).toEqual({ kind: 'finish', reason: 'stop' });
    } finally {
      await c.close();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('reports an unreachable proxy as LlmError', async () => {
    const dead = clientFor(`http://127.0.0.1:${await freePort()}`);
    const err = await (async () => {
      for await (const _ of dead.streamChat([{ role: 'user', content: 'x' }])) void _;
    })().catch((e: unknown) => e);
    await dead.close();
    expect(err).toBeInstanceOf(LlmError);
    expect((err as Error).message).toMatch(/unreachable/);
  });

  describe('failure kinds: the raw cause in message (logs, spans), one readable sentence in userText', () => {
    it.each([
      ['a connection dropped mid-answer', 'hi [[mock:disconnect_after 2]]', 'interrupted'],
      ['an error event mid-answer', 'hi [[mock:error_after 2 502]]', 'interrupted'],
      ['a timeout event mid-answer', 'hi [[mock:error_after 2 504]]', 'interrupted'],
      ['429 before answering', '[[mock:error 429]]', 'busy'],
      ['503 before answering', '[[mock:error 503]]', 'busy'],
      ['504 before answering', '[[mock:error 504]]', 'timeout'],
      ['500 before answering', '[[mock:error 500]]', 'refused'],
    ])('%s is %s', async (_name, content, failure) => {
      const err = (await collect(content).catch((e: unknown) => e)) as LlmError;
      expect(err).toBeInstanceOf(LlmError);
      expect(err.failure).toBe(failure);
      expect(err.userText).toBe(LLM_FAILURE_TEXT[failure as LlmError['failure']]);
      expect(err.userText).not.toContain(err.message);
    });

    it('keeps undici\'s raw "other side closed" out of userText', async () => {
      const err = (await collect('hi [[mock:disconnect_after 2]]').catch((e: unknown) => e)) as LlmError;
      expect(err.message).toMatch(/other side closed|\[DONE\]/);
      expect(err.userText).toBe('The language model stopped answering mid-answer');
    });

    it('an unreachable proxy is unreachable, a silent one a timeout', async () => {
      const dead = clientFor(`http://127.0.0.1:${await freePort()}`);
      const unreachable = (await (async () => {
        for await (const _ of dead.streamChat([{ role: 'user', content: 'x' }])) void _;
      })().catch((e: unknown) => e)) as LlmError;
      await dead.close();
      expect(unreachable.failure).toBe('unreachable');
      const slow = clientFor(llmUrl, { first: 100, idle: 5000 });
      const timeout = (await (async () => {
        for await (const _ of slow.streamChat([{ role: 'user', content: 'x [[mock:stall 1000]]' }])) void _;
      })().catch((e: unknown) => e)) as LlmError;
      await slow.close();
      expect(timeout.failure).toBe('timeout');
      expect(timeout.userText).toBe('The language model took too long to answer');
    });
  });
});
