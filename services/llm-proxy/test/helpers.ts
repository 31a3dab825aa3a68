/** Starts llm-proxy instances on port 0 for the tests (mock mode unless told otherwise). */
import { listen, type Service } from '@codelab/service-kit';
import { silentLogger, TEST_INTERNAL_KEY } from '@codelab/service-kit/testing';
import { buildApp } from '../src/app.ts';
import { readLlmProxyConfig } from '../src/config.ts';

export interface RunningProxy {
  service: Service;
  url: string;
  close(): Promise<void>;
  /** Sum of a metric's samples whose labels contain every given pair. */
  metric(name: string, labels?: Record<string, string>): Promise<number>;
}

/** `beforeListen`: what a test adds to the app before it starts (a hook, say). */
export async function startProxy(
  env: Record<string, string> = {},
  opts: { beforeListen?: (app: Service['app']) => void } = {},
): Promise<RunningProxy> {
  const config = readLlmProxyConfig({
    LLM_PROXY__INTERNAL_API_KEY: TEST_INTERNAL_KEY,
    LLM_PROXY__MOCK_TTFT_MS: '0',
    LLM_PROXY__MOCK_TOKEN_DELAY_MS: '0',
    ...env,
  });
  const service = await buildApp(config, { logger: silentLogger() });
  opts.beforeListen?.(service.app);
  const url = await listen(service, { host: '127.0.0.1', port: 0 });
  return {
    service,
    url,
    close: () => service.app.close(),
    metric: async (name, labels = {}) => {
      const { body } = await service.metrics.render(undefined);
      let sum = 0;
      for (const line of body.split('\n')) {
        const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? ([^ ]+)/.exec(line);
        if (!m || m[1] !== name) continue;
        const have = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
        if (Object.entries(labels).every(([k, v]) => have[k] === v)) sum += Number(m[3]);
      }
      return sum;
    },
  };
}

const auth = { authorization: `Bearer ${TEST_INTERNAL_KEY}`, 'content-type': 'application/json' };

/** POST /v1/chat/completions with fetch (for what the SDK hides: raw SSE, headers). */
export function chat(url: string, body: Record<string, unknown>, init: RequestInit = {}): Promise<Response> {
  return fetch(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers: auth,
    body: JSON.stringify({ model: 'fake-llm', ...body }),
    ...init,
  });
}

export const user = (content: string) => [{ role: 'user' as const, content }];

/** Waits until `check` holds (polls every 10 ms), or throws after `ms`. */
export async function until(check: () => Promise<boolean> | boolean, ms = 3000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}
