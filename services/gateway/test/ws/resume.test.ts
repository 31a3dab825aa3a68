/**
 * What a client missed while away: `?last_seq=N` (or a `resume` frame) replays the session's frames
 * after N before any queued turn frame, including the live frames of a turn still running; a
 * connection without `last_seq` gets the pending approvals re-sent. A dropped client does not stop
 * the turn at the runtime, only the gateway's own request.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StreamChunk } from '@codelab/protocol';
import { answerTurn, heldTurn } from './stub-runtime.ts';
import { FrameClient, startHarness, type Harness } from './harness.ts';

/** A finished turn's frames in the log: n - 1 tokens and its final frame. */
const logged = (n: number, from = 1): StreamChunk[] =>
  Array.from(
    { length: n },
    (_, i) => ({ type: 'assistant_message', token: `old-${from + i}`, is_final: i === n - 1, seq: from + i }) as StreamChunk,
  );

describe('resume', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness();
  });
  afterAll(() => h?.close());

  it('replays the frames after ?last_seq= in order, before a turn frame sent at once', async () => {
    const s = h.runtime.session('s-url');
    s.log.push(...logged(5));
    s.seq = 5;
    const client = await h.connect('s-url?last_seq=2');
    client.send({ type: 'user_message', content: 'next' });
    const frames = await client.until((f) => f.content === 'You said next');
    expect(frames.map((f) => f.seq)).toEqual([3, 4, 5, 6, 7, 8, 9]);
    expect(frames.slice(0, 3).map((f) => f.token)).toEqual(['old-3', 'old-4', 'old-5']);
    expect(frames.at(-1)).toMatchObject({ content: 'You said next' });
    const calls = h.runtime.calls
      .filter((c) => c.url.includes('s-url') || c.url === '/agent/message/stream')
      .map((c) => `${c.method} ${c.url}`);
    expect(calls).toEqual(['GET /sessions/s-url/access', 'GET /sessions/s-url/frames?after=2', 'POST /agent/message/stream']);
    client.close();
    const metrics = await h.metrics();
    expect(metrics).toMatch(/^gateway_ws_resumes_total\{source="url",outcome="ok"\} 1$/m);
    expect(metrics).toMatch(/^gateway_ws_resumed_frames_total 3$/m);
  });

  it('keeps the turn running when the client drops, and a reconnect with last_seq gets the rest live', async () => {
    const held = heldTurn();
    h.runtime.script = held.script;
    const first = await h.connect('s-drop');
    first.send({ type: 'user_message', content: 'long one' });
    const [thinking] = await first.until((f) => f.token === 'Thinking');
    const turn = await held.started;
    first.ws.terminate();
    await first.closed();
    // the gateway abandons its own request; the runtime's turn goes on
    await expect.poll(() => turn.clientGone.aborted).toBe(true);
    expect(turn.cancelled.aborted).toBe(false);

    const second = await h.connect(`s-drop?last_seq=${thinking!.seq as number}`);
    second.send({ type: 'user_message', content: 'after' }); // waits behind the replay
    await new Promise((r) => setTimeout(r, 50));
    expect(second.frames).toEqual([]);
    h.runtime.script = answerTurn;
    held.release();
    const replayed = await second.until((f) => f.is_final === true);
    expect(replayed).toEqual([expect.objectContaining({ content: 'Thinking done', is_final: true, seq: (thinking!.seq as number) + 1 })]);
    const next = await second.until((f) => f.is_final === true, replayed.length);
    expect(next.at(-1)).toMatchObject({ content: 'You said after' });
    second.close();
  });

  it('replays on a resume frame ahead of queued turn frames, without repeating what this connection already got', async () => {
    const s = h.runtime.session('s-frame');
    s.log.push(...logged(3));
    s.seq = 3;
    const client = await h.connect('s-frame');
    client.send({ type: 'user_message', content: 'hello' });
    const turn = await client.until((f) => f.is_final === true);
    expect(turn.map((f) => f.seq)).toEqual([4, 5, 6, 7]);
    client.send({ type: 'resume', last_seq: 1 });
    client.send({ type: 'user_message', content: 'then' });
    const rest = await client.until((f) => f.content === 'You said then', turn.length);
    expect(rest.map((f) => f.seq)).toEqual([2, 3, 8, 9, 10, 11]);
    expect(rest.slice(0, 2).map((f) => f.token)).toEqual(['old-2', 'old-3']);
    client.close();
    expect(await h.metrics()).toMatch(/^gateway_ws_resumes_total\{source="frame",outcome="ok"\} 1$/m);
  });

  it('treats a session with nothing logged as nothing missed, and refuses a bad last_seq', async () => {
    const client = await h.connect('s-unknown?last_seq=7');
    client.send({ type: 'user_message', content: 'hi' });
    const frames = await client.until((f) => f.is_final === true);
    expect(frames.some((f) => f.type === 'error')).toBe(false);
    client.send({ type: 'resume', last_seq: -1 });
    expect((await client.until((f) => f.type === 'error')).at(-1)).toMatchObject({ code: 'GW_ERR_WS_INVALID_FRAME' });
    client.close();
    expect(await h.metrics()).toMatch(/^gateway_ws_resumes_total\{source="url",outcome="not_found"\} 1$/m);
    const bad = new FrameClient(`${h.ws}/api/v1/ws/s-unknown?last_seq=abc`, {}, { timeoutMs: 5_000 });
    await expect(bad.open()).rejects.toMatchObject({ statusCode: 400 });
  });

  it('re-sends pending approvals as tool_call frames on a connection without last_seq, before any turn', async () => {
    const s = h.runtime.session('s-approvals');
    s.approvals.push({
      request_id: 'call_9',
      request_type: 'tool',
      subject: 'write_file',
      details: { arguments: { path: 'a.py', content: 'x' } },
      reason: 'File modification requires user approval',
      created_at: new Date().toISOString(),
      call_id: 'call_9',
      tool_name: 'write_file',
      arguments: { path: 'a.py', content: 'x' },
    });
    const client = await h.connect('s-approvals');
    const [resent] = await client.until((f) => f.type === 'tool_call');
    expect(resent).toEqual({
      type: 'tool_call',
      call_id: 'call_9',
      tool_name: 'write_file',
      arguments: { path: 'a.py', content: 'x' },
      requires_approval: true,
      is_final: true,
      metadata: { resent: true },
    });
    client.close();
    // not with last_seq: the replay carries what was missed
    const resuming = await h.connect('s-approvals?last_seq=0');
    resuming.send({ type: 'ping' });
    await resuming.until((f) => f.type === 'pong');
    expect(resuming.frames.filter((f) => f.type === 'tool_call')).toEqual([]);
    resuming.close();
    expect(await h.metrics()).toMatch(/^gateway_ws_approvals_resent_total 1$/m);
  });

  it("closes someone else's session with 4403 and replays nothing", async () => {
    const s = h.runtime.session('s-foreign', 'someone-else');
    s.log.push(...logged(2));
    const client = await h.connect('s-foreign?last_seq=0');
    expect(await client.closed()).toBe(4403);
    expect(client.frames).toEqual([]);
    expect(h.runtime.callsTo('GET', '/sessions/s-foreign/frames')).toEqual([]);
  });
});

describe('a replay that stops inside a running turn (its runtime died or shut down while following it)', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ GATEWAY__AGENT_STREAM_TIMEOUT: '1' });
  });
  afterAll(() => h?.close());

  /** A held turn whose first client dropped after its first frame: what a resuming client comes back to. */
  async function droppedTurn(sessionId: string) {
    const held = heldTurn();
    h.runtime.script = held.script;
    const first = await h.connect(sessionId);
    first.send({ type: 'user_message', content: 'long one' });
    await first.until((f) => f.token === 'Thinking');
    first.ws.terminate();
    const turn = await held.started;
    await expect.poll(() => turn.clientGone.aborted).toBe(true);
    return held;
  }

  /** gateway_ws_resumes_total{source,outcome}, 0 when not yet counted. */
  const resumes = async (source: string, outcome: string): Promise<number> =>
    Number(
      new RegExp(`^gateway_ws_resumes_total\\{source="${source}",outcome="${outcome}"\\} (\\d+)$`, 'm').exec(await h.metrics())?.[1] ?? 0,
    );

  it.each(['break', 'end'] as const)('is followed from its last frame to the turn final frame (follow stream cut: %s)', async (how) => {
    const sessionId = `s-cut-${how}`;
    const followedBefore = await resumes('url', 'followed');
    const held = await droppedTurn(sessionId);
    h.runtime.cutFollows = { count: 1, how };
    const client = await h.connect(`${sessionId}?last_seq=0`);
    // the gateway follows the log again from seq 1, where the cut replay stopped
    await expect.poll(() => h.runtime.callsTo('GET', `/sessions/${sessionId}/frames`).length).toBe(2);
    held.release();
    const frames = await client.until((f) => f.is_final === true);
    expect(frames.map((f) => [f.seq, f.token ?? f.content])).toEqual([
      [1, 'Thinking'],
      [2, 'Thinking done'],
    ]);
    expect(frames.some((f) => f.type === 'error')).toBe(false);
    await expect.poll(() => resumes('url', 'followed')).toBe(followedBefore + 1);
    expect(h.runtime.callsTo('GET', `/sessions/${sessionId}/frames`).map((c) => c.url)).toEqual([
      `/sessions/${sessionId}/frames?after=0`,
      `/sessions/${sessionId}/frames?after=1`,
    ]);
    // the connection goes on
    h.runtime.script = answerTurn;
    client.send({ type: 'user_message', content: 'next' });
    expect((await client.until((f) => f.is_final === true, frames.length)).at(-1)).toMatchObject({ content: 'You said next', seq: 6 });
    client.close();
  });

  it('ends the client turn with GW_ERR_STREAM_INTERRUPTED when no runtime serves the rest within GATEWAY__AGENT_STREAM_TIMEOUT', async () => {
    const counted = [
      ['url', 'followed'],
      ['url', 'failed'],
      ['turn', 'failed'],
    ] as const;
    const before = await Promise.all(counted.map(([source, outcome]) => resumes(source, outcome)));
    const held = await droppedTurn('s-cut-gone');
    h.runtime.cutFollows = { count: 1_000, how: 'break' };
    const client = await h.connect('s-cut-gone?last_seq=0');
    const frames = await client.until((f) => f.is_final === true);
    expect(frames.map((f) => f.seq ?? f.code)).toEqual([1, 'GW_ERR_STREAM_INTERRUPTED']);
    expect(frames.at(-1)).toMatchObject({ type: 'error', is_final: true });
    expect(h.runtime.callsTo('GET', '/sessions/s-cut-gone/frames').length).toBeGreaterThan(2);
    h.runtime.cutFollows = { count: 0, how: 'break' };
    held.release();
    client.close();
    // this replay failed, and so did the follow it handed over to; none was counted as followed
    const after = await Promise.all(counted.map(([source, outcome]) => resumes(source, outcome)));
    expect(after.map((n, i) => n - before[i]!)).toEqual([0, 1, 1]);
  });
});
