/**
 * Control frames are answered at once, even while a turn streams, each with one control answer
 * that carries no seq and ends no turn: `ping` gets `pong`, `cancel` stops the session's running
 * turn at the runtime and gets `cancel_ack` (the turn's stream ends with its cancelled final
 * frame), or an error with `is_final: false`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { heldTurn, answerTurn } from './stub-runtime.ts';
import { startHarness, type Harness } from './harness.ts';

describe('control frames', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness();
  });
  afterAll(() => h?.close());

  it('answers ping with pong at once, during a running turn, echoing the timestamp', async () => {
    const held = heldTurn();
    h.runtime.script = held.script;
    const client = await h.connect('s-ping');
    client.send({ type: 'user_message', content: 'think long' });
    await held.started;
    await client.until((f) => f.token === 'Thinking');
    client.send({ type: 'ping', timestamp: 1234.5 });
    client.send({ type: 'ping' });
    const pongs = await client.until((f) => f.type === 'pong' && f.timestamp === undefined);
    expect(pongs.filter((f) => f.type === 'pong')).toEqual([{ type: 'pong', timestamp: 1234.5 }, { type: 'pong' }]);
    expect(client.frames.some((f) => f.is_final === true)).toBe(false); // the turn is still running
    held.release();
    const final = (await client.until((f) => f.is_final === true)).at(-1)!;
    expect(final).toMatchObject({ type: 'assistant_message', content: 'Thinking done' });
    client.close();
  });

  it('forwards cancel to the runtime while a turn streams; the turn ends with its cancelled final frame', async () => {
    const held = heldTurn();
    h.runtime.script = held.script;
    const client = await h.connect('s-cancel');
    client.send({ type: 'user_message', content: 'a long answer please' });
    await client.until((f) => f.token === 'Thinking');
    client.send({ type: 'cancel' });
    const frames = await client.until((f) => f.is_final === true);
    expect(frames.at(-1)).toMatchObject({ type: 'assistant_message', is_final: true, metadata: { cancelled: true } });
    expect(frames.at(-1)!.seq).toEqual(expect.any(Number));
    expect(frames.some((f) => f.type === 'error')).toBe(false);
    const ack = (await client.until((f) => f.type === 'cancel_ack')).at(-1);
    expect(ack).toEqual({ type: 'cancel_ack', content: expect.any(String) });
    expect(h.runtime.callsTo('POST', '/sessions/s-cancel/cancel')).toHaveLength(1);

    // the connection goes on: the next turn is answered
    h.runtime.script = answerTurn;
    client.send({ type: 'user_message', content: 'again' });
    const next = await client.until((f) => f.is_final === true, frames.length);
    expect(next.at(-1)).toMatchObject({ content: 'You said again' });
    client.close();

    const metrics = await h.metrics();
    expect(metrics).toMatch(/^gateway_ws_cancels_total\{outcome="cancelled"\} 1$/m);
    expect(metrics).toMatch(/^gateway_turn_duration_seconds_count\{outcome="cancelled"\} 1$/m);
    expect(metrics).toMatch(/^gateway_ws_messages_total\{direction="in",type="cancel"\} 1$/m);
  });

  it('answers a cancel with nothing running with GW_ERR_NOTHING_TO_CANCEL, and the connection stays usable', async () => {
    h.runtime.session('s-idle');
    const client = await h.connect('s-idle');
    client.send({ type: 'cancel' });
    const [error] = await client.until((f) => f.type === 'error');
    // a control answer: no seq, and it ends no turn (an IDE waiting for is_final keeps waiting)
    expect(error).toMatchObject({ type: 'error', code: 'GW_ERR_NOTHING_TO_CANCEL', is_final: false });
    expect(error!.seq).toBeUndefined();
    expect(error!.error).toBe(error!.content);
    // a session that does not exist yet has nothing running either
    const fresh = await h.connect('s-never-used');
    fresh.send({ type: 'cancel' });
    expect((await fresh.until((f) => f.type === 'error'))[0]).toMatchObject({ code: 'GW_ERR_NOTHING_TO_CANCEL' });
    client.send({ type: 'user_message', content: 'still there?' });
    expect((await client.until((f) => f.is_final === true, 1)).at(-1)).toMatchObject({ content: 'You said still there?' });
    client.close();
    fresh.close();
    expect(await h.metrics()).toMatch(/^gateway_ws_cancels_total\{outcome="nothing_running"\} 2$/m);
  });

  it("acknowledges a cancel sent from a second connection on the session; the turn's own connection gets its cancelled final frame", async () => {
    const held = heldTurn();
    h.runtime.script = held.script;
    const running = await h.connect('s-two');
    running.send({ type: 'user_message', content: 'a long answer please' });
    await running.until((f) => f.token === 'Thinking');
    const other = await h.connect('s-two');
    other.send({ type: 'cancel' });
    const ack = (await other.until((f) => f.type === 'cancel_ack')).at(-1);
    expect(ack).toEqual({ type: 'cancel_ack', content: expect.any(String) });
    const final = (await running.until((f) => f.is_final === true)).at(-1)!;
    expect(final).toMatchObject({ type: 'assistant_message', metadata: { cancelled: true }, seq: expect.any(Number) });
    expect(other.frames.filter((f) => f.is_final === true)).toEqual([]);
    running.close();
    other.close();
  });

  it('answers a malformed resume at once with a control error that ends no turn', async () => {
    const held = heldTurn();
    h.runtime.script = held.script;
    const client = await h.connect('s-bad-resume');
    client.send({ type: 'user_message', content: 'think' });
    await client.until((f) => f.token === 'Thinking');
    client.send({ type: 'resume', last_seq: 'x' });
    const error = (await client.until((f) => f.type === 'error')).at(-1);
    expect(error).toMatchObject({ code: 'GW_ERR_WS_INVALID_FRAME', is_final: false });
    expect(error!.seq).toBeUndefined();
    held.release();
    expect((await client.until((f) => f.is_final === true)).at(-1)).toMatchObject({ content: 'Thinking done' });
    client.close();
  });
});
