/**
 * POST /agent/message/stream: refusals before the stream opens, and a database failure in the
 * middle of a turn (the runtime's own embedded PostgreSQL is stopped while the answer streams).
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { listen, parseSse, startEmbeddedPostgres, type Service } from '@codelab/service-kit';
import { silentLogger, TEST_INTERNAL_KEY } from '@codelab/service-kit/testing';
import { buildApp } from '../../src/app.ts';
import { readRuntimeConfig } from '../../src/config.ts';
import { startMockLlm } from './fixture.ts';

const key = { 'x-internal-auth': TEST_INTERNAL_KEY, 'content-type': 'application/json' };

describe('POST /agent/message/stream refusals', () => {
  let service: Service;
  beforeAll(async () => {
    service = await buildApp(
      readRuntimeConfig({
        AGENT_RUNTIME__INTERNAL_API_KEY: TEST_INTERNAL_KEY,
        AGENT_RUNTIME__DB_URL: inject('databaseUrl'),
        AGENT_RUNTIME__DB_POOL_SIZE: '2',
      }),
      { logger: silentLogger() },
    );
  });
  afterAll(() => service.app.close());

  const post = (payload: unknown) =>
    service.app.inject({ method: 'POST', url: '/agent/message/stream', headers: key, payload: payload as object });

  it('answers 400 for an unknown message type, and 404 for a tool_result or decision about a call it never made', async () => {
    const res = await post({ session_id: `s-${randomUUID()}`, message: { type: 'telepathy', content: 'x' } });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toMatchObject({ error: { code: 'RT_ERR_UNSUPPORTED_MESSAGE_TYPE', message: expect.stringContaining('telepathy') } });
    const result = await post({ session_id: `s-${randomUUID()}`, message: { type: 'tool_result', call_id: 'c1', result: {} } });
    expect(result.statusCode).toBe(404);
    expect(result.json()).toMatchObject({ error: { code: 'RT_ERR_TOOL_CALL_NOT_FOUND' } });
    const decision = await post({
      session_id: `s-${randomUUID()}`,
      message: { type: 'hitl_decision', call_id: 'c1', decision: 'approve' },
    });
    expect(decision.statusCode).toBe(404);
    const badDecision = await post({
      session_id: `s-${randomUUID()}`,
      message: { type: 'hitl_decision', call_id: 'c1', decision: 'maybe' },
    });
    expect(badDecision.json()).toMatchObject({ error: { code: 'RT_ERR_INVALID_MESSAGE', message: 'Invalid HITL decision: maybe' } });
    const badAgent = await post({ session_id: `s-${randomUUID()}`, message: { type: 'switch_agent', agent_type: 'wizard' } });
    expect(badAgent.statusCode).toBe(400);
    expect(badAgent.json()).toMatchObject({ error: { code: 'RT_ERR_INVALID_AGENT' } });
  });

  it('answers 400 for an empty user message or a malformed body, before anything is stored', async () => {
    const sessionId = `s-${randomUUID()}`;
    expect((await post({ session_id: sessionId, message: { type: 'user_message', content: '   ' } })).json()).toMatchObject({
      error: { code: 'RT_ERR_INVALID_MESSAGE' },
    });
    expect((await post({ session_id: sessionId })).statusCode).toBe(400);
    expect(
      (await post({ session_id: sessionId, message: { type: 'user_message', content: 'x', agent_type: 'wizard' } })).json(),
    ).toMatchObject({ error: { code: 'RT_ERR_INVALID_AGENT' } });
    expect((await post({ session_id: 'bad id!', message: { type: 'user_message', content: 'x' } })).statusCode).toBe(400);
    const history = await service.app.inject({ method: 'GET', url: `/sessions/${sessionId}/history`, headers: key });
    expect(history.statusCode).toBe(404);
  });

  it('refuses new turns with 503 while draining', async () => {
    service.startDraining();
    const res = await post({ session_id: `s-${randomUUID()}`, message: { type: 'user_message', content: 'hi' } });
    expect(res.statusCode).toBe(503);
    expect(res.json()).toMatchObject({ error: { code: 'ERR_SHUTTING_DOWN' } });
  });
});

describe('a database failure in the middle of a turn', () => {
  let llm: Service;
  let runtime: Service;
  let dataDir: string;
  let embedded: Awaited<ReturnType<typeof startEmbeddedPostgres>>;

  beforeAll(async () => {
    dataDir = await mkdtemp(path.join(tmpdir(), 'codelab-rt-dbfail-'));
    embedded = await startEmbeddedPostgres(dataDir, 6);
    let llmUrl: string;
    ({ service: llm, url: llmUrl } = await startMockLlm({ LLM_PROXY__MOCK_TOKEN_DELAY_MS: '40' }));
    runtime = await buildApp(
      readRuntimeConfig({
        AGENT_RUNTIME__INTERNAL_API_KEY: TEST_INTERNAL_KEY,
        AGENT_RUNTIME__DB_URL: embedded.url,
        AGENT_RUNTIME__DB_POOL_SIZE: '2',
        AGENT_RUNTIME__LLM_PROXY_URL: llmUrl,
      }),
      { logger: silentLogger() },
    );
  }, 60_000);
  afterAll(async () => {
    await runtime?.app.close();
    await llm?.app.close();
  });

  it('ends the stream with an error chunk, keeps the user message, and the runtime stays alive', async () => {
    const url = await listen(runtime, { host: '127.0.0.1', port: 0 });
    const sessionId = `dbfail-${randomUUID()}`;
    const res = await fetch(`${url}/agent/message/stream`, {
      method: 'POST',
      headers: key,
      body: JSON.stringify({ session_id: sessionId, message: { type: 'user_message', content: 'the database will fail', role: 'user' } }),
    });
    expect(res.status).toBe(200);
    const chunks: Record<string, unknown>[] = [];
    let stopped: Promise<void> | undefined;
    for await (const ev of parseSse(res.body as unknown as AsyncIterable<Uint8Array>)) {
      const chunk = JSON.parse(ev.data) as Record<string, unknown>;
      chunks.push(chunk);
      if (chunk.token && !stopped) stopped = embedded.stop(); // the database goes away while the answer streams
    }
    await stopped;
    expect(chunks.filter((c) => c.token).length).toBeGreaterThan(0);
    expect(chunks.at(-1)).toMatchObject({ type: 'error', code: 'RT_ERR_PERSISTENCE', is_final: true });
    expect((await fetch(`${url}/health`)).status).toBe(200);

    // The data written before the failure is there: the user message, and no half answer.
    embedded = await startEmbeddedPostgres(dataDir, 2);
    const pool = new pg.Pool({ connectionString: embedded.url, max: 1 });
    try {
      const { rows } = await pool.query('SELECT role, content, seq FROM messages WHERE session_id = $1 ORDER BY seq', [sessionId]);
      expect(rows).toEqual([{ role: 'user', content: 'the database will fail', seq: 1 }]);
    } finally {
      await pool.end();
      await embedded.stop();
    }
  }, 60_000);
});

describe('token frames (AGENT_RUNTIME__TOKEN_FRAME_INTERVAL)', () => {
  let llm: Service;
  let llmUrl: string;
  const runtimes: Service[] = [];

  beforeAll(async () => {
    ({ service: llm, url: llmUrl } = await startMockLlm());
  });
  afterAll(async () => {
    for (const r of runtimes) await r.app.close();
    await llm?.app.close();
  });

  const runtimeWith = async (interval: string | undefined): Promise<Service> => {
    const runtime = await buildApp(
      readRuntimeConfig({
        AGENT_RUNTIME__INTERNAL_API_KEY: TEST_INTERNAL_KEY,
        AGENT_RUNTIME__DB_URL: inject('databaseUrl'),
        AGENT_RUNTIME__DB_POOL_SIZE: '2',
        AGENT_RUNTIME__LLM_PROXY_URL: llmUrl,
        AGENT_RUNTIME__MULTI_AGENT_MODE: 'false',
        ...(interval === undefined ? {} : { AGENT_RUNTIME__TOKEN_FRAME_INTERVAL: interval }),
      }),
      { logger: silentLogger() },
    );
    runtimes.push(runtime);
    return runtime;
  };

  /** One turn's token frames, its final frame, and the frame-size histogram's count and sum read off /metrics. */
  const turn = async (runtime: Service) => {
    const url = await listen(runtime, { host: '127.0.0.1', port: 0 });
    const res = await fetch(`${url}/agent/message/stream`, {
      method: 'POST',
      headers: key,
      body: JSON.stringify({
        session_id: `frames-${randomUUID()}`,
        message: { type: 'user_message', content: 'stream [[mock:words 40]]' },
      }),
    });
    expect(res.status).toBe(200);
    const chunks: Record<string, unknown>[] = [];
    for await (const ev of parseSse(res.body as unknown as AsyncIterable<Uint8Array>))
      chunks.push(JSON.parse(ev.data) as Record<string, unknown>);
    const metrics = (await runtime.app.inject({ method: 'GET', url: '/metrics' })).body;
    const read = (name: string): number => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(metrics)?.[1]);
    return {
      tokens: chunks.filter((c) => typeof c.token === 'string').map((c) => c.token as string),
      final: chunks.at(-1)!,
      frames: read('runtime_answer_frame_tokens_count'),
      gathered: read('runtime_answer_frame_tokens_sum'),
    };
  };

  it('0 sends a frame per LLM token, as upstream clients that count tokens expect', async () => {
    const { tokens, final, frames, gathered } = await turn(await runtimeWith('0'));
    expect(tokens).toHaveLength(40); // the mock streams a word per token
    expect(final).toMatchObject({ type: 'assistant_message', is_final: true, content: tokens.join('') });
    expect([frames, gathered]).toEqual([40, 40]);
  });

  it('by default sends the first token at once and gathers later ones: no token lost, none twice, the metric counts both', async () => {
    const { tokens, final, frames, gathered } = await turn(await runtimeWith(undefined));
    expect(final).toMatchObject({ type: 'assistant_message', is_final: true, content: tokens.join('') });
    expect(tokens.join('').trim().split(/\s+/)).toHaveLength(40);
    expect(tokens[0]!.trim().split(/\s+/)).toHaveLength(1);
    expect(tokens.length).toBeGreaterThanOrEqual(2);
    expect([frames, gathered]).toEqual([tokens.length, 40]);
  });

  it('refuses an interval that is not a number of seconds between 0 and 1', () => {
    for (const bad of ['-1', '2', 'soon']) {
      expect(() => readRuntimeConfig({ AGENT_RUNTIME__TOKEN_FRAME_INTERVAL: bad })).toThrow(/AGENT_RUNTIME__TOKEN_FRAME_INTERVAL/);
    }
  });
});
