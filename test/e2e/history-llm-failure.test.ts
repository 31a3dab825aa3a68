/**
 * An LLM that fails mid-turn, end to end through the real services: the user reads one readable
 * sentence with the stable code RT_ERR_LLM_UNAVAILABLE, never the raw cause (undici's "other side
 * closed", the proxy's error text), and what the user sent is kept.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import pino from 'pino';
import { FrameClient, startStack, type Stack } from '../helpers/stack.ts';

type Frame = Record<string, unknown>;

const RAW = /other side closed|LLM stream|LLM proxy|\[DONE\]|upstream|socket|Error:/i;

describe('an LLM failure as the user reads it', () => {
  let stack: Stack;
  let token: string;
  const logs: Record<string, unknown>[] = [];
  beforeAll(async () => {
    const logger = pino({ level: 'warn' }, { write: (line: string) => void logs.push(JSON.parse(line) as Record<string, unknown>) });
    stack = await startStack({ databaseUrl: inject('databaseUrl'), logger });
    token = await stack.token();
  });
  afterAll(() => stack?.close());

  const open = async () => {
    const sessionId = `llm-fail-${randomUUID()}`;
    const client = new FrameClient(`${stack.url.ws}/api/v1/ws/${sessionId}`, { authorization: `Bearer ${token}` });
    await client.open();
    let seen = 0;
    const turn = async (frame: unknown): Promise<Frame[]> => {
      client.send(frame);
      const frames = await client.until((f) => f.is_final === true, seen);
      seen += frames.length;
      return frames;
    };
    return { sessionId, client, turn };
  };
  const history = async (sessionId: string) =>
    (
      (await (
        await fetch(`${stack.url.gateway}/api/v1/sessions/${sessionId}/history`, { headers: { authorization: `Bearer ${token}` } })
      ).json()) as { messages: { role: string; content: string }[] }
    ).messages;

  it.each([
    [
      'the connection drops mid-answer',
      '[[mock:disconnect_after 3]]',
      'The language model stopped answering mid-answer; your message is kept, send it again.',
    ],
    [
      'the stream ends with an error event',
      '[[mock:error_after 3 502]]',
      'The language model stopped answering mid-answer; your message is kept, send it again.',
    ],
    [
      'the proxy refuses for load before answering',
      '[[mock:error 503]]',
      'The language model is overloaded right now; your message is kept, send it again.',
    ],
  ])('%s: a readable sentence with RT_ERR_LLM_UNAVAILABLE, the message kept', async (_name, directive, sentence) => {
    const c = await open();
    const content = `explain closures ${directive}`;
    const frames = await c.turn({ type: 'user_message', content });
    const error = frames.at(-1)!;
    expect(error).toMatchObject({ type: 'error', code: 'RT_ERR_LLM_UNAVAILABLE', is_final: true, content: sentence, error: sentence });
    expect(String(error.content)).not.toMatch(RAW);
    expect(await history(c.sessionId)).toEqual([expect.objectContaining({ role: 'user', content })]);
    // the conversation goes on
    const next = await c.turn({ type: 'user_message', content: 'explain closures again' });
    expect(next.at(-1)).toMatchObject({ type: 'assistant_message', is_final: true });
    c.client.close();
  });

  it('a failure after a tool result keeps the result and says how to go on', async () => {
    const c = await open();
    // the tool call streams whole; the answer to its result breaks off after 12 tokens
    const frames = await c.turn({
      type: 'user_message',
      content: 'explain src/a.ts [[mock:tool_call read_file {"path":"src/a.ts"}]] [[mock:disconnect_after 12]]',
    });
    const call = frames.at(-1)!;
    expect(call).toMatchObject({ type: 'tool_call', tool_name: 'read_file' });
    const after = await c.turn({ type: 'tool_result', call_id: call.call_id, result: 'export const a = 1;' });
    const sentence = 'The language model stopped answering mid-answer; your answer is kept, send a message to continue.';
    expect(after.at(-1)).toMatchObject({
      type: 'error',
      code: 'RT_ERR_LLM_UNAVAILABLE',
      is_final: true,
      content: sentence,
      error: sentence,
    });
    expect(after.filter((f) => f.token).length).toBeGreaterThan(0); // it had started
    expect((await history(c.sessionId)).map((m) => m.role)).toEqual(['user', 'assistant', 'tool']);
    c.client.close();
  });

  it("the session's LLM metrics keep the sentence too; the raw cause goes to the log", async () => {
    const c = await open();
    await c.turn({ type: 'user_message', content: 'explain closures [[mock:disconnect_after 2]]' });
    const line = logs.find((l) => l.msg === 'LLM call failed mid-turn' && l.session_id === c.sessionId);
    expect(line).toMatchObject({ llm_failure: 'interrupted', err: { message: expect.stringMatching(/other side closed|\[DONE\]/) } });
    // events are written in batches: wait until the session's are there
    const failed = async (): Promise<unknown> => {
      const res = await fetch(`${stack.url.gateway}/api/v1/events/metrics/session/${c.sessionId}`, {
        headers: { authorization: `Bearer ${token}` },
      });
      if (res.status !== 200) return `status ${res.status}`;
      const metrics = (await res.json()) as { requests: { success: boolean; error: string | null }[] };
      return metrics.requests.filter((r) => !r.success);
    };
    await expect
      .poll(failed, { timeout: 15_000 })
      .toEqual([expect.objectContaining({ error: 'The language model stopped answering mid-answer' })]);
    c.client.close();
  });
});
