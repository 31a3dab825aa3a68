/**
 * A turn whose session lease is taken over writes nothing more. The first turn is "paused past
 * its lease TTL": its LLM answer is held by a scripted LLM and its lease is made to lapse in the
 * row (its renewals, every TTL/3 of an hour here, never come), then a second turn takes the
 * session over and streams while the first one wakes up and tries to go on (more tokens, then a
 * tool call). The session's history, its tool calls and its frame log must read as if the first
 * turn had stopped at the takeover: no message, tool call or frame of it after, no frame number
 * used twice. Run with the frame log in memory (two turns on one instance) and in Redis (two
 * instances). Nothing waits for a fixed time: the test opens the LLM's gates and waits for frames.
 */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { Redis } from 'ioredis';
import { createH2cCapableServer, listen, parseSse, type Database, type Service } from '@codelab/service-kit';
import { missingServer } from '@codelab/service-kit/testing';
import { createSession, newUser, openTestDb, startRuntime } from '../routes/fixture.ts';

type Frame = Record<string, unknown> & { seq: number };

/**
 * An OpenAI-compatible LLM that streams three tokens for a message marked `[[hold:NAME:then]]`,
 * holds the answer until the test opens NAME, then streams two more and ends with a tool call
 * (`then` = tool) or with the answer (`then` = answer).
 */
class ScriptedLlm {
  readonly server: Server;
  private readonly gates = new Map<string, { open: () => void; opened: Promise<void> }>();

  constructor() {
    // HTTP/1.1 and h2c on one port, as the real llm-proxy's (the runtime calls it over h2c)
    this.server = createH2cCapableServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        if (req.method === 'POST' && req.url === '/v1/chat/completions') void this.answer(body, res);
        else res.writeHead(req.url === '/health' ? 200 : 404, { 'content-type': 'application/json' }).end('{}');
      });
    });
  }

  private gate(name: string): { open: () => void; opened: Promise<void> } {
    let g = this.gates.get(name);
    if (!g) {
      let open!: () => void;
      const opened = new Promise<void>((resolve) => (open = resolve));
      g = { open, opened };
      this.gates.set(name, g);
    }
    return g;
  }

  open(name: string): void {
    this.gate(name).open();
  }

  private async answer(body: string, res: import('node:http').ServerResponse): Promise<void> {
    const { messages } = JSON.parse(body) as { messages: { role: string; content: string }[] };
    const last = [...messages].reverse().find((m) => m.role === 'user')?.content ?? '';
    const [, name = 'X', then = 'answer'] = /\[\[hold:(\w+):(tool|answer)\]\]/.exec(last) ?? [];
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    const send = (chunk: unknown): void => {
      if (!res.destroyed) res.write(`data: ${JSON.stringify(chunk)}\n\n`);
    };
    const delta = (d: unknown, finish: string | null = null): void =>
      send({ id: 'c', object: 'chat.completion.chunk', model: 'fake-llm', choices: [{ index: 0, delta: d, finish_reason: finish }] });
    for (const i of [1, 2, 3]) delta({ content: `${name}-${i} ` });
    await this.gate(name).opened;
    for (const i of [4, 5]) delta({ content: `${name}-${i} ` });
    if (then === 'tool') {
      const call = { name: 'write_file', arguments: '{"path":"late.txt","content":"x"}' };
      delta({ tool_calls: [{ index: 0, id: `call_${name}`, type: 'function', function: call }] });
      delta({}, 'tool_calls');
    } else delta({}, 'stop');
    if (!res.destroyed) res.end('data: [DONE]\n\n');
  }
}

/** A turn's SSE response, read in the background. */
class TurnStream {
  readonly frames: Frame[] = [];
  readonly done: Promise<void>;
  readonly frameSeq: number;
  constructor(res: Response) {
    this.frameSeq = Number(res.headers.get('x-codelab-frame-seq'));
    this.done = (async () => {
      for await (const ev of parseSse(res.body as unknown as AsyncIterable<Uint8Array>)) this.frames.push(JSON.parse(ev.data) as Frame);
    })();
  }
  tokens(): string[] {
    return this.frames.filter((f) => typeof f.token === 'string').map((f) => f.token as string);
  }
}

const redisUrl = inject('redisUrl');

interface Mode {
  name: string;
  skip: boolean;
  env: Record<string, string>;
  /** Two instances (A runs the first turn, B the second) or one for both. */
  instances: 1 | 2;
}

const modes: Mode[] = [
  { name: 'frame log in memory: two turns on one instance', skip: false, env: {}, instances: 1 },
  {
    name: 'frame log in Redis: two instances',
    skip: missingServer('Redis', 'TEST_REDIS_URL', redisUrl),
    env: redisUrl ? { AGENT_RUNTIME__REDIS_URL: redisUrl } : {},
    instances: 2,
  },
];

for (const mode of modes) {
  describe.skipIf(mode.skip)(`a turn whose lease was taken over (${mode.name})`, () => {
    let llm: ScriptedLlm;
    let runtimes: Service[];
    let urls: string[];
    let db: Database;
    let redis: Redis | undefined;
    beforeAll(async () => {
      llm = new ScriptedLlm();
      await new Promise<void>((resolve) => llm.server.listen(0, '127.0.0.1', resolve));
      const env = {
        AGENT_RUNTIME__LLM_PROXY_URL: `http://127.0.0.1:${(llm.server.address() as AddressInfo).port}`,
        AGENT_RUNTIME__MULTI_AGENT_MODE: 'false',
        // renewals every 20 minutes: the test alone decides when the lease lapses
        AGENT_RUNTIME__SESSION_LEASE_TTL: '3600',
        ...mode.env,
      };
      runtimes = await Promise.all(Array.from({ length: mode.instances }, () => startRuntime(inject('databaseUrl'), env)));
      urls = await Promise.all(runtimes.map((r) => listen(r, { host: '127.0.0.1', port: 0 })));
      db = await openTestDb(inject('databaseUrl'));
      if (redisUrl && mode.env.AGENT_RUNTIME__REDIS_URL) redis = new Redis(redisUrl);
    });
    afterAll(async () => {
      redis?.disconnect();
      await db?.close();
      for (const r of runtimes ?? []) await r.app.close();
      llm?.server.closeAllConnections();
      await new Promise((resolve) => llm?.server.close(resolve));
    });

    const post = async (url: string, headers: Record<string, string>, sessionId: string, content: string): Promise<TurnStream> => {
      const res = await fetch(`${url}/agent/message/stream`, {
        method: 'POST',
        headers: { ...headers, 'content-type': 'application/json' },
        body: JSON.stringify({ session_id: sessionId, message: { type: 'user_message', content } }),
      });
      expect(res.status).toBe(200);
      return new TurnStream(res);
    };

    it('writes no frame, message or tool call after the takeover, and leaves the frame numbers consistent', async () => {
      const [a, b] = [runtimes[0]!, runtimes.at(-1)!];
      const [urlA, urlB] = [urls[0]!, urls.at(-1)!];
      const user = newUser();
      const sessionId = await createSession(a, user.headers, 'lost');

      const first = await post(urlA, user.headers, sessionId, 'first [[hold:A:tool]]');
      await expect.poll(() => first.tokens().join(''), { timeout: 30_000 }).toBe('A-1 A-2 A-3 ');
      // the first turn is paused past its lease TTL: its renewals did not reach the row, which lapsed
      await db.query(`UPDATE sessions SET lease_until = now() - interval '1 second' WHERE id = $1`, [sessionId]);

      const second = await post(urlB, user.headers, sessionId, 'second [[hold:B:answer]]');
      await expect.poll(() => second.tokens().join(''), { timeout: 30_000 }).toBe('B-1 B-2 B-3 ');
      // the first turn wakes up: its answer goes on, and ends with a tool call
      llm.open('A');
      await first.done;
      expect(first.frames.filter((f) => f.is_final === true)).toEqual([]);
      await expect
        .poll(async () => (await a.app.inject({ method: 'GET', url: '/metrics' })).body, { timeout: 30_000 })
        .toMatch(/^runtime_turns_total\{type="user_message",agent="[a-z]+",outcome="lease_lost"\} 1$/m);
      if (redis) expect(await redis.exists(`codelab:turn-running:${sessionId}`)).toBe(1); // the stopped turn did not clear the second's flag
      llm.open('B');
      await second.done;
      const answer = expect.objectContaining({ type: 'assistant_message', content: 'B-1 B-2 B-3 B-4 B-5 ' });
      expect(second.frames.filter((f) => f.is_final === true)).toEqual([answer]);

      // history: the first turn's user message only; nothing of its answer or its tool call
      await expect
        .poll(async () => (await db.query('SELECT lease_owner FROM sessions WHERE id = $1', [sessionId])).rows[0], { timeout: 30_000 })
        .toEqual({ lease_owner: null });
      const { rows: messages } = await db.query<{ seq: number; role: string; content: string }>(
        'SELECT seq, role, content FROM messages WHERE session_id = $1 ORDER BY seq',
        [sessionId],
      );
      expect(messages).toEqual([
        { seq: 1, role: 'user', content: 'first [[hold:A:tool]]' },
        { seq: 2, role: 'user', content: 'second [[hold:B:answer]]' },
        { seq: 3, role: 'assistant', content: 'B-1 B-2 B-3 B-4 B-5 ' },
      ]);
      expect((await db.query('SELECT call_id FROM tool_calls WHERE session_id = $1', [sessionId])).rows).toEqual([]);

      // the frame log: the first turn's frames up to the takeover, the closing frame of that turn,
      // then the second turn's frames, each number once and in order
      const followed = await b.app.inject({ method: 'GET', url: `/sessions/${sessionId}/frames?after=0`, headers: user.headers });
      const log = followed.body
        .split('\n')
        .filter((l) => l.startsWith('data: '))
        .map((l) => JSON.parse(l.slice(6)) as Frame);
      const seqs = log.map((f) => f.seq);
      expect(seqs).toEqual([...new Set(seqs)].sort((x, y) => x - y));
      const closing = log.findIndex((f) => f.code === 'RT_ERR_TURN_INTERRUPTED');
      expect(closing).toBeGreaterThan(0);
      expect(log[closing]!.seq).toBe(second.frameSeq);
      expect(log.slice(0, closing)).toEqual(first.frames.filter((f) => f.seq < second.frameSeq));
      expect(
        log
          .slice(0, closing)
          .map((f) => f.token)
          .join(''),
      ).toBe('A-1 A-2 A-3 ');
      expect(log.slice(closing + 1)).toEqual(second.frames);
      expect(second.frames[0]!.seq).toBe(second.frameSeq + 1);
      if (mode.instances === 2) expect(seqs).toEqual(seqs.map((_, i) => i + 1)); // shared log: no numbers reserved ahead
      const { rows } = await db.query<{ frame_seq: string }>('SELECT frame_seq FROM sessions WHERE id = $1', [sessionId]);
      expect(Number(rows[0]!.frame_seq)).toBe(second.frames.at(-1)!.seq);
    });
  });
}
