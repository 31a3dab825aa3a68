/**
 * `npm run bench:conversations`: many IDE conversations at once through the whole platform (each
 * service its own process): N WebSocket clients, each on its own session, each sending its turns
 * one after the other, against the mock LLM with fixed delays. Reports turns/s and the time to
 * first token as the client sees it (message sent → first token frame), next to the mock's own
 * configured time to first token, so the platform's share is visible.
 *
 *   BENCH_CONVERSATIONS=100 BENCH_TURNS=5 BENCH_TTFT_MS=50 BENCH_TOKEN_DELAY_MS=10 BENCH_WORDS=30 \
 *   BENCH_DATABASE_URL=postgres://… BENCH_REDIS_URL=redis://… npm run bench:conversations
 *
 * Without BENCH_DATABASE_URL an embedded PostgreSQL serves the runtime and auth.
 */
import { randomUUID } from 'node:crypto';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { startEmbeddedPostgres } from '../../packages/service-kit/src/db.ts';
import { TEST_INTERNAL_KEY } from '../../packages/service-kit/src/testing.ts';
import { createUser } from '../../services/auth/src/users.ts';
import { FrameClient, passwordToken } from '../../test/helpers/stack.ts';
import { startProcess, type RunningProcess } from '../../test/helpers/processes.ts';
import { pct, timedTurn, type TimedTurn } from './timing.ts';

const CONVERSATIONS = Number(process.env.BENCH_CONVERSATIONS || 100);
const TURNS = Number(process.env.BENCH_TURNS || 5);
const TTFT_MS = Number(process.env.BENCH_TTFT_MS ?? 50);
const TOKEN_DELAY_MS = Number(process.env.BENCH_TOKEN_DELAY_MS ?? 10);
const WORDS = Number(process.env.BENCH_WORDS || 30);

const f1 = (n: number): string => n.toFixed(1);

const procs: RunningProcess[] = [];
let embedded: Awaited<ReturnType<typeof startEmbeddedPostgres>> | undefined;
try {
  let databaseUrl = process.env.BENCH_DATABASE_URL;
  if (!databaseUrl) {
    embedded = await startEmbeddedPostgres(undefined, 24);
    databaseUrl = embedded.url;
  }
  const redis: Record<string, string> = process.env.BENCH_REDIS_URL ? { AGENT_RUNTIME__REDIS_URL: process.env.BENCH_REDIS_URL } : {};
  const dataDir = await mkdtemp(path.join(tmpdir(), 'codelab-bench-conv-'));
  const common = { CODELAB_DATA_DIR: dataDir };
  const quiet = (p: string) => ({ [`${p}__LOG_LEVEL`]: 'warn' });
  const llm = await startProcess('llm-proxy', {
    ...common,
    ...quiet('LLM_PROXY'),
    LLM_PROXY__INTERNAL_API_KEY: TEST_INTERNAL_KEY,
    LLM_PROXY__MOCK_TTFT_MS: String(TTFT_MS),
    LLM_PROXY__MOCK_TOKEN_DELAY_MS: String(TOKEN_DELAY_MS),
    LLM_PROXY__MAX_CONCURRENT_REQUESTS: '1024',
  });
  const auth = await startProcess('auth', { ...common, ...quiet('AUTH_SERVICE'), AUTH_SERVICE__INTERNAL_API_KEY: TEST_INTERNAL_KEY, AUTH_SERVICE__DB_URL: databaseUrl, AUTH_SERVICE__MASTER_KEY: 'bench-admin-password' });
  const runtime = await startProcess('runtime', {
    ...common,
    ...quiet('AGENT_RUNTIME'),
    ...redis,
    AGENT_RUNTIME__INTERNAL_API_KEY: TEST_INTERNAL_KEY,
    AGENT_RUNTIME__DB_URL: databaseUrl,
    AGENT_RUNTIME__DB_POOL_SIZE: embedded ? '20' : '30',
    AGENT_RUNTIME__LLM_PROXY_URL: llm.url,
  });
  const gateway = await startProcess('gateway', { ...common, ...quiet('GATEWAY'), GATEWAY__INTERNAL_API_KEY: TEST_INTERNAL_KEY, GATEWAY__AGENT_URL: runtime.url, GATEWAY__AUTH_SERVICE_URL: auth.url });
  procs.push(gateway, runtime, auth, llm);

  const user = { username: `bench-${randomUUID()}`, password: randomUUID() };
  const pool = new pg.Pool({ connectionString: databaseUrl, max: 1 });
  await createUser(pool, { username: user.username, email: `${user.username}@bench.local`, password: user.password });
  await pool.end();
  const token = await passwordToken(auth.url, user.username, user.password);
  console.log(
    `${CONVERSATIONS} conversations × ${TURNS} turns; mock: TTFT ${TTFT_MS} ms, ${TOKEN_DELAY_MS} ms between tokens, ${WORDS} tokens; database: ${embedded ? 'embedded PGlite' : 'BENCH_DATABASE_URL'}${process.env.BENCH_REDIS_URL ? ', Redis' : ''}`,
  );

  const clients = await Promise.all(
    Array.from({ length: CONVERSATIONS }, async () => {
      const c = new FrameClient(`${gateway.url.replace('http', 'ws')}/api/v1/ws/bench-${randomUUID()}`, { authorization: `Bearer ${token}` });
      await c.open();
      return c;
    }),
  );
  // warm-up: every session's first turn (it is routed by the orchestrator: one more LLM call)
  await Promise.all(clients.map((c) => timedTurn(c, `explain something [[mock:words ${WORDS}]]`)));
  const samples: TimedTurn[] = [];
  // sampled while the turns run: the runtime's waiting database requests and event-loop lag
  const gauge = async (url: string, name: string): Promise<number> => {
    const line = (await (await fetch(`${url}/metrics`)).text()).split('\n').find((l) => l.startsWith(name));
    return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : NaN;
  };
  const peaks = { pending: 0, lagRuntime: 0, lagGateway: 0 };
  const sampler = setInterval(() => {
    void Promise.all([gauge(runtime.url, 'db_client_connection_pending_requests'), gauge(runtime.url, 'nodejs_eventloop_lag_p99_seconds'), gauge(gateway.url, 'nodejs_eventloop_lag_p99_seconds')])
      .then(([p, lr, lg]) => {
        peaks.pending = Math.max(peaks.pending, p);
        peaks.lagRuntime = Math.max(peaks.lagRuntime, lr * 1000);
        peaks.lagGateway = Math.max(peaks.lagGateway, lg * 1000);
      })
      .catch(() => undefined);
  }, 250);
  const started = performance.now();
  await Promise.all(
    clients.map(async (c, i) => {
      for (let k = 0; k < TURNS; k++) samples.push(await timedTurn(c, `conversation ${i} turn ${k} [[mock:words ${WORDS}]]`));
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  clearInterval(sampler);
  const ttft = samples.map((s) => s.ttftMs);
  const total = samples.map((s) => s.totalMs);
  const ideal = TTFT_MS + TOKEN_DELAY_MS * (WORDS - 1);
  console.log(`turns: ${samples.length} in ${f1(seconds)} s = ${f1(samples.length / seconds)} turns/s (ideal with no overhead: ${f1((CONVERSATIONS * 1000) / ideal)} turns/s)`);
  console.log(`client TTFT: p50 ${f1(pct(ttft, 50))} ms  p95 ${f1(pct(ttft, 95))} ms  p99 ${f1(pct(ttft, 99))} ms  (the mock's own: ${TTFT_MS} ms)`);
  console.log(`platform-added TTFT: p50 ${f1(pct(ttft, 50) - TTFT_MS)} ms  p99 ${f1(pct(ttft, 99) - TTFT_MS)} ms`);
  console.log(`turn duration: p50 ${f1(pct(total, 50))} ms  p99 ${f1(pct(total, 99))} ms  (the mock alone: ${ideal} ms)`);
  // where the time goes, from the services' own histograms (means over the whole run)
  const mean = async (url: string, name: string, match = ''): Promise<string> => {
    const text = await (await fetch(`${url}/metrics`)).text();
    const sum = (suffix: string) =>
      text
        .split('\n')
        .filter((l) => l.startsWith(`${name}_${suffix}`) && l.includes(match))
        .reduce((n, l) => n + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
    const count = sum('count');
    return count ? `${f1((sum('sum') / count) * 1000)} ms` : 'n/a';
  };
  console.log(
    [
      `means: gateway TTFT ${await mean(gateway.url, 'gateway_turn_time_to_first_token_seconds')}`,
      `runtime lease wait ${await mean(runtime.url, 'runtime_session_lock_wait_seconds')}`,
      `runtime → LLM first chunk ${await mean(runtime.url, 'gen_ai_client_operation_time_to_first_chunk_seconds')}`,
      `llm-proxy TTFT ${await mean(llm.url, 'gen_ai_server_time_to_first_token_seconds')}`,
      `runtime db query ${await mean(runtime.url, 'db_client_operation_duration_seconds')}`,
      `peaks while running: runtime db requests waiting for a connection ${peaks.pending}, event-loop lag p99 runtime ${f1(peaks.lagRuntime)} ms, gateway ${f1(peaks.lagGateway)} ms`,
    ].join('; '),
  );
  for (const c of clients) c.close();
} finally {
  for (const p of procs) await p.stop();
  await embedded?.stop();
}
