/** The mock's configured fault injection: seeded, so two instances with one seed fail the same requests. */
import { describe, expect, it } from 'vitest';
import { parseSse } from '@codelab/service-kit';
import { chat, startProxy, user } from '../helpers.ts';

describe('mock fault injection by config', () => {
  it('fails the share of requests LLM_PROXY__MOCK_ERROR_RATE sets, with the configured status, reproducibly per seed', async () => {
    const env = { LLM_PROXY__MOCK_ERROR_RATE: '0.5', LLM_PROXY__MOCK_ERROR_STATUS: '502', LLM_PROXY__MOCK_SEED: '7' };
    const statuses = async (): Promise<number[]> => {
      const proxy = await startProxy(env);
      const out: number[] = [];
      for (let i = 0; i < 20; i++) out.push((await chat(proxy.url, { messages: user(`q${i}`) })).status);
      await proxy.close();
      return out;
    };
    const a = await statuses();
    expect(await statuses()).toEqual(a);
    expect(new Set(a)).toEqual(new Set([200, 502]));
    const proxy = await startProxy({ ...env, LLM_PROXY__MOCK_SEED: '8' });
    const other: number[] = [];
    for (let i = 0; i < 20; i++) other.push((await chat(proxy.url, { messages: user(`q${i}`) })).status);
    await proxy.close();
    expect(other).not.toEqual(a);
  });

  it('cuts streams mid-way with LLM_PROXY__MOCK_DISCONNECT_RATE, and stalls with LLM_PROXY__MOCK_STALL_RATE', async () => {
    const proxy = await startProxy({ LLM_PROXY__MOCK_DISCONNECT_RATE: '1' });
    const events: string[] = [];
    await (async () => {
      for await (const ev of parseSse(
        (await chat(proxy.url, { stream: true, messages: user('hello') })).body as unknown as AsyncIterable<Uint8Array>,
      ))
        events.push(ev.data);
    })().catch(() => undefined);
    expect(events).not.toContain('[DONE]');
    expect(events.length).toBeGreaterThan(1);
    expect(await proxy.metric('llm_proxy_requests_total', { outcome: 'injected_disconnect' })).toBe(1);
    await proxy.close();

    const stalling = await startProxy({ LLM_PROXY__MOCK_STALL_RATE: '1', LLM_PROXY__MOCK_STALL_MS: '200' });
    const started = performance.now();
    expect((await chat(stalling.url, { messages: user('hello') })).status).toBe(200);
    expect(performance.now() - started).toBeGreaterThanOrEqual(190);
    await stalling.close();
  });
});
