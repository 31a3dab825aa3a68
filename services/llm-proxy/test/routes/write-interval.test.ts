/**
 * The write interval a streaming client may ask for (x-codelab-write-interval-ms, the runtime's
 * frame interval): the first output leaves at once, what follows in one write per interval at
 * most, the end at once; bad values are refused with 400.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { MAX_WRITE_INTERVAL_MS, WRITE_INTERVAL_HEADER } from '@codelab/protocol';
import { parseSse } from '@codelab/service-kit';
import { TEST_INTERNAL_KEY } from '@codelab/service-kit/testing';
import { startProxy, user, type RunningProxy } from '../helpers.ts';

describe(`${WRITE_INTERVAL_HEADER}`, () => {
  let proxy: RunningProxy;
  beforeAll(async () => {
    proxy = await startProxy();
  });
  afterAll(() => proxy.close());
  afterEach(() => {
    vi.useRealTimers();
  });
  /**
   * The proxy runs in this process: with setTimeout faked, an interval's flush never comes unless
   * the test moves the clock, so what leaves before the end left without waiting for one. (The
   * mock's token delays and stalls sleep on node:timers/promises, which stays real.)
   */
  const holdIntervals = (): void => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
  };

  const post = (content: string, interval?: string, stream = true, signal?: AbortSignal): Promise<Response> =>
    fetch(`${proxy.url}/v1/chat/completions`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${TEST_INTERNAL_KEY}`,
        'content-type': 'application/json',
        ...(interval === undefined ? {} : { [WRITE_INTERVAL_HEADER]: interval }),
      },
      body: JSON.stringify({ model: 'fake-llm', stream, messages: user(content) }),
      ...(signal ? { signal } : {}),
    });

  /** The text of a streamed answer, and the socket writes the proxy counted for it (llm_proxy_stream_writes). */
  const streamed = async (content: string, interval?: string): Promise<{ text: string; writes: number }> => {
    const before = await proxy.metric('llm_proxy_stream_writes_sum');
    const res = await post(content, interval);
    expect(res.status).toBe(200);
    let text = '';
    for await (const ev of parseSse(res.body!)) {
      if (ev.data === '[DONE]') continue;
      text += (JSON.parse(ev.data) as { choices: { delta: { content?: string } }[] }).choices[0]?.delta.content ?? '';
    }
    return { text, writes: (await proxy.metric('llm_proxy_stream_writes_sum')) - before };
  };

  it('without it, writes each chunk that comes after the first on its own', async () => {
    // eight words 5 ms apart: the first output, the six words between, the last with the end
    const { text, writes } = await streamed('[[mock:words 8]] [[mock:token_delay 5]]');
    expect(text).toBe('w0 w1 w2 w3 w4 w5 w6 w7');
    expect(writes).toBeGreaterThanOrEqual(8);
  });

  it('with it, gathers what comes within the interval into one write: the same text in two writes', async () => {
    holdIntervals();
    const { text, writes } = await streamed('[[mock:words 8]] [[mock:token_delay 5]]', '1000');
    expect(text).toBe('w0 w1 w2 w3 w4 w5 w6 w7');
    // the first output, then (no interval ever passed) everything else with the end
    expect(writes).toBe(2);
  });

  it('writes what it gathered once the interval passes, without waiting for the end', async () => {
    holdIntervals();
    const abort = new AbortController();
    // three words 5 ms apart, then the mock stalls for a minute: the end is far away
    const res = await post('[[mock:words 4]] [[mock:token_delay 5]] [[mock:stall_after 3 60000]]', '200', true, abort.signal);
    const seen: string[] = [];
    const reading = (async () => {
      for await (const ev of parseSse(res.body!)) {
        const content = (JSON.parse(ev.data) as { choices: { delta: { content?: string } }[] }).choices[0]?.delta.content;
        if (content) seen.push(content.trim());
      }
    })().catch(() => undefined);
    try {
      // the clock moves in steps of the interval until what was gathered arrives
      await vi.waitFor(
        async () => {
          await vi.advanceTimersByTimeAsync(200);
          expect(seen).toEqual(['w0', 'w1', 'w2']);
        },
        { timeout: 10_000, interval: 20 },
      );
    } finally {
      abort.abort();
      await reading;
    }
  });

  it('still sends the first output at once: it arrives though no interval ever passes', async () => {
    holdIntervals();
    const abort = new AbortController();
    const res = await post('[[mock:words 3]] [[mock:stall_after 1 60000]]', '1000', true, abort.signal);
    try {
      for await (const ev of parseSse(res.body!)) {
        const content = (JSON.parse(ev.data) as { choices: { delta: { content?: string } }[] }).choices[0]?.delta.content;
        if (content) {
          expect(content.trim()).toBe('w0');
          return; // the mock holds the rest for a minute: this one was not held back for the interval
        }
      }
      throw new Error('the stream ended without output');
    } finally {
      abort.abort();
    }
  });

  it('refuses a value that is not whole milliseconds from 0 to the maximum with 400, naming the header', async () => {
    for (const bad of ['abc', '-1', '1.5', String(MAX_WRITE_INTERVAL_MS + 1), '30, 40']) {
      const res = await post('hi', bad);
      expect(res.status, bad).toBe(400);
      const body = (await res.json()) as { error: { type: string; param: string; message: string } };
      expect(body.error).toMatchObject({ type: 'invalid_request_error', param: WRITE_INTERVAL_HEADER });
      expect(body.error.message).toContain(WRITE_INTERVAL_HEADER);
    }
    const zero = await post('hi', '0');
    expect(zero.status).toBe(200);
    await zero.body?.cancel();
    // a JSON answer has no writes to gather: the header changes nothing there
    const json = await post('[[mock:words 2]]', '250', false);
    expect(json.status).toBe(200);
    expect(((await json.json()) as { choices: { message: { content: string } }[] }).choices[0]!.message.content).toBe('w0 w1');
  });
});
