/**
 * `npm run bench:conversations`: many IDE conversations at once through the whole platform (each
 * service its own process): N WebSocket clients, each on its own session, each sending its turns
 * one after the other, against the mock LLM with fixed delays. Reports turns/s and the time to
 * first token as the client sees it (message sent → first token frame), next to the mock's own
 * configured time to first token, so the platform's share is visible. (`npm run bench:ttft` adds
 * the mock's time to first token measured directly, at the same concurrency, in the same run.)
 *
 *   BENCH_CONVERSATIONS=100 BENCH_TURNS=5 BENCH_TTFT_MS=50 BENCH_TOKEN_DELAY_MS=10 BENCH_WORDS=30 \
 *   BENCH_DATABASE_URL=postgres://… BENCH_REDIS_URL=redis://… npm run bench:conversations
 *
 * Without BENCH_DATABASE_URL an embedded PostgreSQL serves the runtime and auth.
 *
 * The helpers below (the platform for conversations, opening the clients, the where-the-time-goes
 * diagnostics) are what bench:ttft reuses.
 */
import { randomUUID } from 'node:crypto';
import { FrameClient } from '../../test/helpers/stack.ts';
import {
  benchDatabase,
  CPUS,
  histMean,
  histMeanMs,
  histPctMs,
  isMain,
  metricDelta,
  metricSum,
  scrape,
  startPlatform,
  type Platform,
} from './platform.ts';
import { pct, timedTurn, type TimedTurn } from './timing.ts';

const f1 = (n: number): string => n.toFixed(1);

export interface ConversationSettings {
  conversations: number;
  ttftMs: number;
  tokenDelayMs: number;
  words: number;
}

export function conversationSettings(): ConversationSettings {
  return {
    conversations: Number(process.env.BENCH_CONVERSATIONS || 100),
    ttftMs: Number(process.env.BENCH_TTFT_MS ?? 50),
    tokenDelayMs: Number(process.env.BENCH_TOKEN_DELAY_MS ?? 10),
    words: Number(process.env.BENCH_WORDS || 30),
  };
}

/** The platform for many conversations: the mock with fixed delays, a runtime pool sized for them. */
export function startConversationPlatform(s: ConversationSettings, databaseUrl: string, embedded: boolean): Promise<Platform> {
  return startPlatform({
    databaseUrl,
    redisUrl: process.env.BENCH_REDIS_URL,
    mock: { ttftMs: s.ttftMs, tokenDelayMs: s.tokenDelayMs },
    services: { runtime: { AGENT_RUNTIME__DB_POOL_SIZE: embedded ? '20' : '30' } },
  });
}

/** One WebSocket client per conversation, each on a new session, after its first turn (routed by the orchestrator: one more LLM call). */
export async function openConversations(platform: Platform, s: ConversationSettings): Promise<FrameClient[]> {
  const clients = await Promise.all(
    Array.from({ length: s.conversations }, async () => {
      const c = new FrameClient(platform.wsUrl(`bench-${randomUUID()}`), { authorization: `Bearer ${platform.token}` });
      await c.open();
      return c;
    }),
  );
  await Promise.all(clients.map((c) => timedTurn(c, `explain something [[mock:words ${s.words}]]`)));
  return clients;
}

/**
 * Samples, while turns run, the runtime's requests waiting for a database connection and both event
 * loops' lag (peaks). One scrape per service every 2 s: a /metrics render holds the event loop for
 * a few ms, and sampling more often would show in the very tail latencies being measured.
 */
export function samplePeaks(platform: Platform): { stop(): { pending: number; lagRuntime: number; lagGateway: number } } {
  const peaks = { pending: 0, lagRuntime: 0, lagGateway: 0 };
  // BENCH_PEAKS=0: no scrapes during the phase (peaks then read as NaN), to see what they cost the tail
  if (process.env.BENCH_PEAKS === '0') return { stop: () => ({ pending: NaN, lagRuntime: NaN, lagGateway: NaN }) };
  const timer = setInterval(() => {
    void Promise.all([scrape(platform.runtime.url), scrape(platform.gateway.url)])
      .then(([rt, gw]) => {
        peaks.pending = Math.max(peaks.pending, metricSum(rt, 'db_client_connection_pending_requests'));
        peaks.lagRuntime = Math.max(peaks.lagRuntime, metricSum(rt, 'nodejs_eventloop_lag_p99_seconds') * 1000);
        peaks.lagGateway = Math.max(peaks.lagGateway, metricSum(gw, 'nodejs_eventloop_lag_p99_seconds') * 1000);
      })
      .catch(() => undefined);
  }, 2000);
  return {
    stop: () => {
      clearInterval(timer);
      return peaks;
    },
  };
}

/** The services' /metrics at one moment (for differences over a phase). */
export interface Scrapes {
  gateway: string;
  runtime: string;
  llm: string;
}
export async function scrapeAll(platform: Platform): Promise<Scrapes> {
  const [gateway, runtime, llm] = await Promise.all([scrape(platform.gateway.url), scrape(platform.runtime.url), scrape(platform.llm.url)]);
  return { gateway, runtime, llm };
}

/** Where a turn's time goes between two scrapes, from the services' own histograms (means; p99 as a bucket bound). */
export function whereTimeGoes(a: Scrapes, b: Scrapes, turns: number): string {
  const ms = (n: number): string => (Number.isFinite(n) ? `${f1(n)} ms` : 'n/a');
  const queries = metricDelta(a.runtime, b.runtime, 'db_client_operation_duration_seconds_count');
  return [
    `gateway TTFT (frame in → first token out) mean ${ms(histMeanMs(a.gateway, b.gateway, 'gateway_turn_time_to_first_token_seconds'))}, p99 <= ${ms(histPctMs(a.gateway, b.gateway, 'gateway_turn_time_to_first_token_seconds', 99))}`,
    // until response headers, waiting for a free pooled connection included (PeerClient: 64 per peer)
    `gateway → runtime stream until headers mean ${ms(histMeanMs(a.gateway, b.gateway, 'http_client_request_duration_seconds', 'route="/agent/message/stream"'))}`,
    `runtime lease wait ${ms(histMeanMs(a.runtime, b.runtime, 'runtime_session_lock_wait_seconds'))}`,
    `runtime → llm-proxy until headers mean ${ms(histMeanMs(a.runtime, b.runtime, 'http_client_request_duration_seconds', 'route="/v1/chat/completions"'))}`,
    `runtime → LLM first chunk ${ms(histMeanMs(a.runtime, b.runtime, 'gen_ai_client_operation_time_to_first_chunk_seconds'))}`,
    `llm-proxy TTFT ${ms(histMeanMs(a.llm, b.llm, 'gen_ai_server_time_to_first_token_seconds'))}`,
    `runtime db: ${f1(queries / turns)} queries per turn, mean ${ms(histMeanMs(a.runtime, b.runtime, 'db_client_operation_duration_seconds'))}`,
    // histories read with the turn's lease: only the messages after those kept from the session's last turn (history-cache.ts)
    `history read after the kept messages ${f1((100 * metricDelta(a.runtime, b.runtime, 'runtime_history_reads_total', 'read="after_kept"')) / Math.max(1, metricDelta(a.runtime, b.runtime, 'runtime_history_reads_total')))}% of turns`,
    // token frames, and how many answers' frames left together at each tick of the runtime's frame clock (one frame-log pipeline)
    `token frames ${f1(metricDelta(a.runtime, b.runtime, 'runtime_answer_frame_tokens_count') / turns)} per turn, ${f1(histMean(a.runtime, b.runtime, 'runtime_frame_tick_answers'))} answers per frame tick`,
  ].join('; ');
}

if (isMain(import.meta.url)) {
  const s = conversationSettings();
  const TURNS = Number(process.env.BENCH_TURNS || 5);
  let platform: Platform | undefined;
  const db = await benchDatabase(24);
  try {
    platform = await startConversationPlatform(s, db.url, db.embedded);
    console.log(
      `${s.conversations} conversations × ${TURNS} turns; mock: TTFT ${s.ttftMs} ms, ${s.tokenDelayMs} ms between tokens, ${s.words} tokens; database: ${db.describe}${process.env.BENCH_REDIS_URL ? ', Redis' : ''}; ${CPUS} CPUs`,
    );
    const clients = await openConversations(platform, s);
    const samples: TimedTurn[] = [];
    const before = await scrapeAll(platform);
    const sampler = samplePeaks(platform);
    const started = performance.now();
    await Promise.all(
      clients.map(async (c, i) => {
        for (let k = 0; k < TURNS; k++) samples.push(await timedTurn(c, `conversation ${i} turn ${k} [[mock:words ${s.words}]]`));
      }),
    );
    const seconds = (performance.now() - started) / 1000;
    const peaks = sampler.stop();
    const after = await scrapeAll(platform);
    const ttft = samples.map((x) => x.ttftMs);
    const total = samples.map((x) => x.totalMs);
    const ideal = s.ttftMs + s.tokenDelayMs * (s.words - 1);
    console.log(
      `turns: ${samples.length} in ${f1(seconds)} s = ${f1(samples.length / seconds)} turns/s (ideal with no overhead: ${f1((s.conversations * 1000) / ideal)} turns/s)`,
    );
    console.log(
      `client TTFT: p50 ${f1(pct(ttft, 50))} ms  p95 ${f1(pct(ttft, 95))} ms  p99 ${f1(pct(ttft, 99))} ms  (the mock's own: ${s.ttftMs} ms)`,
    );
    console.log(`platform-added TTFT: p50 ${f1(pct(ttft, 50) - s.ttftMs)} ms  p99 ${f1(pct(ttft, 99) - s.ttftMs)} ms`);
    console.log(`turn duration: p50 ${f1(pct(total, 50))} ms  p99 ${f1(pct(total, 99))} ms  (the mock alone: ${ideal} ms)`);
    console.log(
      `means: ${whereTimeGoes(before, after, samples.length)}; peaks while running: runtime db requests waiting for a connection ${peaks.pending}, ` +
        `event-loop lag p99 runtime ${f1(peaks.lagRuntime)} ms, gateway ${f1(peaks.lagGateway)} ms`,
    );
    for (const c of clients) c.close();
  } finally {
    await platform?.stop();
    await db.stop();
  }
}
