/**
 * A streaming answer keeps no object of its request: the request carries the whole prompt (a
 * session's history), and objects kept for a whole answer outlive the garbage collector's young
 * generation. Promoted on every request, they are collected later by full collections, each a stall
 * of every stream in flight (bench:ttft's open rounds; `npm run bench:gc` shows the promotion rate).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { collectGarbage, TEST_INTERNAL_KEY } from '@codelab/service-kit/testing';
import { chat, startProxy, user, type RunningProxy } from '../helpers.ts';

describe('the prompt while the answer streams', () => {
  let upstream: RunningProxy;
  beforeAll(async () => {
    upstream = await startProxy();
  });
  afterAll(() => upstream.close());

  it.each([
    ['mock', {}],
    ['upstream (openai)', { LLM_PROXY__LLM_MODE: 'openai', LLM_PROXY__LITELLM_API_KEY: TEST_INTERNAL_KEY }],
  ] as const)('%s mode: the request is gone once the first tokens are out, the answer still streaming', async (_mode, env) => {
    const gc = collectGarbage();
    const requests: WeakRef<object>[] = [];
    const proxy = await startProxy(
      { ...env, ...('LLM_PROXY__LLM_MODE' in env ? { LLM_PROXY__LITELLM_PROXY_URL: upstream.url } : {}) },
      {
        beforeListen: (app) =>
          app.addHook('preHandler', async (request) => {
            if (request.body) requests.push(new WeakRef(request.body));
          }),
      },
    );
    try {
      // tokens 30 s apart: the answer is still streaming when the collector runs, however slow the machine
      const res = await chat(proxy.url, { stream: true, messages: user('a long history [[mock:words 3]] [[mock:token_delay 30000]]') });
      expect(res.status).toBe(200);
      const reader = res.body!.getReader();
      const decoder = new TextDecoder();
      let text = '';
      while (!text.includes('"content":"w0 "')) {
        const { value, done } = await reader.read();
        expect(done).toBe(false);
        text += decoder.decode(value, { stream: true });
      }
      expect(requests).toHaveLength(1);
      gc();
      expect(requests[0]!.deref()).toBeUndefined();
      expect(text).not.toContain('[DONE]');
      await reader.cancel(); // (the client leaves: the proxy ends the stream)
    } finally {
      await proxy.close();
    }
  });
});
