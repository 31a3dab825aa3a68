/**
 * The embedded single-runtime mode (no Redis: the frame log is the runtime's memory) when the
 * runtime is killed (SIGKILL) in the middle of a turn and started again: the log is gone, but the
 * session row still says a turn was running and which frame numbers it had reserved. The client
 * whose stream broke (its gateway keeps trying to follow the log) and a client that reconnects
 * with the last_seq it had when the runtime died both get the same single numbered
 * RT_ERR_TURN_INTERRUPTED final frame, numbered after every frame the dead turn could have sent;
 * the next turn is numbered after it. Either of them may be the one whose follow closes the turn.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { FrameClient, startProcessStack, type ProcessStack } from '../helpers/stack.ts';

describe('a runtime killed in the middle of a turn and started again (no Redis)', () => {
  let stack: ProcessStack;
  let token: string;
  beforeAll(async () => {
    stack = await startProcessStack({
      databaseUrl: inject('databaseUrl'),
      runtimes: 1,
      gateways: 2,
      env: { runtime: { AGENT_RUNTIME__SESSION_LEASE_TTL: '1' }, gateway: { GATEWAY__AGENT_STREAM_TIMEOUT: '60' } },
    });
    token = await stack.token();
  }, 120_000);
  afterAll(() => stack?.close());

  const connect = async (gateway: number, sessionId: string, lastSeq?: number): Promise<FrameClient> => {
    const c = new FrameClient(
      `${stack.url.wss[gateway]}/api/v1/ws/${sessionId}${lastSeq !== undefined ? `?last_seq=${lastSeq}` : ''}`,
      { authorization: `Bearer ${token}` },
      { timeoutMs: 60_000 },
    );
    await c.open();
    return c;
  };

  it('gives the broken client and a resuming one the same final frame after the restart, numbered after every frame sent', async () => {
    const sessionId = `crash-mem-${randomUUID()}`;
    const first = await connect(0, sessionId);
    first.send({ type: 'user_message', content: 'explain everything [[mock:words 400]] [[mock:token_delay 20]]' });
    await first.until((f) => typeof f.token === 'string' && (f.seq as number) >= 6);
    const runtime = stack.runtimes[0]!;
    await runtime.kill('SIGKILL');
    // the last frame this client had when the runtime died: read now, while no runtime runs. After
    // the restart, first's gateway may already have relayed the closing frame (it retries the frame
    // log while the runtime is down, and may reach the new one before restart() sees it healthy); a
    // client resuming after the closing frame rightly gets nothing more.
    const seen = Math.max(...first.frames.map((f) => (f.seq as number) ?? 0));
    expect(first.frames.some((f) => f.is_final === true)).toBe(false);
    await runtime.restart();
    const second = await connect(1, sessionId, seen);
    const [a, b] = await Promise.all([first.until((f) => f.is_final === true), second.until((f) => f.is_final === true)]);

    const end = a.at(-1)!;
    expect(end).toMatchObject({ type: 'error', code: 'RT_ERR_TURN_INTERRUPTED', is_final: true });
    expect(end.seq as number).toBeGreaterThan(seen);
    expect(b).toEqual([end]);
    expect(first.frames.filter((f) => f.is_final === true)).toEqual([end]);

    const res = await fetch(`${stack.url.gateways[1]}/api/v1/sessions/${sessionId}/history`, {
      headers: { authorization: `Bearer ${token}` },
    });
    const { messages } = (await res.json()) as { messages: { role: string }[] };
    expect(messages.map((m) => m.role)).toEqual(['user']);

    second.send({ type: 'user_message', content: 'again [[mock:words 3]]' });
    const next = await second.until((f) => f.is_final === true && f.type === 'assistant_message', second.frames.length);
    expect(next[0]!.seq).toBe((end.seq as number) + 1);
    expect(next.at(-1)).toMatchObject({ content: 'w0 w1 w2' });
    for (const c of [first, second]) c.close();
  }, 120_000);
});
