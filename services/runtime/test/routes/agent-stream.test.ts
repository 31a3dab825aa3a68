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
import { buildApp as buildLlmProxy } from '@codelab/llm-proxy/app';
import { readLlmProxyConfig } from '@codelab/llm-proxy/config';
import { buildApp } from '../../src/app.ts';
import { readRuntimeConfig } from '../../src/config.ts';

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
    llm = await buildLlmProxy(
      readLlmProxyConfig({
        LLM_PROXY__INTERNAL_API_KEY: TEST_INTERNAL_KEY,
        LLM_PROXY__MOCK_TTFT_MS: '0',
        LLM_PROXY__MOCK_TOKEN_DELAY_MS: '40',
      }),
      {
        logger: silentLogger(),
      },
    );
    const llmUrl = await listen(llm, { host: '127.0.0.1', port: 0 });
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
