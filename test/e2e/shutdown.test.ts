/**
 * Graceful shutdown: on SIGTERM a service stops accepting, lets streams in flight finish within
 * the grace period (and cuts them after it), closes WebSockets with 1001, and exits 0.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { stopService } from '@codelab/service-kit';
import { TEST_INTERNAL_KEY } from '@codelab/service-kit/testing';
import { FrameClient, startStack, type Stack } from '../helpers/stack.ts';
import { startProcess } from '../helpers/processes.ts';

const streamRequest = (url: string) =>
  fetch(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-internal-auth': TEST_INTERNAL_KEY },
    body: JSON.stringify({ model: 'fake-llm', stream: true, messages: [{ role: 'user', content: 'a slow answer please' }] }),
  });

async function readAll(res: Response, onFirstChunk: () => void): Promise<string> {
  const reader = res.body!.getReader();
  let text = '';
  let first = true;
  for (;;) {
    let r;
    try {
      r = await reader.read();
    } catch {
      return text; // cut
    }
    if (r.done) return text;
    text += new TextDecoder().decode(r.value);
    if (first) {
      first = false;
      onFirstChunk();
    }
  }
}

describe('graceful shutdown of a process', () => {
  it('finishes an SSE stream in flight after SIGTERM, refuses new connections, and exits 0', async () => {
    const llm = await startProcess('llm-proxy', {
      LLM_PROXY__INTERNAL_API_KEY: TEST_INTERNAL_KEY,
      LLM_PROXY__MOCK_TTFT_MS: '50',
      LLM_PROXY__MOCK_TOKEN_DELAY_MS: '30',
      LLM_PROXY__SHUTDOWN_GRACE_SECONDS: '20',
    });
    const res = await streamRequest(llm.url);
    const exit = llm.exited();
    const body = await readAll(res, () => llm.child.kill('SIGTERM'));
    expect(body.trimEnd().endsWith('data: [DONE]')).toBe(true);
    expect((body.match(/"content":"[^"]+"/g) ?? []).length).toBeGreaterThan(20);
    await expect(fetch(`${llm.url}/health`)).rejects.toThrow();
    expect(await exit).toBe(0);
    expect(llm.output()).toMatch(/"msg":"shutting down"/);
  });

  it('cuts a stream still running when the grace period ends, and still exits 0', async () => {
    const llm = await startProcess('llm-proxy', {
      LLM_PROXY__INTERNAL_API_KEY: TEST_INTERNAL_KEY,
      LLM_PROXY__MOCK_TTFT_MS: '0',
      LLM_PROXY__MOCK_TOKEN_DELAY_MS: '1000',
      LLM_PROXY__SHUTDOWN_GRACE_SECONDS: '0.5',
    });
    const res = await streamRequest(llm.url);
    const started = Date.now();
    const body = await readAll(res, () => llm.child.kill('SIGTERM'));
    expect(body).not.toContain('[DONE]');
    expect(await llm.exited()).toBe(0);
    expect(Date.now() - started).toBeLessThan(5000);
    expect(llm.output()).toMatch(/grace period over/);
  });
});

describe('graceful shutdown of the gateway', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({
      databaseUrl: inject('databaseUrl'),
      env: {
        llm: { LLM_PROXY__MOCK_TTFT_MS: '20', LLM_PROXY__MOCK_TOKEN_DELAY_MS: '20' },
        gateway: { GATEWAY__SHUTDOWN_GRACE_SECONDS: '15' },
      },
    });
  });
  afterAll(() => stack?.close());

  it('lets the running turn finish, then closes the WebSocket with 1001', async () => {
    const token = await stack.token();
    const client = new FrameClient(`${stack.url.ws}/api/v1/ws/s-${randomUUID()}`, { authorization: `Bearer ${token}` });
    await client.open();
    client.send({ type: 'user_message', content: 'finish me before you go' });
    await client.until((f) => typeof f.token === 'string');
    const stopping = stopService(stack.gateway, 15);
    const frames = await client.until((f) => f.is_final === true);
    expect(frames.at(-1)).toMatchObject({ type: 'assistant_message', is_final: true });
    expect(await client.closed()).toBe(1001);
    expect(await stopping).toEqual({ forced: false });
  });
});
