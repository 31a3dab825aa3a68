/**
 * A turn's outcome is its final frame's: a client that leaves once it has the final frame, before
 * the runtime's stream has ended (over h2c the stream's end may come in a later write than its last
 * frame), does not turn an `error` turn into `client_gone` in gateway_turn_duration_seconds.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHarness, type Harness } from './harness.ts';

describe('the outcome of a turn whose client leaves after its final frame', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness();
  });
  afterAll(() => h?.close());

  it('is the final frame’s, while the runtime’s stream is still open', async () => {
    h.runtime.script = async (turn) => {
      turn.emit({ type: 'error', code: 'RT_ERR_LLM_UNAVAILABLE', content: 'down', error: 'down', is_final: true });
      // the stream ends only once the gateway has left it (or, should it never, after 10 s)
      const left = AbortSignal.any([turn.clientGone, AbortSignal.timeout(10_000)]);
      if (!left.aborted) await new Promise((resolve) => left.addEventListener('abort', resolve, { once: true }));
    };
    const client = await h.connect('s-outcome');
    client.send({ type: 'user_message', content: 'hi' });
    const frames = await client.until((f) => f.is_final === true);
    expect(frames.at(-1)).toMatchObject({ type: 'error', code: 'RT_ERR_LLM_UNAVAILABLE' });
    client.close();
    await expect.poll(() => h.metrics(), { timeout: 10_000 }).toMatch(/^gateway_turn_duration_seconds_count\{outcome="error"\} 1$/m);
    expect(await h.metrics()).not.toMatch(/outcome="client_gone"/);
  });
});
