/**
 * A turn whose runtime died (its lease lapsed, never released) ends for its followers with ONE
 * numbered RT_ERR_TURN_INTERRUPTED final frame, whoever finds it first: a client following the
 * session (`GET /sessions/:id/frames`) or the session's next turn. The dead runtime is simulated
 * in the row it leaves behind (and, with Redis, the frames it logged).
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { Redis } from 'ioredis';
import { listen, parseSse, type Database, type Service } from '@codelab/service-kit';
import { missingServer } from '@codelab/service-kit/testing';
import { createSession, newUser, openTestDb, startMockLlm, startRuntime } from '../routes/fixture.ts';

type Frame = Record<string, unknown>;

const frames = (body: string): Frame[] =>
  body
    .split('\n')
    .filter((l) => l.startsWith('data: '))
    .map((l) => JSON.parse(l.slice(6)) as Frame);

async function follow(
  runtime: Service,
  sessionId: string,
  after: number,
  headers: Record<string, string>,
  until?: number,
): Promise<Frame[]> {
  const bound = until === undefined ? '' : `&until=${until}`;
  const res = await runtime.app.inject({ method: 'GET', url: `/sessions/${sessionId}/frames?after=${after}${bound}`, headers });
  expect(res.statusCode).toBe(200);
  return frames(res.body);
}

/** What a runtime killed in the middle of a turn leaves in the session row: its lapsing turn lease. */
async function deadTurn(db: Database, sessionId: string, opts: { base: number; frameSeq: number; lapsesInMs: number }): Promise<void> {
  await db.query(
    `UPDATE sessions SET lease_owner = $2, lease_until = now() + $3 * interval '1 millisecond', frame_seq = $4 WHERE id = $1`,
    [sessionId, `deadbeef:00000000:turn:${opts.base}`, opts.lapsesInMs, opts.frameSeq],
  );
}

const metric = async (runtime: Service, name: string): Promise<string> => {
  const text = (await runtime.app.inject({ method: 'GET', url: '/metrics' })).body;
  return text.split('\n').find((l) => l.startsWith(name)) ?? '';
};

describe("interrupted turns without Redis (the frame log is this process's memory)", () => {
  let llm: Service;
  let runtime: Service;
  let db: Database;
  beforeAll(async () => {
    let llmUrl: string;
    ({ service: llm, url: llmUrl } = await startMockLlm());
    runtime = await startRuntime(inject('databaseUrl'), { AGENT_RUNTIME__SESSION_LEASE_TTL: '10', AGENT_RUNTIME__LLM_PROXY_URL: llmUrl });
    db = await openTestDb(inject('databaseUrl'));
  });
  afterAll(async () => {
    await db?.close();
    await runtime?.app.close();
    await llm?.app.close();
  });

  it("gives every follower the same RT_ERR_TURN_INTERRUPTED final frame once the dead turn's lease lapses (the log died with the runtime)", async () => {
    const user = newUser();
    const sessionId = await createSession(runtime, user.headers, 'dead');
    // the dead turn started after frame 5 and had reserved its numbers up to 1005; clients saw up to 7
    await deadTurn(db, sessionId, { base: 5, frameSeq: 1005, lapsesInMs: 400 });
    const [a, b] = await Promise.all([follow(runtime, sessionId, 7, user.headers), follow(runtime, sessionId, 5, user.headers)]);
    for (const got of [a, b]) {
      expect(got).toEqual([
        expect.objectContaining({
          type: 'error',
          code: 'RT_ERR_TURN_INTERRUPTED',
          is_final: true,
          seq: 1006,
          metadata: { interrupted: true },
        }),
      ]);
      expect(got[0]!.content).toBe(got[0]!.error);
    }
    const { rows } = await db.query('SELECT lease_owner, lease_until IS NOT NULL AS closed, frame_seq FROM sessions WHERE id = $1', [
      sessionId,
    ]);
    expect(rows[0]).toEqual({ lease_owner: null, closed: true, frame_seq: '1006' });
    // later followers get the same frame, and nothing once they have it
    expect(await follow(runtime, sessionId, 7, user.headers)).toEqual(a);
    expect(await follow(runtime, sessionId, 1006, user.headers)).toEqual([]);
    expect(await metric(runtime, 'runtime_turns_interrupted_total{detected_by="follower"}')).toMatch(/ 1$/);
  });

  it('closes a dead turn before the next turn of the session, whose frames follow its final frame', async () => {
    const user = newUser();
    const sessionId = await createSession(runtime, user.headers, 'next');
    await deadTurn(db, sessionId, { base: 5, frameSeq: 1005, lapsesInMs: -1000 });
    const res = await fetch(`${await runtimeUrl(runtime)}/agent/message/stream`, {
      method: 'POST',
      headers: { ...user.headers, 'content-type': 'application/json' },
      body: JSON.stringify({ session_id: sessionId, message: { type: 'user_message', content: 'again [[mock:reply fine, thanks]]' } }),
    });
    expect(res.headers.get('x-codelab-frame-seq')).toBe('1006');
    const turn: Frame[] = [];
    for await (const ev of parseSse(res.body as unknown as AsyncIterable<Uint8Array>)) turn.push(JSON.parse(ev.data) as Frame);
    expect(turn[0]!.seq).toBe(1007);
    expect(turn.filter((f) => f.is_final === true)).toEqual([
      expect.objectContaining({ type: 'assistant_message', content: 'fine, thanks' }),
    ]);
    // the new turn's own stream does not carry the old turn's end; a follower of the old turn gets both
    const followed = await follow(runtime, sessionId, 7, user.headers);
    expect(followed[0]).toMatchObject({ code: 'RT_ERR_TURN_INTERRUPTED', is_final: true, seq: 1006 });
    expect(followed.slice(1)).toEqual(turn);
    // `until`: the frames up to it, not one more (the gateway filling a gap before a later turn's frames)
    expect(await follow(runtime, sessionId, 7, user.headers, 1008)).toEqual(followed.slice(0, 3));
    expect(await follow(runtime, sessionId, 1006, user.headers, 1006)).toEqual([]);
    expect(await metric(runtime, 'runtime_turns_interrupted_total{detected_by="next_lease"}')).toMatch(/ 1$/);
    await expect // the reservation is given back when the lease is released, just after the stream ended
      .poll(async () => (await db.query('SELECT lease_owner, frame_seq FROM sessions WHERE id = $1', [sessionId])).rows[0])
      .toEqual({ lease_owner: null, frame_seq: String(turn.at(-1)!.seq) });
  });

  it('ends a plain turn in the commit that stores its answer: the session freed, its final frame and number kept in the row', async () => {
    const user = newUser();
    const sessionId = await createSession(runtime, user.headers, 'one-commit');
    const res = await fetch(`${await runtimeUrl(runtime)}/agent/message/stream`, {
      method: 'POST',
      headers: { ...user.headers, 'content-type': 'application/json' },
      body: JSON.stringify({ session_id: sessionId, message: { type: 'user_message', content: 'hi [[mock:reply stored with the end]]' } }),
    });
    const data: string[] = [];
    for await (const ev of parseSse(res.body as unknown as AsyncIterable<Uint8Array>)) data.push(ev.data);
    const last = JSON.parse(data.at(-1)!) as Frame;
    expect(last).toMatchObject({ type: 'assistant_message', content: 'stored with the end', is_final: true });
    const { rows } = await db.query('SELECT lease_owner, lease_until, frame_seq, final_frame FROM sessions WHERE id = $1', [sessionId]);
    expect(rows[0]).toEqual({ lease_owner: null, lease_until: null, frame_seq: String(last.seq), final_frame: data.at(-1) });
    const history = await db.query<{ role: string; content: string }>(
      'SELECT role, content FROM messages WHERE session_id = $1 ORDER BY seq',
      [sessionId],
    );
    expect(history.rows.map((m) => [m.role, m.content])).toEqual([
      ['user', 'hi [[mock:reply stored with the end]]'],
      ['assistant', 'stored with the end'],
    ]);
    expect(await follow(runtime, sessionId, 0, user.headers)).toEqual(data.map((d) => JSON.parse(d) as Frame));
    // the turn's usage and its completion event were stored in the same commit: there as soon as the stream ended
    const events = await db.query<{ event_type: string; success: boolean }>(
      "SELECT event_type, (data->>'success')::boolean AS success FROM events WHERE session_id = $1 AND event_type IN ('llm.request.completed', 'agent.processing.completed') ORDER BY created_at",
      [sessionId],
    );
    expect(events.rows).toEqual([
      { event_type: 'llm.request.completed', success: null },
      { event_type: 'agent.processing.completed', success: true },
    ]);
  });

  it('keeps the row ahead of every frame number a turn uses, reserving more as a long turn goes, and gives the rest back at its end', async () => {
    const user = newUser();
    const sessionId = await createSession(runtime, user.headers, 'long');
    const res = await fetch(`${await runtimeUrl(runtime)}/agent/message/stream`, {
      method: 'POST',
      headers: { ...user.headers, 'content-type': 'application/json' },
      body: JSON.stringify({ session_id: sessionId, message: { type: 'user_message', content: 'long [[mock:words 1200]]' } }),
    });
    const turn: Frame[] = [];
    let reservedAhead = true;
    for await (const ev of parseSse(res.body as unknown as AsyncIterable<Uint8Array>)) {
      turn.push(JSON.parse(ev.data) as Frame);
      if (turn.length === 10 || turn.length === 1100) {
        const { rows } = await db.query<{ frame_seq: string }>('SELECT frame_seq FROM sessions WHERE id = $1', [sessionId]);
        reservedAhead &&= Number(rows[0]!.frame_seq) >= (turn.at(-1)!.seq as number);
      }
    }
    expect(reservedAhead).toBe(true);
    const seqs = turn.map((f) => f.seq as number);
    expect(seqs).toEqual(seqs.map((_, i) => i + 1));
    // the lease is released just after the stream ends
    await expect
      .poll(async () => (await db.query('SELECT frame_seq FROM sessions WHERE id = $1', [sessionId])).rows[0])
      .toEqual({ frame_seq: String(seqs.at(-1)) });
  });

  it('stops a turn whose lease another instance took over (its renewals failed): it sends nothing more, not even a final frame', async () => {
    const user = newUser();
    const sessionId = await createSession(runtime, user.headers, 'zombie');
    const res = await fetch(`${await runtimeUrl(runtime)}/agent/message/stream`, {
      method: 'POST',
      headers: { ...user.headers, 'content-type': 'application/json' },
      body: JSON.stringify({
        session_id: sessionId,
        message: { type: 'user_message', content: 'long [[mock:words 500]] [[mock:token_delay 20]]' },
      }),
    });
    const turn: Frame[] = [];
    for await (const ev of parseSse(res.body as unknown as AsyncIterable<Uint8Array>)) {
      turn.push(JSON.parse(ev.data) as Frame);
      if (turn.length === 5)
        await db.query(`UPDATE sessions SET lease_owner = 'thief:00000000', lease_until = now() + interval '1 minute' WHERE id = $1`, [
          sessionId,
        ]);
    }
    expect(turn.length).toBeLessThan(200);
    expect(turn.filter((f) => f.is_final === true)).toEqual([]);
    // counted once the turn is over (just after its stream ended)
    await expect
      .poll(async () => (await runtime.app.inject({ method: 'GET', url: '/metrics' })).body)
      .toMatch(/^runtime_turns_total\{type="user_message",agent="[a-z]+",outcome="lease_lost"\} 1$/m);
    const { rows } = await db.query('SELECT lease_owner FROM sessions WHERE id = $1', [sessionId]);
    expect(rows[0]).toEqual({ lease_owner: 'thief:00000000' }); // the stopped turn did not free the session it lost
  });

  it("answers a follower whose frames the log no longer has with one RT_ERR_FRAMES_LOST frame numbered as the session's last", async () => {
    const user = newUser();
    const sessionId = await createSession(runtime, user.headers, 'lost');
    await db.query('UPDATE sessions SET frame_seq = 10 WHERE id = $1', [sessionId]);
    expect(await follow(runtime, sessionId, 3, user.headers)).toEqual([
      expect.objectContaining({ type: 'error', code: 'RT_ERR_FRAMES_LOST', is_final: true, seq: 10 }),
    ]);
    expect(await follow(runtime, sessionId, 10, user.headers)).toEqual([]);
  });
});

async function runtimeUrl(runtime: Service): Promise<string> {
  const address = runtime.app.server.address();
  if (address && typeof address === 'object') return `http://127.0.0.1:${address.port}`;
  return listen(runtime, { host: '127.0.0.1', port: 0 });
}

const redisUrl = inject('redisUrl');

describe.skipIf(missingServer('Redis', 'TEST_REDIS_URL', redisUrl))(
  'interrupted turns with Redis (two runtimes share the frame log)',
  () => {
    let runtimes: Service[];
    let db: Database;
    let redis: Redis;
    beforeAll(async () => {
      const env = { AGENT_RUNTIME__SESSION_LEASE_TTL: '10', AGENT_RUNTIME__REDIS_URL: redisUrl! };
      runtimes = await Promise.all([startRuntime(inject('databaseUrl'), env), startRuntime(inject('databaseUrl'), env)]);
      db = await openTestDb(inject('databaseUrl'));
      redis = new Redis(redisUrl!);
    });
    afterAll(async () => {
      redis?.disconnect();
      await db?.close();
      for (const r of runtimes ?? []) await r.app.close();
    });

    const logged = async (sessionId: string, n: number, finalAt?: number): Promise<void> => {
      for (let seq = 1; seq <= n; seq++) {
        const final = seq === finalAt;
        const data = JSON.stringify(
          final
            ? { type: 'assistant_message', content: 'done', is_final: true, seq }
            : { type: 'assistant_message', token: `t${seq}`, is_final: false, seq },
        );
        await redis.xadd(`codelab:frames:${sessionId}`, '*', 'seq', String(seq), 'data', data, 'final', final ? '1' : '0');
      }
    };

    it('closes the turn once when followers on two runtimes race for it: each gets the frames it missed and the one final frame', async () => {
      const user = newUser();
      const sessionId = await createSession(runtimes[0]!, user.headers, 'race');
      await logged(sessionId, 3); // the dead turn streamed three tokens
      await deadTurn(db, sessionId, { base: 0, frameSeq: 0, lapsesInMs: 300 });
      const [a, b] = await Promise.all([
        follow(runtimes[0]!, sessionId, 2, user.headers),
        follow(runtimes[1]!, sessionId, 3, user.headers),
      ]);
      const closing = expect.objectContaining({ type: 'error', code: 'RT_ERR_TURN_INTERRUPTED', is_final: true, seq: 4 });
      expect(a).toEqual([expect.objectContaining({ token: 't3', seq: 3 }), closing]);
      expect(b).toEqual([closing]);
      const entries = await redis.xrange(`codelab:frames:${sessionId}`, '-', '+');
      expect(entries.map(([, f]) => f[1])).toEqual(['1', '2', '3', '4']);
      const counts = await Promise.all(runtimes.map((r) => metric(r, 'runtime_turns_interrupted_total{detected_by="follower"}')));
      expect(counts.map((l) => Number(l.split(' ')[1] ?? 0)).reduce((x, y) => x + y, 0)).toBe(1);
      const { rows } = await db.query('SELECT lease_owner, frame_seq FROM sessions WHERE id = $1', [sessionId]);
      expect(rows[0]).toEqual({ lease_owner: null, frame_seq: '4' });
    });

    it('leaves a turn alone whose end only the log missed (Redis away while it ran): the next turn follows the number its release recorded', async () => {
      const interrupted = async () =>
        (await Promise.all(runtimes.map((r) => metric(r, 'runtime_turns_interrupted_total')))).reduce(
          (sum, l) => sum + Number(l.split(' ')[1] ?? 0),
          0,
        );
      const before = await interrupted();
      const user = newUser();
      const sessionId = await createSession(runtimes[0]!, user.headers, 'gap');
      // the log kept three tokens, then Redis went away; the turn went on to its final frame 6 and released
      await logged(sessionId, 3);
      await db.query('UPDATE sessions SET frame_seq = 6 WHERE id = $1', [sessionId]);
      let last = 6;
      for (const [i, runtime] of runtimes.entries()) {
        // a follower that saw the whole turn has nothing to get, and nothing is made up for it
        expect(await follow(runtime, sessionId, last, user.headers)).toEqual([]);
        const res = await fetch(`${await runtimeUrl(runtime)}/agent/message/stream`, {
          method: 'POST',
          headers: { ...user.headers, 'content-type': 'application/json' },
          body: JSON.stringify({ session_id: sessionId, message: { type: 'user_message', content: `next ${i} [[mock:reply fine]]` } }),
        });
        const turn: Frame[] = [];
        for await (const ev of parseSse(res.body as unknown as AsyncIterable<Uint8Array>)) turn.push(JSON.parse(ev.data) as Frame);
        // numbered straight on from what the client saw (this runtime has no LLM: the turn's answer is an error frame)
        expect(res.headers.get('x-codelab-frame-seq')).toBe(String(last));
        expect(turn.map((f) => f.seq)).toEqual(turn.map((_, k) => last + 1 + k));
        expect(turn.filter((f) => f.is_final === true)).toHaveLength(1);
        expect(turn.map((f) => f.code)).not.toContain('RT_ERR_TURN_INTERRUPTED');
        last = turn.at(-1)!.seq as number;
      }
      const entries = await redis.xrange(`codelab:frames:${sessionId}`, '-', '+');
      expect(entries.map(([, f]) => f[3]).filter((d) => d!.includes('RT_ERR_TURN_INTERRUPTED'))).toEqual([]);
      expect(await interrupted()).toBe(before);
    });

    /** What a runtime that died right after its turn's last commit (TurnContext.end) leaves: the row freed, with the final frame. */
    const endedTurn = async (sessionId: string, seq: number): Promise<string> => {
      const data = JSON.stringify({ type: 'assistant_message', content: 'stored answer', is_final: true, metadata: { agent: 'ask' }, seq });
      await db.query('UPDATE sessions SET frame_seq = $2, final_frame = $3, lease_owner = NULL, lease_until = NULL WHERE id = $1', [
        sessionId,
        seq,
        data,
      ]);
      return data;
    };

    it('gives followers the final frame a turn stored with its answer when its runtime died before logging it', async () => {
      const user = newUser();
      const sessionId = await createSession(runtimes[0]!, user.headers, 'stored-final');
      await logged(sessionId, 3);
      const data = await endedTurn(sessionId, 4);
      const [a, b] = await Promise.all([
        follow(runtimes[1]!, sessionId, 2, user.headers),
        follow(runtimes[0]!, sessionId, 3, user.headers),
      ]);
      const final = expect.objectContaining({ type: 'assistant_message', content: 'stored answer', is_final: true, seq: 4 });
      expect(a).toEqual([expect.objectContaining({ token: 't3', seq: 3 }), final]);
      expect(b).toEqual([final]);
      const entries = await redis.xrange(`codelab:frames:${sessionId}`, '-', '+');
      expect(entries.map(([, f]) => f[1])).toEqual(['1', '2', '3', '4']);
      expect(entries.at(-1)![1][3]).toBe(data);
      // a row whose final frame is an older turn's is no such end: the follower gets the frames-lost notice as before
      const other = await createSession(runtimes[0]!, user.headers, 'stale-final');
      await logged(other, 3);
      await endedTurn(other, 2);
      await db.query('UPDATE sessions SET frame_seq = 4 WHERE id = $1', [other]);
      expect(await follow(runtimes[1]!, other, 3, user.headers)).toEqual([
        expect.objectContaining({ type: 'error', code: 'RT_ERR_FRAMES_LOST', seq: 4 }),
      ]);
    });

    it("logs the stored final frame of the last turn before the next turn's frames (the next turn fenced the log first)", async () => {
      const user = newUser();
      const sessionId = await createSession(runtimes[0]!, user.headers, 'stored-final-next');
      await logged(sessionId, 3);
      await endedTurn(sessionId, 4);
      const res = await fetch(`${await runtimeUrl(runtimes[1]!)}/agent/message/stream`, {
        method: 'POST',
        headers: { ...user.headers, 'content-type': 'application/json' },
        body: JSON.stringify({ session_id: sessionId, message: { type: 'switch_agent', agent_type: 'architect' } }),
      });
      const turn: Frame[] = [];
      for await (const ev of parseSse(res.body as unknown as AsyncIterable<Uint8Array>)) turn.push(JSON.parse(ev.data) as Frame);
      expect(res.headers.get('x-codelab-frame-seq')).toBe('4');
      expect(turn.map((f) => f.seq)).toEqual([5]);
      const entries = await redis.xrange(`codelab:frames:${sessionId}`, '-', '+');
      expect(entries.map(([, f]) => f[1])).toEqual(['1', '2', '3', '4', '5']);
      expect(await follow(runtimes[0]!, sessionId, 3, user.headers)).toEqual([
        expect.objectContaining({ content: 'stored answer', seq: 4 }),
        expect.objectContaining({ type: 'agent_switched', seq: 5 }),
      ]);
    });

    it('leaves a turn whose final frame was logged alone (only its release was lost)', async () => {
      const user = newUser();
      const sessionId = await createSession(runtimes[0]!, user.headers, 'ended');
      await logged(sessionId, 2, 2);
      await deadTurn(db, sessionId, { base: 0, frameSeq: 0, lapsesInMs: -1 });
      expect(await follow(runtimes[1]!, sessionId, 1, user.headers)).toEqual([expect.objectContaining({ content: 'done', seq: 2 })]);
      expect(await follow(runtimes[0]!, sessionId, 2, user.headers)).toEqual([]);
      const { rows } = await db.query('SELECT lease_owner, lease_until, frame_seq FROM sessions WHERE id = $1', [sessionId]);
      expect(rows[0]).toEqual({ lease_owner: null, lease_until: null, frame_seq: '2' });
    });
  },
);
