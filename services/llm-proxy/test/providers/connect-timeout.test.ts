/**
 * The connect timeout: an upstream whose listen backlog is full never completes the TCP handshake
 * (the kernel drops the SYNs), so only LLM_PROXY__CONNECT_TIMEOUT ends the wait. A small listener
 * that never accepts (python3: Node accepts every connection by itself) stands on loopback.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { connect, type Socket } from 'node:net';
import { createInterface } from 'node:readline';
import OpenAI from 'openai';
import { missingProgram, TEST_INTERNAL_KEY } from '@codelab/service-kit/testing';
import { startProxy, user, type RunningProxy } from '../helpers.ts';

describe.skipIf(missingProgram('python3', 'python3'))('connect timeout', () => {
  let listener: ChildProcess | undefined;
  const fillers: Socket[] = [];
  let proxy: RunningProxy | undefined;
  afterAll(async () => {
    for (const s of fillers) s.destroy();
    listener?.kill('SIGKILL');
    await proxy?.close();
  });

  it('answers 504 upstream_timeout after LLM_PROXY__CONNECT_TIMEOUT when the upstream never accepts', async () => {
    listener = spawn(
      'python3',
      [
        '-c',
        "import socket,time\ns=socket.socket()\ns.bind(('127.0.0.1',0))\ns.listen(0)\nprint(s.getsockname()[1],flush=True)\ntime.sleep(120)",
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    const port = Number(await new Promise<string>((ok) => createInterface({ input: listener!.stdout! }).once('line', ok)));
    // fill the accept queue (backlog 0 holds one connection); later handshakes hang
    for (let i = 0; i < 3; i++) fillers.push(connect(port, '127.0.0.1').on('error', () => undefined));
    await new Promise((r) => setTimeout(r, 200));

    proxy = await startProxy({
      LLM_PROXY__LLM_MODE: 'openai',
      LLM_PROXY__LITELLM_PROXY_URL: `http://127.0.0.1:${port}`,
      LLM_PROXY__LITELLM_API_KEY: TEST_INTERNAL_KEY,
      LLM_PROXY__CONNECT_TIMEOUT: '0.3',
      LLM_PROXY__MAX_RETRIES: '0',
    });
    const sdk = new OpenAI({ apiKey: TEST_INTERNAL_KEY, baseURL: `${proxy.url}/v1`, maxRetries: 0 });
    const started = performance.now();
    const err = await sdk.chat.completions.create({ model: 'fake-llm', messages: user('hello') }).catch((e: unknown) => e);
    const elapsed = performance.now() - started;
    expect(err).toBeInstanceOf(OpenAI.APIError);
    expect((err as InstanceType<typeof OpenAI.APIError>).status).toBe(504);
    expect((err as InstanceType<typeof OpenAI.APIError>).code).toBe('upstream_timeout');
    expect(elapsed).toBeGreaterThanOrEqual(250);
    expect(elapsed).toBeLessThan(2000);
  });
});
