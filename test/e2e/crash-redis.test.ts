/**
 * A runtime killed (SIGKILL) in the middle of a turn, with two gateways and two runtime processes
 * sharing PostgreSQL and Redis, each gateway reaching its own runtime first and the other one when
 * it is gone (a load balancer's failover): every client following the turn, the one whose stream
 * broke and one that resumes on the other gateway, gets the same single numbered final frame
 * (RT_ERR_TURN_INTERRUPTED), once the dead turn's lease lapses; the user's message stays stored,
 * the partial answer does not, and the session goes on.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { missingServer } from '@codelab/service-kit/testing';
import { FrameClient, startProcessStack, type ProcessStack } from '../helpers/stack.ts';

type Frame = Record<string, unknown>;
const redisUrl = inject('redisUrl');

describe.skipIf(missingServer('Redis', 'TEST_REDIS_URL', redisUrl))(
  'a runtime killed in the middle of a turn (two gateways, two runtimes, Redis)',
  () => {
    let stack: ProcessStack;
    let token: string;
    beforeAll(async () => {
      stack = await startProcessStack({
        databaseUrl: inject('databaseUrl'),
        runtimes: 2,
        gateways: 2,
        failover: true,
        env: { runtime: { AGENT_RUNTIME__REDIS_URL: redisUrl!, AGENT_RUNTIME__SESSION_LEASE_TTL: '1' } },
      });
      token = await stack.token();
    }, 120_000);
    afterAll(() => stack?.close());

    const connect = async (gateway: number, sessionId: string, lastSeq?: number): Promise<FrameClient> => {
      const c = new FrameClient(
        `${stack.url.wss[gateway]}/api/v1/ws/${sessionId}${lastSeq !== undefined ? `?last_seq=${lastSeq}` : ''}`,
        { authorization: `Bearer ${token}` },
        { timeoutMs: 30_000 },
      );
      await c.open();
      return c;
    };

    it('ends the turn for every follower with one RT_ERR_TURN_INTERRUPTED frame; the message is kept, the partial answer is not', async () => {
      const sessionId = `crash-${randomUUID()}`;
      const first = await connect(0, sessionId); // gateway 0 reaches runtime 0 first: the turn runs there
      first.send({ type: 'user_message', content: 'explain everything [[mock:words 400]] [[mock:token_delay 20]]' });
      await first.until((f) => typeof f.token === 'string' && (f.seq as number) >= 6);
      await stack.runtimes[0]!.kill('SIGKILL');
      // another client resumes from an earlier frame on the other gateway while the lease still runs
      const second = await connect(1, sessionId, 3);
      const [a, b] = await Promise.all([first.until((f) => f.is_final === true), second.until((f) => f.is_final === true)]);

      const end = a.at(-1)!;
      expect(end).toMatchObject({ type: 'error', code: 'RT_ERR_TURN_INTERRUPTED', is_final: true, metadata: { interrupted: true } });
      expect(b.at(-1)).toEqual(end);
      const seqs = a.map((f) => f.seq as number);
      expect(seqs).toEqual(seqs.map((_, i) => i + 1)); // no gap, no repeat: the closing frame follows the last one logged
      expect(b.map((f) => f.seq)).toEqual(seqs.filter((s) => s > 3));
      expect(b.slice(0, -1).map((f) => f.token)).toEqual(
        a
          .filter((f) => (f.seq as number) > 3)
          .slice(0, -1)
          .map((f) => f.token),
      );
      expect(first.frames.filter((f) => f.is_final === true)).toHaveLength(1);
      expect(first.frames.some((f) => f.type === 'error' && f.code !== 'RT_ERR_TURN_INTERRUPTED')).toBe(false);

      // a client that comes later gets the same end; one that has it gets nothing more
      const third = await connect(1, sessionId, 5);
      expect((await third.until((f) => f.is_final === true)).at(-1)).toEqual(end);

      const res = await fetch(`${stack.url.gateways[1]}/api/v1/sessions/${sessionId}/history`, {
        headers: { authorization: `Bearer ${token}` },
      });
      const { messages } = (await res.json()) as { messages: { role: string; content: string }[] };
      expect(messages.map((m) => m.role)).toEqual(['user']);

      // the session goes on, numbered after the closing frame, on the runtime still alive
      third.send({ type: 'user_message', content: 'again [[mock:words 3]]' });
      const next = await third.until((f) => f.is_final === true && f.type === 'assistant_message', third.frames.length);
      expect(next[0]!.seq).toBe((end.seq as number) + 1);
      expect(next.at(-1)).toMatchObject({ content: 'w0 w1 w2' });

      // replaying the whole session shows each turn's single final frame
      const replay = await connect(0, sessionId, 0);
      const all: Frame[] = await replay.until((f) => f.seq === next.at(-1)!.seq);
      expect(all.filter((f) => f.is_final === true).map((f) => f.code ?? f.type)).toEqual(['RT_ERR_TURN_INTERRUPTED', 'assistant_message']);
      const metrics = await (await fetch(`${stack.url.runtimes[1]}/metrics`)).text();
      expect(metrics).toMatch(/^runtime_turns_interrupted_total\{detected_by="follower"\} 1$/m);
      for (const c of [first, second, third, replay]) c.close();
    }, 90_000);
  },
);
