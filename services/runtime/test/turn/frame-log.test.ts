/**
 * One suite, run against both frame logs (this process's memory, and Redis when TEST_REDIS_URL is
 * set): what a turn appends and a follower reads back, the running flag, trimming, `appendOnce`,
 * and the fence that refuses the frames of a lease older than the log's last claim. Every session
 * id is new, so runs sharing a Redis never see each other's frames. Nothing here waits for time:
 * followers are awaited until they end or have what they should.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { Redis } from 'ioredis';
import { missingServer, silentLogger } from '@codelab/service-kit/testing';
import { MemoryFrameLog, RedisFrameLog, type FrameLog, type LoggedFrame, type Settle } from '../../src/turn/frame-log.ts';

const redisUrl = inject('redisUrl');

interface Kind {
  name: string;
  skip: boolean;
  /** followBlockMs: how long a Redis follower's blocking reads wait (the memory log wakes its followers itself). */
  make: (maxFrames: number, followBlockMs?: number) => FrameLog;
}

const redisClients: Redis[] = [];
afterAll(() => {
  for (const r of redisClients) r.disconnect();
});

const kinds: Kind[] = [
  { name: 'MemoryFrameLog', skip: false, make: (maxFrames) => new MemoryFrameLog({ maxFrames }) },
  {
    name: 'RedisFrameLog',
    skip: missingServer('Redis', 'TEST_REDIS_URL', redisUrl),
    make: (maxFrames, followBlockMs) => {
      const redis = new Redis(redisUrl!);
      redisClients.push(redis);
      return new RedisFrameLog(redis, {
        maxFrames,
        retentionSeconds: 600,
        runningTtlMs: 60_000,
        logger: silentLogger(),
        onError: () => undefined,
        followBlockMs,
      });
    },
  },
];

const frame = (seq: number, final = false): LoggedFrame => ({
  seq,
  data: JSON.stringify({ type: 'assistant_message', token: `t${seq}`, is_final: final, seq }),
  final,
});

async function collect(gen: AsyncGenerator<LoggedFrame>): Promise<number[]> {
  const seqs: number[] = [];
  for await (const f of gen) seqs.push(f.seq);
  return seqs;
}

/** A follower in the background: the seqs it got so far, and its end. */
function following(log: FrameLog, sessionId: string, signal = new AbortController().signal): { got: number[]; done: Promise<void> } {
  const got: number[] = [];
  const done = (async () => {
    for await (const f of log.follow(sessionId, 0, signal)) got.push(f.seq);
  })();
  return { got, done };
}

/** Appends frames `from`..`to` (the last one final when asked) and waits until they are written. */
async function appendAll(log: FrameLog, sessionId: string, from: number, to: number, finalAtEnd = false): Promise<void> {
  for (let seq = from; seq <= to; seq++) await log.append(sessionId, frame(seq, finalAtEnd && seq === to));
  await log.flush();
}

for (const kind of kinds) {
  describe.skipIf(kind.skip)(kind.name, () => {
    const logs: FrameLog[] = [];
    const make = (maxFrames = 100, followBlockMs?: number): FrameLog => {
      const log = kind.make(maxFrames, followBlockMs);
      logs.push(log);
      return log;
    };
    afterAll(async () => {
      for (const log of logs) await log.close();
    });

    describe('append and follow', () => {
      it('gives a follower the frames after the seq it saw, then ends when no turn runs', async () => {
        const log = make();
        const sessionId = `fl-${randomUUID()}`;
        await appendAll(log, sessionId, 1, 5, true);
        expect(await collect(log.follow(sessionId, 2, new AbortController().signal))).toEqual([3, 4, 5]);
        expect(await collect(log.follow(sessionId, 5, new AbortController().signal))).toEqual([]);
        expect(await collect(log.follow(`fl-${randomUUID()}`, 0, new AbortController().signal))).toEqual([]);
      });

      it('answers the last frame as the tail, and none for a session it never saw', async () => {
        const log = make();
        const sessionId = `fl-${randomUUID()}`;
        await appendAll(log, sessionId, 1, 3);
        expect(await log.tail(sessionId)).toEqual({ seq: 3, final: false });
        await appendAll(log, sessionId, 4, 4, true);
        expect(await log.tail(sessionId)).toEqual({ seq: 4, final: true });
        expect(await log.tail(`fl-${randomUUID()}`)).toBeUndefined();
      });

      it('streams the frames of a running turn live to a follower, which ends once the flag drops', async () => {
        const log = make();
        const sessionId = `fl-${randomUUID()}`;
        log.setRunning(sessionId, true);
        await appendAll(log, sessionId, 1, 2);
        const { got, done } = following(log, sessionId);
        await expect.poll(() => got, { timeout: 20_000 }).toEqual([1, 2]);
        await appendAll(log, sessionId, 3, 4);
        await expect.poll(() => got, { timeout: 20_000 }).toEqual([1, 2, 3, 4]);
        await log.append(sessionId, frame(5, true));
        log.setRunning(sessionId, false);
        await log.flush();
        await done;
        expect(got).toEqual([1, 2, 3, 4, 5]);
      });

      it("ends once a turn's final frame is followed by the flag's drop, without waiting out a blocking read", async () => {
        // blocking reads of 10 minutes: a follower that blocked a whole read after the final frame would outlive the test
        const log = make(100, 600_000);
        const sessionId = `fl-${randomUUID()}`;
        log.setRunning(sessionId, true);
        await appendAll(log, sessionId, 1, 3, true);
        const { got, done } = following(log, sessionId);
        // the follower has the final frame while the flag still says running (the turn's last commit is under way)
        await expect.poll(() => got, { timeout: 20_000 }).toEqual([1, 2, 3]);
        log.setRunning(sessionId, false);
        await log.flush();
        await done;
        expect(got).toEqual([1, 2, 3]);
      });

      it('goes on with the next turn when the flag stays up after a final frame (the next turn started)', async () => {
        const log = make(100, 600_000);
        const sessionId = `fl-${randomUUID()}`;
        log.setRunning(sessionId, true);
        await appendAll(log, sessionId, 1, 2, true);
        const { got, done } = following(log, sessionId);
        await expect.poll(() => got, { timeout: 20_000 }).toEqual([1, 2]);
        await appendAll(log, sessionId, 3, 4, true);
        log.setRunning(sessionId, false);
        await log.flush();
        await done;
        expect(got).toEqual([1, 2, 3, 4]);
      });

      it('stops following when the signal aborts, even while a turn runs', async () => {
        const log = make();
        const sessionId = `fl-${randomUUID()}`;
        log.setRunning(sessionId, true);
        await appendAll(log, sessionId, 1, 1);
        const ac = new AbortController();
        const { got, done } = following(log, sessionId, ac.signal);
        await expect.poll(() => got, { timeout: 20_000 }).toEqual([1]);
        ac.abort();
        await done;
        log.setRunning(sessionId, false);
        await log.flush();
      });

      it('asks settle once nothing runs and the follower saw no final frame, and ends with the frame it makes up', async () => {
        const log = make();
        const sessionId = `fl-${randomUUID()}`;
        await appendAll(log, sessionId, 1, 3); // a turn that never ended
        const asked: unknown[] = [];
        const settle: Settle = async (tail) => {
          asked.push(tail);
          return { seq: 4, data: '{"closing":true}', final: true, synthetic: true };
        };
        const frames: LoggedFrame[] = [];
        for await (const f of log.follow(sessionId, 1, new AbortController().signal, settle, 50)) frames.push(f);
        expect(frames.map((f) => f.seq)).toEqual([2, 3, 4]);
        expect(frames.at(-1)).toMatchObject({ synthetic: true, final: true });
        expect(asked).toEqual([{ seq: 3, final: false }]);
        // a follower that saw the turn end does not ask
        await appendAll(log, sessionId, 4, 4, true);
        asked.length = 0;
        expect(await collect(log.follow(sessionId, 1, new AbortController().signal, settle, 50))).toEqual([2, 3, 4]);
        expect(asked).toEqual([]);
      });
    });

    describe('running flag', () => {
      it('says whether a turn runs', async () => {
        const log = make();
        const sessionId = `fl-${randomUUID()}`;
        expect(await log.isRunning(sessionId)).toBe(false);
        log.setRunning(sessionId, true);
        await log.flush();
        expect(await log.isRunning(sessionId)).toBe(true);
        log.setRunning(sessionId, false);
        await log.flush();
        expect(await log.isRunning(sessionId)).toBe(false);
      });
    });

    describe('trimming', () => {
      it('keeps the newest frames, at least maxFrames of them, and drops the oldest', async () => {
        const maxFrames = 10;
        const log = make(maxFrames);
        const sessionId = `fl-${randomUUID()}`;
        const total = 300;
        await appendAll(log, sessionId, 1, total, true);
        const kept = await collect(log.follow(sessionId, 0, new AbortController().signal));
        // Redis trims whole stream nodes (MAXLEN ~, 100 entries a node): between maxFrames and a node more
        expect(kept.length).toBeGreaterThanOrEqual(maxFrames);
        expect(kept.length).toBeLessThanOrEqual(maxFrames + 100);
        expect(kept).toEqual(Array.from({ length: kept.length }, (_, i) => total - kept.length + 1 + i));
      });
    });

    describe('appendOnce', () => {
      it('keeps a closing frame once however many closers append it, and never behind the log', async () => {
        const log = make();
        const sessionId = `fl-${randomUUID()}`;
        await appendAll(log, sessionId, 1, 3);
        const results = await Promise.all([1, 2, 3].map(() => log.appendOnce(sessionId, frame(4, true))));
        expect(results.filter(Boolean)).toHaveLength(1);
        expect(await log.appendOnce(sessionId, frame(2, true))).toBe(false);
        expect(await collect(log.follow(sessionId, 0, new AbortController().signal))).toEqual([1, 2, 3, 4]);
      });
    });

    describe('fencing by lease token', () => {
      it('refuses the frames of an older token once a newer one claimed the log, and keeps the newer and unfenced ones', async () => {
        const log = make();
        const sessionId = `fl-${randomUUID()}`;
        let oldRefused = 0;
        let newRefused = 0;
        const old = { token: '100', onRefused: () => oldRefused++ };
        const fresh = { token: '200', onRefused: () => newRefused++ };
        await log.claim(sessionId, old.token);
        await log.append(sessionId, frame(1), old);
        await log.append(sessionId, frame(2), old);
        await log.flush();
        expect(oldRefused).toBe(0);
        // the session is taken over: the taker claims with its greater token, then closes the old turn
        await log.claim(sessionId, fresh.token);
        await log.append(sessionId, frame(3), old); // the old turn did not know yet
        await log.flush();
        expect(await log.appendOnce(sessionId, frame(3, true))).toBe(true);
        await log.append(sessionId, frame(4), fresh);
        await log.append(sessionId, frame(5), old);
        await log.append(sessionId, frame(5, true), fresh);
        await log.flush();
        expect(oldRefused).toBe(2);
        expect(newRefused).toBe(0);
        const kept: LoggedFrame[] = [];
        for await (const f of log.follow(sessionId, 0, new AbortController().signal)) kept.push(f);
        expect(kept.map((f) => [f.seq, f.final])).toEqual([
          [1, false],
          [2, false],
          [3, true],
          [4, false],
          [5, true],
        ]);
      });

      it('never lowers a claim: a late claim of an older lease fences nothing off', async () => {
        const log = make();
        const sessionId = `fl-${randomUUID()}`;
        let refused = 0;
        await log.claim(sessionId, '300');
        await log.claim(sessionId, '299');
        await log.append(sessionId, frame(1), { token: '300', onRefused: () => refused++ });
        await log.append(sessionId, frame(2), { token: '299', onRefused: () => refused++ });
        await log.flush();
        expect(refused).toBe(1);
        expect(await log.tail(sessionId)).toEqual({ seq: 1, final: false });
      });

      it('ignores running-flag changes of an older token: a stopped turn cannot clear the flag of the turn that took over', async () => {
        const log = make();
        const sessionId = `fl-${randomUUID()}`;
        await log.claim(sessionId, '10');
        log.setRunning(sessionId, true, '10');
        await log.claim(sessionId, '11');
        log.setRunning(sessionId, true, '11');
        log.setRunning(sessionId, false, '10');
        await log.flush();
        expect(await log.isRunning(sessionId)).toBe(true);
        log.setRunning(sessionId, false, '11');
        await log.flush();
        expect(await log.isRunning(sessionId)).toBe(false);
      });

      it('compares tokens as numbers, not as text', async () => {
        const log = make();
        const sessionId = `fl-${randomUUID()}`;
        let refused = 0;
        await log.claim(sessionId, '1000');
        await log.append(sessionId, frame(1), { token: '999', onRefused: () => refused++ });
        await log.append(sessionId, frame(1), { token: '1000', onRefused: () => refused++ });
        await log.flush();
        expect(refused).toBe(1);
        expect(await log.tail(sessionId)).toEqual({ seq: 1, final: false });
      });
    });
  });
}

describe.skipIf(kinds[1]!.skip)('RedisFrameLog retention', () => {
  it("gives a session's frames the retention, fenced or not (the fenced script sets it itself)", async () => {
    const redis = new Redis(redisUrl!);
    redisClients.push(redis);
    const log = new RedisFrameLog(redis, {
      maxFrames: 100,
      retentionSeconds: 321,
      runningTtlMs: 60_000,
      logger: silentLogger(),
      onError: () => undefined,
    });
    try {
      const fenced = `fl-${randomUUID()}`;
      await log.claim(fenced, '5');
      await log.append(fenced, frame(1), { token: '5', onRefused: () => undefined });
      const plain = `fl-${randomUUID()}`;
      await log.append(plain, frame(1));
      await log.flush();
      for (const sessionId of [fenced, plain]) {
        const ttl = await redis.ttl(`codelab:frames:${sessionId}`);
        expect(ttl).toBeGreaterThan(300);
        expect(ttl).toBeLessThanOrEqual(321);
      }
    } finally {
      await log.close();
    }
  });
});

describe.skipIf(kinds[1]!.skip)('RedisFrameLog pipelines', () => {
  const open = (redis: Redis, onError: () => void = () => undefined) =>
    new RedisFrameLog(redis, { maxFrames: 100, retentionSeconds: 600, runningTtlMs: 60_000, logger: silentLogger(), onError });

  it("sends a turn's first steps with the frames of the moment in one pipeline, each caller getting its own reply", async () => {
    const redis = new Redis(redisUrl!);
    redisClients.push(redis);
    const log = open(redis);
    const sessionId = `fl-${randomUUID()}`;
    await appendAll(log, sessionId, 1, 2, true);
    // what goes to Redis: socket writes of the client's connection
    let writes = 0;
    const socket = redis.stream;
    const write = socket.write.bind(socket) as (...args: unknown[]) => boolean;
    socket.write = ((...args: unknown[]) => {
      writes++;
      return write(...args);
    }) as typeof socket.write;
    let refused = 0;
    const [, tail, , unknown] = await Promise.all([
      log.claim(sessionId, '7'),
      log.tail(sessionId),
      log.append(sessionId, frame(3), { token: '7', onRefused: () => refused++ }),
      log.tail(`fl-${randomUUID()}`),
    ]);
    expect([tail, unknown]).toEqual([{ seq: 2, final: true }, undefined]);
    expect(writes).toBe(1);
    // the closing frame goes after what this instance appended before, once
    expect(await log.appendOnce(sessionId, frame(4, true))).toBe(true);
    expect(await log.appendOnce(sessionId, frame(4, true))).toBe(false);
    expect(await collect(log.follow(sessionId, 0, new AbortController().signal))).toEqual([1, 2, 3, 4]);
    expect(refused).toBe(0);
  });

  it("rejects a caller's command that failed; only frames the log could not keep count as its errors", async () => {
    // nothing listens there, no offline queue: every command fails at once
    const redis = new Redis('redis://127.0.0.1:1', { lazyConnect: true, enableOfflineQueue: false, retryStrategy: () => null });
    redis.on('error', () => undefined);
    redisClients.push(redis);
    let errors = 0;
    const log = open(redis, () => errors++);
    await expect(log.claim('s', '1')).rejects.toThrow();
    await expect(log.tail('s')).rejects.toThrow();
    await expect(log.appendOnce('s', frame(1, true))).rejects.toThrow();
    expect(errors).toBe(0);
    await log.append('s', frame(1));
    await log.flush();
    expect(errors).toBe(1);
  });
});
