/**
 * Upstream's auto-session: a `new_…` path id asks the runtime to create the session at the first
 * turn (`new_session`, no session id); the `session_info` chunk names it, and every later call of
 * the connection (turns, cancel, resume) uses the real id.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { answerTurn, heldTurn } from './stub-runtime.ts';
import { startHarness, type Harness } from './harness.ts';

describe('new_ session ids', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness();
  });
  afterAll(() => h?.close());

  it('creates the session at the first turn, forwards session_info, then uses the real id', async () => {
    const client = await h.connect('new_abc');
    client.send({ type: 'cancel' }); // nothing exists yet: nothing to cancel, and the runtime is not asked
    expect((await client.until((f) => f.type === 'error'))[0]).toMatchObject({ code: 'GW_ERR_NOTHING_TO_CANCEL' });
    client.send({ type: 'user_message', content: 'first' });
    const first = await client.until((f) => f.is_final === true, 1);
    expect(first[0]).toEqual({ type: 'session_info', session_id: 'sess-1', is_final: false, seq: 1 });
    expect(first.at(-1)).toMatchObject({ content: 'You said first', seq: 5 });
    const sessionId = first[0]!.session_id as string;

    const held = heldTurn();
    h.runtime.script = held.script;
    client.send({ type: 'user_message', content: 'second' });
    await client.until((f) => f.token === 'Thinking', 1 + first.length);
    client.send({ type: 'cancel' });
    await client.until(
      (f) => f.is_final === true && (f.metadata as { cancelled?: boolean } | undefined)?.cancelled === true,
      1 + first.length,
    );
    h.runtime.script = answerTurn;
    client.send({ type: 'resume', last_seq: 4 });
    client.send({ type: 'user_message', content: 'third' });
    await client.until((f) => f.content === 'You said third');
    // everything after seq 4 reached this connection already: the replay repeats none of it
    const seqs = client.frames.filter((f) => typeof f.seq === 'number').map((f) => f.seq as number);
    expect(seqs).toEqual(Array.from({ length: seqs.length }, (_, i) => i + 1));

    const turns = h.runtime.callsTo('POST', '/agent/message/stream').map((c) => c.body as Record<string, unknown>);
    expect(turns).toEqual([
      { new_session: true, message: { type: 'user_message', content: 'first', role: 'user' } },
      { session_id: sessionId, message: { type: 'user_message', content: 'second', role: 'user' } },
      { session_id: sessionId, message: { type: 'user_message', content: 'third', role: 'user' } },
    ]);
    expect(h.runtime.callsTo('POST', `/sessions/${sessionId}/cancel`)).toHaveLength(1);
    expect(h.runtime.callsTo('GET', `/sessions/${sessionId}/frames`).map((c) => c.url)).toEqual([`/sessions/${sessionId}/frames?after=4`]);
    // no access check, no pending approvals, nothing addressed to the temporary id
    expect(h.runtime.calls.filter((c) => c.url.includes('new_abc'))).toEqual([]);
    client.close();
  });

  it('skips a resume asked for before the session exists', async () => {
    const client = await h.connect('new_later?last_seq=3');
    client.send({ type: 'ping' });
    await client.until((f) => f.type === 'pong');
    client.close();
    expect(await h.metrics()).toMatch(/^gateway_ws_resumes_total\{source="url",outcome="skipped"\} 1$/m);
  });
});
