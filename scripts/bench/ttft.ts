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
 * of event-loop lag and waiting database requests (BENCH_PEAKS=0: not sampled, as their scrapes
 * hold the services' event loops), the CPU time of each process per turn, and for each open round
 * when its slowest 1% of turns arrived: bunched together they are one stall of the platform.
 *
 *   BENCH_CONVERSATIONS=100 BENCH_TURNS=5 BENCH_ROUNDS=4 BENCH_TTFT_MS=50 BENCH_TOKEN_DELAY_MS=10 BENCH_WORDS=30 \
 *   BENCH_DATABASE_URL=postgres://… BENCH_REDIS_URL=redis://… npm run bench:ttft
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
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
import { f1, helloCpuPerRequest, startHelloFastify } from './load.ts';
import {
  benchDatabase,
  writeTransactionCounter,
  addDetail,
  BusyTimeline,
  CpuMeter,
  cpuPerOp,
  CPUS,
  metricDelta,
  platformCpuGroups,
  procDetailPerOp,
  type ProcSample,
  result,
  TEST_INTERNAL_KEY,
  type Platform,
} from './platform.ts';
import { reportTarget } from './targets.ts';
import { directStream, pct, timedTurn } from './timing.ts';

const s = conversationSettings();
const TURNS = Number(process.env.BENCH_TURNS || 5);
const ROUNDS = Number(process.env.BENCH_ROUNDS || 4);
const STAGGER = process.env.BENCH_STAGGER !== '0';
const OPEN_SECONDS = Number(process.env.BENCH_OPEN_SECONDS || 15);
const OPEN_ROUNDS = Number(process.env.BENCH_OPEN_ROUNDS || 2);
const TARGET_MS = 10;
const TARGET_CPU_MS = 5.5;
const TARGET_COMMITS = 2;
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

/**
 * Open model: turns arrive as a Poisson process at `rate` per second for `seconds`; each takes a
 * free conversation (`free` indexes; it waits for one when all are busy, which counts as its TTFT).
 */
async function openPhase(
  rate: number,
  seconds: number,
  turn: (i: number, k: number) => Promise<number>,
  conversations: number,
): Promise<{ ttft: number[]; seconds: number; waitedForFree: number; timeline: Arrival[]; startedMs: number }> {
  const free = Array.from({ length: conversations }, (_, i) => i);
  const waiting: ((i: number) => void)[] = [];
  const timeline: Arrival[] = [];
  const inFlight: Promise<void>[] = [];
  let waitedForFree = 0;
  let k = 0;
  const started = performance.now();
  const end = started + seconds * 1000;
  let next = started;
  for (;;) {
    next += (-Math.log(1 - Math.random()) / rate) * 1000;
    if (next >= end) break;
    const delay = next - performance.now();
    if (delay > 0) await sleep(delay);
    const arrived = performance.now();
    const n = k++;
    inFlight.push(
      (async () => {
        let i = free.pop();
        if (i === undefined) {
          waitedForFree++;
          i = await new Promise<number>((resolve) => waiting.push(resolve));
        }
        const queued = performance.now() - arrived;
        try {
          timeline.push({ atMs: arrived - started, ttftMs: queued + (await turn(i, n)) });
        } finally {
          const w = waiting.shift();
          if (w) w(i);
          else free.push(i);
        }
      })(),
    );
  }
  await Promise.all(inFlight);
  return {
    ttft: timeline.map((a) => a.ttftMs),
    seconds: (performance.now() - started) / 1000,
    waitedForFree,
    timeline,
    startedMs: started,
  };
}

/** One open-model turn: when it arrived in its phase, and its TTFT. */
interface Arrival {
  atMs: number;
  ttftMs: number;
}

/**
 * How busy the machine's CPUs were while turns waited for their first token: over the slowest 1%
 * of a phase's turns, over its fastest half, and over the whole phase. Near 100% for the slowest
 * (and without a garbage-collection pause or a stalled disk to explain them), they queued for a CPU.
 */
function busyWhileWaiting(
  timeline: Arrival[],
  startedMs: number,
  busy: BusyTimeline,
): Record<'slowest' | 'fastHalf' | 'phase', { busy: number; outside: number }> {
  const sorted = [...timeline].sort((a, b) => a.ttftMs - b.ttftMs);
  const mean = (xs: Arrival[], of: (from: number, to: number) => number): number => {
    const v = xs.map((a) => of(startedMs + a.atMs, startedMs + a.atMs + a.ttftMs)).filter(Number.isFinite);
    return v.reduce((x, y) => x + y, 0) / v.length;
  };
  const both = (xs: Arrival[]) => ({ busy: mean(xs, (a, b) => busy.busy(a, b)), outside: mean(xs, (a, b) => busy.outside(a, b)) });
  const last = timeline.reduce((m, a) => Math.max(m, a.atMs + a.ttftMs), 0);
  return {
    slowest: both(sorted.slice(-Math.max(1, Math.ceil(sorted.length / 100)))),
    fastHalf: both(sorted.slice(0, Math.ceil(sorted.length / 2))),
    phase: { busy: busy.busy(startedMs, startedMs + last), outside: busy.outside(startedMs, startedMs + last) },
  };
}

/**
 * When the slowest 1% of a phase's turns arrived: bunched within a few hundred ms, they are one
 * stall of the platform (a pause every turn in flight waited out); spread over the phase, queueing.
 */
function slowestArrivals(timeline: Arrival[]): string {
  const n = Math.max(1, Math.ceil(timeline.length / 100));
  const slow = [...timeline].sort((a, b) => b.ttftMs - a.ttftMs).slice(0, n);
  slow.sort((a, b) => a.atMs - b.atMs);
  return slow.map((a) => `${(a.atMs / 1000).toFixed(2)} s: ${a.ttftMs.toFixed(0)}`).join(', ');
}

/**
 * The full (mark-compact) collections of each service between two scrapes (the kit's
 * nodejs_gc_duration_seconds{kind="major"}: their pauses), and the time of all its collections.
 * The open rounds' slowest turns bunch on collections (traced with BENCH_NODE_ARGS=--trace-gc,
 * `npm run bench:gc`): a full collection holds the turns in flight 20-40 ms, longer than its pause
 * (the marking before it runs beside them); a scavenge 4-12 ms in each process a turn crosses.
 */
function fullCollections(a: Scrapes, b: Scrapes): string {
  return (['runtime', 'gateway', 'llm'] as const)
    .map((k) => {
      const full = metricDelta(a[k], b[k], 'nodejs_gc_duration_seconds_count', 'kind="major"');
      const fullMs = metricDelta(a[k], b[k], 'nodejs_gc_duration_seconds_sum', 'kind="major"') * 1000;
      const allMs = metricDelta(a[k], b[k], 'nodejs_gc_duration_seconds_sum') * 1000;
      return `${k === 'llm' ? 'llm-proxy' : k} ${full} full (pauses ${full ? f1(fullMs / full) : '-'} ms mean), ${f1(allMs)} ms in all collections`;
    })
    .join('; ');
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
  // The reference for CPU: one bare fastify hello-world request, measured now, on the same machine.
  const hello = await startHelloFastify();
  const helloRef = await helloCpuPerRequest(hello).finally(() => hello.stop());
  console.log(
    `reference: a bare fastify hello-world request costs ${helloRef.cpuMsPerRequest.toFixed(4)} CPU ms in its server (${helloRef.rps.toFixed(0)} req/s under autocannon)`,
  );
  const commits = await writeTransactionCounter(db.url, db.embedded);
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

  // the platform's processes, PostgreSQL's and Redis' when local, and this one (the load): the rest of the machine is "outside"
  const cpuGroups = platformCpuGroups(p);
  const busyTimeline = new BusyTimeline(20, () => [...Object.values(cpuGroups).flatMap((pids) => pids()), process.pid]);
  const meter = new CpuMeter(cpuGroups);
  const pc = (x: number): string => `${(x * 100).toFixed(0)}%`;
  /**
   * `n` rounds of a direct phase and a platform phase, alternating which goes first. Over the
   * platform phases: CPU per process, write commits, the services' metrics at the first start and
   * the last end (histograms are cumulative: the span includes the direct phases in between, which
   * touch only the llm-proxy), and peaks of event-loop lag and of requests waiting for a connection.
   * With `sampleBusy` (the open model's rounds, whose phases give their timeline), the CPUs' busy
   * time is sampled while a platform phase runs (busyWhileWaiting); the closed rounds do without it.
   */
  const measureRounds = async (
    n: number,
    label: string,
    runDirect: () => Promise<{ ttft: number[] }>,
    runPlatform: () => Promise<{
      ttft: number[];
      seconds: number;
      waitedForFree?: number;
      timeline?: Arrival[];
      startedMs?: number;
    }>,
    sampleBusy = false,
  ) => {
    const m = {
      direct: [] as number[],
      platform: [] as number[],
      added: [] as number[],
      cpu: {} as Record<string, number>,
      detail: {} as Record<string, ProcSample>,
      seconds: 0,
      writeCommits: 0,
      waitedForFree: 0,
      before: undefined as Scrapes | undefined,
      after: undefined as Scrapes | undefined,
      peaks: { pending: 0, lagRuntime: 0, lagGateway: 0 },
    };
    for (let r = 0; r < n; r++) {
      const round: {
        direct: number;
        platform: number;
        timeline?: Arrival[];
        startedMs?: number;
        clientLagMs?: number;
        busy?: ReturnType<typeof busyWhileWaiting>;
      } = {
        direct: NaN,
        platform: NaN,
      };
      for (const which of r % 2 === 0 ? (['direct', 'platform'] as const) : (['platform', 'direct'] as const)) {
        if (which === 'direct') {
          const d = await runDirect();
          m.direct.push(...d.ttft);
          round.direct = pct(d.ttft, 99);
          continue;
        }
        m.before ??= await scrapeAll(p);
        const sampler = samplePeaks(p);
        const xids = await commits?.read();
        // this process's own event loop: a stall here delays the arrival of every first token it times
        const clientLag = monitorEventLoopDelay({ resolution: 5 });
        clientLag.enable();
        meter.start();
        if (sampleBusy) busyTimeline.start();
        const ph = await runPlatform();
        if (sampleBusy) busyTimeline.stop();
        const used = meter.stop();
        if (sampleBusy && ph.timeline && ph.startedMs !== undefined) round.busy = busyWhileWaiting(ph.timeline, ph.startedMs, busyTimeline);
        clientLag.disable();
        round.clientLagMs = clientLag.max / 1e6;
        if (xids !== undefined) m.writeCommits += (await commits!.read()) - xids;
        const pk = sampler.stop();
        m.peaks = {
          pending: Math.max(m.peaks.pending, pk.pending),
          lagRuntime: Math.max(m.peaks.lagRuntime, pk.lagRuntime),
          lagGateway: Math.max(m.peaks.lagGateway, pk.lagGateway),
        };
        for (const [g, ms] of Object.entries(used.cpu)) m.cpu[g] = (m.cpu[g] ?? 0) + ms;
        addDetail(m.detail, used.detail);
        m.seconds += ph.seconds;
        m.waitedForFree += ph.waitedForFree ?? 0;
        m.platform.push(...ph.ttft);
        round.platform = pct(ph.ttft, 99);
        round.timeline = ph.timeline;
        round.startedMs = ph.startedMs;
        m.after = await scrapeAll(p);
      }
      m.added.push(round.platform - round.direct);
      console.log(
        `  ${label} ${r + 1}: TTFT p99 direct ${f1(round.direct)} ms, platform ${f1(round.platform)} ms, added ${f1(round.platform - round.direct)} ms; ` +
          `the client's (this process's) longest event-loop stall ${f1(round.clientLagMs ?? NaN)} ms` +
          (round.timeline
            ? `; slowest 1% arrived at (s after ${new Date(performance.timeOrigin + (round.startedMs ?? 0)).toISOString().slice(11, 23)}: TTFT ms) ${slowestArrivals(round.timeline)}`
            : '') +
          (round.busy
            ? `; CPUs busy while turns waited for their first token (of them, with processes outside the platform): ${(
                ['slowest', 'fastHalf', 'phase'] as const
              )
                .map(
                  (k) =>
                    `${{ slowest: 'slowest 1%', fastHalf: 'fastest half', phase: 'the whole phase' }[k]} ${pc(round.busy![k].busy)} (${pc(Math.max(0, round.busy![k].outside))})`,
                )
                .join(', ')}`
            : ''),
      );
    }
    return m;
  };
  const line = (name: string, xs: number[]): string =>
    `${name.padEnd(34)} p50 ${f1(pct(xs, 50)).padStart(6)} ms  p95 ${f1(pct(xs, 95)).padStart(6)} ms  p99 ${f1(pct(xs, 99)).padStart(6)} ms  max ${f1(Math.max(...xs)).padStart(6)} ms  (${xs.length} turns)`;

  // Closed model: the capacity.
  const closed = await measureRounds(
    ROUNDS,
    'round',
    () => phase(direct),
    () => phase(viaPlatform),
  );
  console.log(`\n${line('mock, direct (reference)', closed.direct)}`);
  console.log(line('platform (WS → gw → rt → llm-proxy)', closed.platform));
  const added50 = pct(closed.platform, 50) - pct(closed.direct, 50);
  const added99 = pct(closed.platform, 99) - pct(closed.direct, 99);
  console.log(
    `platform-added TTFT: p50 +${f1(added50)} ms, p99 +${f1(added99)} ms (per round: ${closed.added.map(f1).join(', ')} ms); ` +
      `platform / direct TTFT p99 x${(pct(closed.platform, 99) / pct(closed.direct, 99)).toFixed(2)} (closed model, near capacity: the TTFT target is the open model's, below)`,
  );
  const turns = closed.platform.length;
  const busy = Object.entries(closed.cpu).reduce((a, [, ms]) => a + ms, 0) / (closed.seconds * 1000 * CPUS);
  console.log(`where the time goes (platform phases): ${whereTimeGoes(closed.before!, closed.after!, turns)}`);
  console.log(
    `peaks: runtime db requests waiting for a connection ${closed.peaks.pending}, event-loop lag p99 runtime ${f1(closed.peaks.lagRuntime)} ms, gateway ${f1(closed.peaks.lagGateway)} ms; ` +
      `CPU per turn: ${cpuPerOp(closed.cpu, turns)}; the ${CPUS} CPUs were ${(busy * 100).toFixed(0)}% busy (${f1(turns / closed.seconds)} turns/s)`,
  );
  console.log(`per turn and process (closed): ${procDetailPerOp(closed.detail, turns)}`);
  const capacity = turns / closed.seconds;
  const serverCpu = Object.entries(closed.cpu).filter(([g]) => g !== 'client');
  const cpuPerTurn = serverCpu.reduce((a, [, ms]) => a + ms, 0) / turns;
  const commitsPerTurn = commits ? closed.writeCommits / turns : NaN;
  const statementsPerTurn =
    metricDelta(closed.before!.runtime, closed.after!.runtime, 'db_client_operation_duration_seconds_count') / turns;
  console.log(
    `capacity (closed model, ${s.conversations} conversations): ${f1(capacity)} turns/s; server CPU per turn ${cpuPerTurn.toFixed(2)} ms = ` +
      `${f1(cpuPerTurn / helloRef.cpuMsPerRequest)} bare fastify hello-world requests; database: ${Number.isFinite(commitsPerTurn) ? `${commitsPerTurn.toFixed(2)} write commits per turn (transaction ids given out), ` : ''}` +
      `${statementsPerTurn.toFixed(1)} runtime statements per turn`,
  );

  // Open model at half of the capacity just measured (BENCH_OPEN_ROUNDS=0: not measured).
  const rate = capacity / 2;
  const open =
    OPEN_ROUNDS > 0
      ? await measureRounds(
          OPEN_ROUNDS,
          `open round at ${f1(rate)} turns/s`,
          () => openPhase(rate, OPEN_SECONDS, direct, 100_000),
          () => openPhase(rate, OPEN_SECONDS, viaPlatform, clients.length),
          true,
        )
      : undefined;
  await commits?.close();
  const openAdded99 = open ? pct(open.platform, 99) - pct(open.direct, 99) : NaN;
  if (open) {
    const openTurns = open.platform.length;
    const openAdded50 = pct(open.platform, 50) - pct(open.direct, 50);
    console.log(line('open: mock, direct (reference)', open.direct));
    console.log(line('open: platform', open.platform));
    console.log(
      `open model at ${f1(rate)} turns/s (half of ${f1(capacity)}): platform-added TTFT p50 +${f1(openAdded50)} ms, p99 +${f1(openAdded99)} ms; ` +
        `CPU per turn: ${cpuPerOp(open.cpu, openTurns)}${open.waitedForFree ? `; ${open.waitedForFree} arrivals found all ${clients.length} conversations busy` : ''}`,
    );
    console.log(
      `where the time goes (open phases): ${whereTimeGoes(open.before!, open.after!, openTurns)}; peaks: event-loop lag p99 runtime ${f1(open.peaks.lagRuntime)} ms, ` +
        `gateway ${f1(open.peaks.lagGateway)} ms, runtime db requests waiting ${open.peaks.pending}`,
    );
    console.log(`per turn and process (open): ${procDetailPerOp(open.detail, openTurns)}`);
    console.log(`garbage collection (open phases): ${fullCollections(open.before!, open.after!)}`);
  } else console.log('open model: not measured (BENCH_OPEN_ROUNDS=0)');

  const perService = serverCpu
    .sort((a, b) => b[1] - a[1])
    .map(([g, ms]) => `${g} ${(ms / turns).toFixed(2)}`)
    .join(', ');
  reportTarget({
    id: 'cpu-per-turn',
    measured: `${cpuPerTurn.toFixed(2)} ms (${perService})`,
    ratio: `= ${f1(cpuPerTurn / helloRef.cpuMsPerRequest)} bare fastify hello-world requests (${helloRef.cpuMsPerRequest.toFixed(4)} ms each); ${f1(capacity)} turns/s closed`,
    met: cpuPerTurn <= TARGET_CPU_MS,
  });
  if (Number.isFinite(commitsPerTurn))
    reportTarget({
      id: 'commits-per-turn',
      measured: `${commitsPerTurn.toFixed(2)} write commits per turn`,
      ratio: `x${(commitsPerTurn / TARGET_COMMITS).toFixed(2)} the goal; ${statementsPerTurn.toFixed(1)} runtime statements per turn`,
      met: commitsPerTurn <= TARGET_COMMITS,
    });
  else console.log('commits per turn: not measured on an embedded database (set BENCH_DATABASE_URL)');
  if (open)
    reportTarget({
      id: 'ttft-open',
      measured: `+${f1(openAdded99)} ms at ${f1(rate)} turns/s (half of ${f1(capacity)})`,
      ratio: `platform p99 ${f1(pct(open.platform, 99))} ms vs mock direct p99 ${f1(pct(open.direct, 99))} ms at the same arrivals`,
      met: openAdded99 < TARGET_MS,
    });
  result(
    'ttft',
    `${s.conversations} conversations: TTFT p99 platform ${f1(pct(closed.platform, 99))} ms vs mock direct ${f1(pct(closed.direct, 99))} ms: platform adds p50 ${f1(added50)} ms, p99 ${f1(added99)} ms; ` +
      `(closed model: capacity ${f1(capacity)} turns/s); open model at half of it: ${open ? `added p99 ${f1(openAdded99)} ms, target < ${TARGET_MS} ms: ${openAdded99 < TARGET_MS ? 'met' : 'MISSED'}` : 'not measured'}; ` +
      `CPU per turn ${cpuPerTurn.toFixed(2)} ms (target <= ${TARGET_CPU_MS})`,
  );
} finally {
  for (const c of clients) c.close();
  await platform?.stop();
  await agent.close();
  await db.stop();
}
