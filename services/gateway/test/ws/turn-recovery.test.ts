/**
 * A turn whose runtime stream breaks before its final frame (the runtime died, or the way to it):
 * the gateway follows the session's frame log from the last frame it relayed, so its client gets
 * the rest of the turn and its numbered final frame; only when no runtime serves the log does it
 * send the unnumbered GW_ERR_STREAM_INTERRUPTED.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { answerTurn, type StubTurn } from './stub-runtime.ts';
import { startHarness, type Harness } from './harness.ts';

type Frame = Record<string, unknown>;

/** A turn that streams two tokens, loses its stream, and goes on once the gateway follows the log. */
function brokenTurn(h: Harness, end: (turn: StubTurn) => void) {
  return async (turn: StubTurn): Promise<void> => {
    turn.emit({ type: 'assistant_message', token: 'Hel', is_final: false });
    turn.emit({ type: 'assistant_message', token: 'lo', is_final: false });
    await new Promise((r) => setTimeout(r, 20)); // the two tokens reach the gateway first
    turn.breakStream();
    turn.emit({ type: 'assistant_message', token: ' there', is_final: false }); // logged while nobody listens
    // the rest comes live, to the gateway's follow of the log
    await expect.poll(() => h.runtime.callsTo('GET', `/sessions/${turn.sessionId}/frames`).length, { timeout: 5000 }).toBeGreaterThan(0);
    end(turn);
  };
}

describe('a turn stream that breaks', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness();
  });
  afterAll(() => h?.close());

  it('is followed through the frame log from the last frame relayed: the client gets every frame once and the numbered final frame', async () => {
    h.runtime.script = brokenTurn(h, (turn) => void turn.emit({ type: 'assistant_message', content: 'Hello there', is_final: true }));
    const client = await h.connect('s-broken');
    client.send({ type: 'user_message', content: 'hi' });
    const frames = await client.until((f) => f.is_final === true);
    expect(frames.map((f) => f.seq)).toEqual([1, 2, 3, 4]);
    expect(frames.map((f) => f.token ?? f.content)).toEqual(['Hel', 'lo', ' there', 'Hello there']);
    expect(frames.some((f) => f.type === 'error')).toBe(false);
    expect(h.runtime.callsTo('GET', '/sessions/s-broken/frames').map((c) => c.url)).toEqual(['/sessions/s-broken/frames?after=2']);

    // the connection goes on
    h.runtime.script = async (turn) => void turn.emit({ type: 'assistant_message', content: 'next', is_final: true });
    client.send({ type: 'user_message', content: 'again' });
    expect((await client.until((f) => f.is_final === true, frames.length)).at(-1)).toMatchObject({ content: 'next', seq: 5 });
    client.close();
    const metrics = await h.metrics();
    expect(metrics).toMatch(/^gateway_ws_resumes_total\{source="turn",outcome="ok"\} 1$/m);
    expect(metrics).toMatch(/^gateway_turn_duration_seconds_count\{outcome="ok"\} 2$/m);
  });

  it("relays the runtime's RT_ERR_TURN_INTERRUPTED final frame when the turn's runtime died", async () => {
    const interrupted = {
      type: 'error',
      code: 'RT_ERR_TURN_INTERRUPTED',
      content: 'interrupted',
      error: 'interrupted',
      is_final: true,
      metadata: { interrupted: true },
    } as const;
    h.runtime.script = brokenTurn(h, (turn) => void turn.emit(interrupted));
    const client = await h.connect('s-died');
    client.send({ type: 'user_message', content: 'hi' });
    const frames = await client.until((f) => f.is_final === true);
    expect(frames.at(-1)).toMatchObject({ ...interrupted, seq: 4 });
    expect(frames.filter((f: Frame) => f.is_final === true)).toHaveLength(1);
    client.close();
    expect(await h.metrics()).toMatch(/^gateway_turn_duration_seconds_count\{outcome="interrupted"\} 1$/m);
  });
});

describe('a turn stream that breaks while no runtime serves the frame log', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ GATEWAY__AGENT_STREAM_TIMEOUT: '1' });
  });
  afterAll(() => h?.close());

  it('retries until GATEWAY__AGENT_STREAM_TIMEOUT, then ends the turn with the unnumbered GW_ERR_STREAM_INTERRUPTED', async () => {
    h.runtime.framesAvailable = false;
    h.runtime.script = async (turn) => {
      turn.emit({ type: 'assistant_message', token: 'Hel', is_final: false });
      await new Promise((r) => setTimeout(r, 20));
      turn.breakStream();
    };
    const client = await h.connect('s-gone');
    client.send({ type: 'user_message', content: 'hi' });
    const frames = await client.until((f) => f.is_final === true);
    const last = frames.at(-1)!;
    expect(last).toMatchObject({ type: 'error', code: 'GW_ERR_STREAM_INTERRUPTED', is_final: true });
    expect(last.seq).toBeUndefined();
    expect(h.runtime.callsTo('GET', '/sessions/s-gone/frames').length).toBeGreaterThan(1);
    client.close();
    const metrics = await h.metrics();
    expect(metrics).toMatch(/^gateway_ws_resumes_total\{source="turn",outcome="failed"\} 1$/m);
    expect(metrics).toMatch(/^gateway_turn_duration_seconds_count\{outcome="interrupted"\} 1$/m);
  });

  it('replays what the runtime finished after the gateway gave up before the next turn, marked replayed: no frame number is skipped', async () => {
    h.runtime.framesAvailable = false;
    h.runtime.script = async (turn) => {
      turn.emit({ type: 'assistant_message', token: 'Hel', is_final: false });
      await new Promise((r) => setTimeout(r, 20));
      turn.breakStream();
      // the runtime finishes the turn, logged, while no runtime serves the log to the gateway
      turn.emit({ type: 'assistant_message', token: 'lo', is_final: false });
      turn.emit({ type: 'assistant_message', content: 'Hello', is_final: true });
    };
    const client = await h.connect('s-gap');
    client.send({ type: 'user_message', content: 'hi' });
    const first = await client.until((f) => f.is_final === true);
    expect(first.map((f) => f.seq ?? f.code)).toEqual([1, 'GW_ERR_STREAM_INTERRUPTED']);

    h.runtime.framesAvailable = true;
    h.runtime.script = answerTurn;
    client.send({ type: 'user_message', content: 'again' });
    const second = await client.until((f) => f.is_final === true && f.metadata === undefined, first.length);
    expect(second.map((f) => f.seq)).toEqual([2, 3, 4, 5, 6, 7]);
    expect(second.slice(0, 2)).toEqual([
      { type: 'assistant_message', token: 'lo', is_final: false, seq: 2, metadata: { replayed: true } },
      { type: 'assistant_message', content: 'Hello', is_final: true, seq: 3, metadata: { replayed: true } },
    ]);
    expect(second.at(-1)).toMatchObject({ content: 'You said again', seq: 7 });
    expect(second.slice(2).every((f) => f.metadata === undefined)).toBe(true);
    expect(h.runtime.callsTo('GET', '/sessions/s-gap/frames').at(-1)?.url).toBe('/sessions/s-gap/frames?after=1&until=3');

    // a client that asked for no history (no last_seq, nothing delivered yet) gets none replayed
    const fresh = await h.connect('s-gap');
    fresh.send({ type: 'user_message', content: 'elsewhere' });
    expect((await fresh.until((f) => f.is_final === true)).map((f) => f.seq)).toEqual([8, 9, 10, 11]);
    client.close();
    fresh.close();
    expect(await h.metrics()).toMatch(/^gateway_ws_resumes_total\{source="gap",outcome="ok"\} 1$/m);
  });
});
