/**
 * `npm run bench:ttft`: the time to first token the platform adds. N conversations at once (default
 * 100) through the whole platform (WebSocket client → gateway → runtime → llm-proxy mock → back,
 * each service its own process, as bench:conversations), against the same mock streamed directly
 * by N concurrent clients (the reference: the mock's own time to first token, HTTP included), in
 * the same run: direct and platform phases alternate in rounds. The mock has fixed delays (TTFT
 * 50 ms, 10 ms between tokens). Target: platform-added TTFT p99 < 10 ms at 100 conversations.
 *
 * Conversations are staggered over one turn's length, so turns arrive evenly (about N in flight at
 * any time, as with N independent users); BENCH_STAGGER=0 starts every conversation at once, so all
 * N turns of a round arrive in the same millisecond (a worst case: bursts). The same applies to the
 * direct reference.
 *
 * Where the time goes: the services' own histograms over the platform phases (gateway TTFT,
 * runtime lease wait, runtime → LLM first chunk, llm-proxy TTFT, database queries per turn), peaks
 * of event-loop lag and waiting database requests, and the CPU time of each process per turn.
 *
 *   BENCH_CONVERSATIONS=100 BENCH_TURNS=5 BENCH_ROUNDS=4 BENCH_TTFT_MS=50 BENCH_TOKEN_DELAY_MS=10 BENCH_WORDS=30 \
 *   BENCH_DATABASE_URL=postgres://… BENCH_REDIS_URL=redis://… npm run bench:ttft
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { Agent } from 'undici';
import type { FrameClient } from '../../test/helpers/stack.ts';
import {
  conversationSettings,
  openConversations,
  samplePeaks,
  scrapeAll,
  startConversationPlatform,
  whereTimeGoes,
  type Scrapes,
} from './conversations.ts';
import { f1 } from './load.ts';
import { benchDatabase, CpuMeter, cpuPerOp, CPUS, platformCpuGroups, result, TEST_INTERNAL_KEY, type Platform } from './platform.ts';
import { directStream, pct, timedTurn } from './timing.ts';

const s = conversationSettings();
const TURNS = Number(process.env.BENCH_TURNS || 5);
const ROUNDS = Number(process.env.BENCH_ROUNDS || 4);
const STAGGER = process.env.BENCH_STAGGER !== '0';
const TARGET_MS = 10;
const ideal = s.ttftMs + s.tokenDelayMs * (s.words - 1);

/** N conversations of TURNS turns each, conversation i starting i/N of a turn later (when staggered). */
async function phase(turn: (i: number, k: number) => Promise<number>): Promise<{ ttft: number[]; seconds: number }> {
  const ttft: number[] = [];
  const started = performance.now();
  await Promise.all(
    Array.from({ length: s.conversations }, async (_, i) => {
      if (STAGGER) await sleep((i * ideal) / s.conversations);
      for (let k = 0; k < TURNS; k++) ttft.push(await turn(i, k));
    }),
  );
  return { ttft, seconds: (performance.now() - started) / 1000 };
}

let platform: Platform | undefined;
let clients: FrameClient[] = [];
const agent = new Agent({ connections: 4096, pipelining: 1, keepAliveTimeout: 60_000 });
const db = await benchDatabase(24);
try {
  platform = await startConversationPlatform(s, db.url, db.embedded);
  const p = platform;
  console.log(
    `${s.conversations} concurrent conversations × ${TURNS} turns × ${ROUNDS} rounds, ${STAGGER ? 'staggered over one turn (steady arrivals)' : 'all at once (bursts)'}; ` +
      `mock: TTFT ${s.ttftMs} ms, ${s.tokenDelayMs} ms between tokens, ${s.words} tokens (a turn >= ${ideal} ms); database: ${db.describe}${process.env.BENCH_REDIS_URL ? ', Redis' : ''}; ${CPUS} CPUs`,
  );
  clients = await openConversations(p, s);
  const direct = (i: number, k: number) =>
    directStream(p.llm.url, TEST_INTERNAL_KEY, `direct ${i} turn ${k} [[mock:words ${s.words}]]`, agent).then((r) => r.ttftMs);
  const viaPlatform = async (i: number, k: number): Promise<number> => {
    const c = clients[i]!;
    const t = await timedTurn(c, `conversation ${i} turn ${k} [[mock:words ${s.words}]]`);
    c.frames.length = 0;
    return t.ttftMs;
  };
  // warm-up: the direct path's connections and JIT (the platform's came with the first turns)
  await phase(direct);

  const meter = new CpuMeter(platformCpuGroups(p));
  const directTtft: number[] = [];
  const platformTtft: number[] = [];
  const roundP99: { direct: number; platform: number }[] = [];
  const cpu: Record<string, number> = {};
  let platformSeconds = 0;
  let before: Scrapes | undefined;
  let after: Scrapes | undefined;
  let peaks = { pending: 0, lagRuntime: 0, lagGateway: 0 };
  // Histograms are cumulative: the first platform phase's start to the last one's end spans the
  // direct phases in between too, which touch only the llm-proxy (its TTFT mean then mixes both).
  for (let r = 0; r < ROUNDS; r++) {
    const round = { direct: NaN, platform: NaN };
    for (const which of r % 2 === 0 ? (['direct', 'platform'] as const) : (['platform', 'direct'] as const)) {
      if (which === 'direct') {
        const d = await phase(direct);
        directTtft.push(...d.ttft);
        round.direct = pct(d.ttft, 99);
      } else {
        before ??= await scrapeAll(p);
        const sampler = samplePeaks(p);
        meter.start();
        const ph = await phase(viaPlatform);
        const m = meter.stop();
        const pk = sampler.stop();
        peaks = {
          pending: Math.max(peaks.pending, pk.pending),
          lagRuntime: Math.max(peaks.lagRuntime, pk.lagRuntime),
          lagGateway: Math.max(peaks.lagGateway, pk.lagGateway),
        };
        for (const [g, ms] of Object.entries(m.cpu)) cpu[g] = (cpu[g] ?? 0) + ms;
        platformSeconds += ph.seconds;
        platformTtft.push(...ph.ttft);
        round.platform = pct(ph.ttft, 99);
        after = await scrapeAll(p);
      }
    }
    roundP99.push(round);
    console.log(
      `  round ${r + 1}: TTFT p99 direct ${f1(round.direct)} ms, platform ${f1(round.platform)} ms, added ${f1(round.platform - round.direct)} ms`,
    );
  }

  const line = (name: string, xs: number[]): string =>
    `${name.padEnd(34)} p50 ${f1(pct(xs, 50)).padStart(6)} ms  p95 ${f1(pct(xs, 95)).padStart(6)} ms  p99 ${f1(pct(xs, 99)).padStart(6)} ms  max ${f1(Math.max(...xs)).padStart(6)} ms  (${xs.length} turns)`;
  console.log(`\n${line('mock, direct (reference)', directTtft)}`);
  console.log(line('platform (WS → gw → rt → llm-proxy)', platformTtft));
  const added50 = pct(platformTtft, 50) - pct(directTtft, 50);
  const added99 = pct(platformTtft, 99) - pct(directTtft, 99);
  console.log(
    `platform-added TTFT: p50 +${f1(added50)} ms, p99 +${f1(added99)} ms (per round: ${roundP99.map((x) => f1(x.platform - x.direct)).join(', ')} ms); ` +
      `platform / direct TTFT p99 x${(pct(platformTtft, 99) / pct(directTtft, 99)).toFixed(2)}; target: added p99 < ${TARGET_MS} ms: ${added99 < TARGET_MS ? 'met' : 'MISSED'}`,
  );
  const turns = platformTtft.length;
  const busy = Object.entries(cpu).reduce((a, [, ms]) => a + ms, 0) / (platformSeconds * 1000 * CPUS);
  console.log(`where the time goes (platform phases): ${whereTimeGoes(before!, after!, turns)}`);
  console.log(
    `peaks: runtime db requests waiting for a connection ${peaks.pending}, event-loop lag p99 runtime ${f1(peaks.lagRuntime)} ms, gateway ${f1(peaks.lagGateway)} ms; ` +
      `CPU per turn: ${cpuPerOp(cpu, turns)}; the ${CPUS} CPUs were ${(busy * 100).toFixed(0)}% busy (${f1(turns / platformSeconds)} turns/s)`,
  );
  result(
    'ttft',
    `${s.conversations} conversations: TTFT p99 platform ${f1(pct(platformTtft, 99))} ms vs mock direct ${f1(pct(directTtft, 99))} ms: platform adds p50 ${f1(added50)} ms, p99 ${f1(added99)} ms; ` +
      `target < ${TARGET_MS} ms: ${added99 < TARGET_MS ? 'met' : 'MISSED'}`,
  );
} finally {
  for (const c of clients) c.close();
  await platform?.stop();
  await agent.close();
  await db.stop();
}
