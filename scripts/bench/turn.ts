/**
 * `npm run bench:turn`: time to first token and tokens/s of one conversation turn through the whole
 * path (WebSocket client → gateway → runtime → llm-proxy mock → back), each service its own process,
 * against the same mock streamed directly in the same run (the reference), mock delays at zero.
 *
 *   BENCH_TURNS=200 BENCH_DATABASE_URL=postgres://… npm run bench:turn
 *
 * Without BENCH_DATABASE_URL an embedded PostgreSQL serves the runtime and auth.
 */
import { randomUUID } from 'node:crypto';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { startEmbeddedPostgres } from '@codelab/service-kit';
import { TEST_INTERNAL_KEY } from '@codelab/service-kit/testing';
import { createUser } from '@codelab/auth/users';
import { FrameClient, passwordToken } from '../../test/helpers/stack.ts';
import { startProcess, type RunningProcess } from '../../test/helpers/processes.ts';
import { pct, timedTurn } from './timing.ts';

const TURNS = Number(process.env.BENCH_TURNS || 100);
const WARMUP = Math.min(20, TURNS);

interface Sample {
  ttftMs: number;
  tokens: number;
  streamMs: number; // first token → last token
  totalMs: number;
}

const fmt = (n: number): string => (n >= 100 ? n.toFixed(0) : n.toFixed(2));
function summarize(name: string, samples: Sample[]): { ttftP50: number; ttftP99: number; tokensPerSec: number } {
  const ttft = samples.map((s) => s.ttftMs);
  const tokens = samples.reduce((n, s) => n + s.tokens, 0);
  const seconds = samples.reduce((n, s) => n + s.totalMs, 0) / 1000;
  const tokensPerSec = tokens / seconds;
  console.log(
    `${name.padEnd(28)} TTFT p50 ${fmt(pct(ttft, 50))} ms  p95 ${fmt(pct(ttft, 95))} ms  p99 ${fmt(pct(ttft, 99))} ms | ` +
      `turn p50 ${fmt(
        pct(
          samples.map((s) => s.totalMs),
          50,
        ),
      )} ms | ${fmt(tokensPerSec)} tokens/s (${(tokens / samples.length).toFixed(0)} tokens per turn)`,
  );
  return { ttftP50: pct(ttft, 50), ttftP99: pct(ttft, 99), tokensPerSec };
}

async function directTurn(llmUrl: string, prompt: string): Promise<Sample> {
  const started = performance.now();
  const res = await fetch(`${llmUrl}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-internal-auth': TEST_INTERNAL_KEY },
    body: JSON.stringify({ model: 'fake-llm', stream: true, messages: [{ role: 'user', content: prompt }] }),
  });
  const decoder = new TextDecoder();
  let first = 0;
  let tokens = 0;
  let buffer = '';
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    buffer += decoder.decode(chunk, { stream: true });
    let i: number;
    while ((i = buffer.indexOf('\n\n')) >= 0) {
      const event = buffer.slice(0, i);
      buffer = buffer.slice(i + 2);
      if (event.includes('"content":"') && !event.includes('"content":""')) {
        tokens++;
        if (!first) first = performance.now();
      }
    }
  }
  const end = performance.now();
  return { ttftMs: first - started, tokens, streamMs: end - first, totalMs: end - started };
}

async function platformTurn(client: FrameClient, prompt: string): Promise<Sample> {
  const t = await timedTurn(client, prompt, 30_000);
  return { ttftMs: t.ttftMs, tokens: t.tokens, streamMs: t.totalMs - t.ttftMs, totalMs: t.totalMs };
}

const procs: RunningProcess[] = [];
let embedded: Awaited<ReturnType<typeof startEmbeddedPostgres>> | undefined;
try {
  const t0 = performance.now();
  let databaseUrl = process.env.BENCH_DATABASE_URL;
  if (!databaseUrl) {
    embedded = await startEmbeddedPostgres(undefined, 16);
    databaseUrl = embedded.url;
  }
  const dataDir = await mkdtemp(path.join(tmpdir(), 'codelab-bench-'));
  const common = { CODELAB_DATA_DIR: dataDir };
  const quiet = (p: string) => ({ [`${p}__LOG_LEVEL`]: 'warn' });
  const llm = await startProcess('llm-proxy', {
    ...common,
    ...quiet('LLM_PROXY'),
    LLM_PROXY__INTERNAL_API_KEY: TEST_INTERNAL_KEY,
    LLM_PROXY__MOCK_TTFT_MS: '0',
    LLM_PROXY__MOCK_TOKEN_DELAY_MS: '0',
  });
  const auth = await startProcess('auth', {
    ...common,
    ...quiet('AUTH_SERVICE'),
    AUTH_SERVICE__INTERNAL_API_KEY: TEST_INTERNAL_KEY,
    AUTH_SERVICE__DB_URL: databaseUrl,
    AUTH_SERVICE__MASTER_KEY: 'bench-admin-password',
  });
  const runtime = await startProcess('runtime', {
    ...common,
    ...quiet('AGENT_RUNTIME'),
    AGENT_RUNTIME__INTERNAL_API_KEY: TEST_INTERNAL_KEY,
    AGENT_RUNTIME__DB_URL: databaseUrl,
    AGENT_RUNTIME__LLM_PROXY_URL: llm.url,
  });
  const gateway = await startProcess('gateway', {
    ...common,
    ...quiet('GATEWAY'),
    GATEWAY__INTERNAL_API_KEY: TEST_INTERNAL_KEY,
    GATEWAY__AGENT_URL: runtime.url,
    GATEWAY__AUTH_SERVICE_URL: auth.url,
  });
  procs.push(gateway, runtime, auth, llm);
  console.log(
    `services up in ${((performance.now() - t0) / 1000).toFixed(1)} s (database: ${embedded ? 'embedded PGlite' : 'BENCH_DATABASE_URL'}); ${TURNS} turns after ${WARMUP} warm-up`,
  );

  const user = { username: `bench-${randomUUID()}`, password: randomUUID() };
  const pool = new pg.Pool({ connectionString: databaseUrl, max: 1 });
  await createUser(pool, { username: user.username, email: `${user.username}@bench.local`, password: user.password });
  await pool.end();
  const token = await passwordToken(auth.url, user.username, user.password);
  const client = new FrameClient(`${gateway.url.replace('http', 'ws')}/api/v1/ws/bench-${randomUUID()}`, {
    authorization: `Bearer ${token}`,
  });
  await client.open();

  const prompt = 'Explain dependency injection in one paragraph';
  for (let i = 0; i < WARMUP; i++) {
    await directTurn(llm.url, prompt);
    await platformTurn(client, prompt);
  }
  const direct: Sample[] = [];
  const platform: Sample[] = [];
  for (let i = 0; i < TURNS; i++) {
    // interleaved, so both see the same machine conditions
    direct.push(await directTurn(llm.url, prompt));
    platform.push(await platformTurn(client, prompt));
  }
  client.close();
  const d = summarize('mock, direct (reference)', direct);
  const p = summarize('platform (WS → gw → rt → llm)', platform);
  console.log(
    `platform / direct: TTFT p50 +${fmt(p.ttftP50 - d.ttftP50)} ms (x${(p.ttftP50 / d.ttftP50).toFixed(1)}), p99 +${fmt(p.ttftP99 - d.ttftP99)} ms; ` +
      `tokens/s ${((p.tokensPerSec / d.tokensPerSec) * 100).toFixed(0)}% of direct`,
  );
} finally {
  for (const p of procs) await p.stop();
  await embedded?.stop();
}
