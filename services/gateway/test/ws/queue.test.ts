/**
 * Turn frames wait in order behind the running turn, at most GATEWAY__WS_MAX_QUEUED_FRAMES of them
 * (more are refused); the wait shows in `gateway_ws_queued_frames` and `gateway_ws_frames_queued_total`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { answerTurn, heldTurn } from './stub-runtime.ts';
import { startHarness, type Harness } from './harness.ts';

describe('the turn frame queue', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ GATEWAY__WS_MAX_QUEUED_FRAMES: '2' });
  });
  afterAll(() => h?.close());

  it('queues turn frames behind a running turn, refuses the one too many, keeps answering pings, then runs them in order', async () => {
    const held = heldTurn();
    h.runtime.script = held.script;
    const client = await h.connect('s-queue');
    client.send({ type: 'user_message', content: 'first' });
    await client.until((f) => f.token === 'Thinking');
    client.send({ type: 'user_message', content: 'second' });
    client.send({ type: 'user_message', content: 'third' });
    client.send({ type: 'user_message', content: 'fourth' });
    const refused = (await client.until((f) => f.type === 'error')).at(-1);
    expect(refused).toMatchObject({ code: 'GW_ERR_WS_QUEUE_FULL', is_final: true });
    client.send({ type: 'ping', timestamp: 'while full' });
    await client.until((f) => f.type === 'pong');

    let metrics = await h.metrics();
    expect(metrics).toMatch(/^gateway_ws_queued_frames 2$/m);
    expect(metrics).toMatch(/^gateway_ws_frames_queued_total 2$/m);
    expect(metrics).toMatch(/^gateway_ws_queue_full_total 1$/m);

    h.runtime.script = answerTurn;
    held.release();
    const finals: unknown[] = [];
    let from = 0;
    for (let i = 0; i < 3; i++) {
      const frames = await client.until((f) => f.is_final === true && f.type === 'assistant_message', from);
      from += frames.length;
      finals.push(frames.at(-1)!.content);
    }
    expect(finals).toEqual(['Thinking done', 'You said second', 'You said third']);
    // seqs increase across turns, in the order the frames were sent
    const seqs = client.frames.filter((f) => typeof f.seq === 'number').map((f) => f.seq as number);
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    metrics = await h.metrics();
    expect(metrics).toMatch(/^gateway_ws_queued_frames 0$/m);
    client.close();
  });

  it('gives back the queued frames of a connection that closes', async () => {
    const held = heldTurn();
    h.runtime.script = held.script;
    const client = await h.connect('s-queue-close');
    client.send({ type: 'user_message', content: 'first' });
    await client.until((f) => f.token === 'Thinking');
    client.send({ type: 'user_message', content: 'second' });
    await expect.poll(async () => h.metrics()).toMatch(/^gateway_ws_queued_frames 1$/m);
    client.close();
    await client.closed();
    await expect.poll(async () => h.metrics()).toMatch(/^gateway_ws_queued_frames 0$/m);
    held.release();
  });
});
