/**
 * More than one instance behaves like one: two runtimes (and two gateways) against one PostgreSQL
 * (and Redis, when the run has one). Turns of one session sent to both runtimes at once are
 * serialized by the session lease: none interleaves, none is lost, frames are numbered without
 * gaps or repeats across instances.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { parseSse } from '@codelab/service-kit';
import { TEST_INTERNAL_KEY } from '@codelab/service-kit/testing';
import { startStack, type Stack } from '../helpers/stack.ts';

describe('two runtimes on one session', () => {
  let stack: Stack;
  beforeAll(async () => {
    const redisUrl = inject('redisUrl');
    stack = await startStack({
      databaseUrl: inject('databaseUrl'),
      runtimes: 2,
      gateways: 2,
      env: { runtime: redisUrl ? { AGENT_RUNTIME__REDIS_URL: redisUrl } : {} },
    });
  });
  afterAll(() => stack?.close());

  it('serializes concurrent turns of one session across instances: no interleaving, no lost message', async () => {
    const sessionId = `hammer-${randomUUID()}`;
    const n = 24;
    const turn = async (i: number): Promise<Record<string, unknown>[]> => {
      const res = await fetch(`${stack.url.runtimes[i % 2]}/agent/message/stream`, {
        method: 'POST',
        headers: { 'x-internal-auth': TEST_INTERNAL_KEY, 'content-type': 'application/json' },
        body: JSON.stringify({
          session_id: sessionId,
          message: { type: 'user_message', content: `message ${i} [[mock:reply answer ${i} in five tokens]]` },
        }),
      });
      expect(res.status).toBe(200);
      const chunks: Record<string, unknown>[] = [];
      for await (const ev of parseSse(res.body as unknown as AsyncIterable<Uint8Array>))
        chunks.push(JSON.parse(ev.data) as Record<string, unknown>);
      return chunks;
    };
    const turns = await Promise.all(Array.from({ length: n }, (_, i) => turn(i)));

    for (const [i, chunks] of turns.entries()) {
      expect(chunks.at(-1), `turn ${i}`).toMatchObject({
        type: 'assistant_message',
        is_final: true,
        content: `answer ${i} in five tokens`,
      });
      // a turn's frames are numbered consecutively: nothing of another turn came in between
      const seqs = chunks.map((c) => c.seq as number);
      expect(seqs).toEqual(seqs.map((_, k) => seqs[0]! + k));
    }
    const all = turns.flatMap((chunks) => chunks.map((c) => c.seq as number)).sort((a, b) => a - b);
    expect(all).toEqual(all.map((_, k) => k + 1));

    const res = await fetch(`${stack.url.runtime}/sessions/${sessionId}/history`, { headers: { 'x-internal-auth': TEST_INTERNAL_KEY } });
    const { messages } = (await res.json()) as { messages: { role: string; content: string; seq: number }[] };
    expect(messages).toHaveLength(2 * n);
    expect(messages.map((m) => m.seq)).toEqual(messages.map((_, k) => k + 1));
    for (let k = 0; k < n; k++) {
      const user = messages[2 * k]!;
      const answer = messages[2 * k + 1]!;
      expect(user.role).toBe('user');
      const i = Number(/^message (\d+)/.exec(user.content)![1]);
      expect(answer).toMatchObject({ role: 'assistant', content: `answer ${i} in five tokens` });
    }
    expect(new Set(messages.filter((m) => m.role === 'user').map((m) => m.content)).size).toBe(n);
  }, 60_000);
});
