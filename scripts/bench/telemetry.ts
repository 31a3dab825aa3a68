/**
 * `npm run bench:telemetry`: what the platform's telemetry costs in throughput. The same workload
 * (REST reads through the gateway, driven by autocannon, and WebSocket conversation turns against the
 * mock LLM at 0 ms delays, at the same time) runs against three copies of the whole platform, each
 * service its own process, started side by side and measured one at a time in rounds (every second
 * round in the reverse order of the one before, and the order rotates every pair, so drift of the
 * shared machine falls on every configuration alike), once the machine is quiet:
 *
 * - off:     no tracing (no OTEL_* variables: the SDK is not even loaded), logs at `fatal` (nothing
 *            written), no scrapes. prom-client still records metrics in process: the kit has no
 *            setting to turn that off, so its (small) cost is in every configuration;
 * - on 100%: traces at 100% (OTEL_TRACES_SAMPLER=parentbased_traceidratio, ARG=1) exported over
 *            OTLP/HTTP to a local sink that discards them (scripts/bench/telemetry-sink.ts), JSON
 *            logs at info to stdout (a file) and to Loki (LOKI_URL: the same sink), /metrics
 *            scraped from every service every BENCH_SCRAPE_INTERVAL seconds (OpenMetrics, as
 *            Prometheus asks);
 * - on 10%:  the same with OTEL_TRACES_SAMPLER_ARG=0.1.
 *
 * Targets (issue 16): server CPU per operation (the services, PostgreSQL, Redis and the sink, per REST
 * request or turn) with telemetry on at most +10% over all off at 10% sampling, +20% at 100%: the
 * median over the rounds of each round's ratio to its own "off" window (on a shared machine the CPU
 * an operation costs moves by tens of percent from one minute to the next, so only windows close in
 * time compare; the figure pooled over all rounds is printed beside it). The throughput cost
 * (operations per second, on vs off) is printed too.
 *
 *   BENCH_ROUNDS=6 BENCH_SECONDS=6 BENCH_REST_CONNECTIONS=8 BENCH_CONVERSATIONS=16 BENCH_WORDS=20 \
 *   BENCH_SCRAPE_INTERVAL=5 BENCH_DATABASE_URL=postgres://… BENCH_REDIS_URL=redis://… npm run bench:telemetry
 *
 * The breakdown's platforms (BENCH_TELEMETRY_BREAKDOWN=0 leaves them out, as `npm run bench` does)
 * are up while the targets' are measured: idle, they still keep PostgreSQL, Redis and the CPUs
 * busier in every window (all off read 3.3-3.9 ms of server CPU per op with three platforms up,
 * 4.9-7.0 ms with six, on the 2-CPU machine of 2026-12-07), so the targets are best read from a run without them.
 *
 * BENCH_TELEMETRY_CONFIGS=instr,stdout runs only those configurations beside `off` (no verdict then:
 * a diagnostic run, e.g. with BENCH_CPU_PROF to profile one of them); `sdk-logs` (the SDK sampling
 * nothing, with logs, Loki and scrapes) and `off2` (a second platform like `off`: an A/A check of how
 * far apart two identical platforms measure on this machine) run only when named so.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freePort } from '@codelab/service-kit/testing';
import { FrameClient } from '../../test/helpers/stack.ts';
import { checkLoad, f1, f2, load } from './load.ts';
import {
  benchDatabase,
  CpuMeter,
  cpuPerOp,
  CPUS,
  platformCpuGroups,
  result,
  scrape,
  startNode,
  startPlatform,
  type Platform,
  type Proc,
  waitForQuietMachine,
} from './platform.ts';
import { reportTarget } from './targets.ts';
import { median, timedTurn } from './timing.ts';

const ROUNDS = Number(process.env.BENCH_ROUNDS || 6);
const SECONDS = Number(process.env.BENCH_SECONDS || 6);
const WARMUP_SECONDS = Number(process.env.BENCH_WARMUP_SECONDS || 4);
const REST_CONNECTIONS = Number(process.env.BENCH_REST_CONNECTIONS || 8);
const CONVERSATIONS = Number(process.env.BENCH_CONVERSATIONS || 16);
const WORDS = Number(process.env.BENCH_WORDS || 20);
/** A conversation moves to a new session after this many turns (every window's turns alike: sessions of the same lengths). */
const TURNS_PER_SESSION = Number(process.env.BENCH_TURNS_PER_SESSION || 10);
const SCRAPE_SECONDS = Number(process.env.BENCH_SCRAPE_INTERVAL || 5);
const LIMIT = 20;
const RUNTIME_POOL = Number(process.env.BENCH_RUNTIME_POOL || 10);

interface Config {
  key: string;
  name: string;
  /** Tracing with this sampling ratio (undefined: no OTEL_* variables, the SDK is not loaded). */
  ratio?: number;
  /** info logs to stdout (a file); with `loki` also to LOKI_URL. Otherwise logs at fatal (nothing written). */
  logs?: boolean;
  loki?: boolean;
  /** /metrics scraped from every service every BENCH_SCRAPE_INTERVAL seconds. */
  scrape?: boolean;
  /** Part of the breakdown (not of the targets). */
  diagnostic?: boolean;
  /** Run only when BENCH_TELEMETRY_CONFIGS names it (a question of its own, not the breakdown). */
  optIn?: boolean;
}
const BREAKDOWN = process.env.BENCH_TELEMETRY_BREAKDOWN !== '0';
const ONLY = process.env.BENCH_TELEMETRY_CONFIGS?.split(',').map((k) => k.trim());
const CONFIGS: Config[] = [
  { key: 'off', name: 'telemetry off' },
  { key: 'on100', name: 'all on, traces 100%', ratio: 1, logs: true, loki: true, scrape: true },
  { key: 'on10', name: 'all on, traces 10%', ratio: 0.1, logs: true, loki: true, scrape: true },
  ...(BREAKDOWN
    ? [
        { key: 'instr', name: '(tracing SDK only, sampling 0%)', ratio: 0, diagnostic: true },
        { key: 'stdout', name: '(info logs to stdout only)', logs: true, diagnostic: true },
        { key: 'loki', name: '(info logs, stdout + Loki, scrapes)', logs: true, loki: true, scrape: true, diagnostic: true },
      ]
    : []),
  // the A/A check: a second platform exactly like "off" (how far apart two identical platforms measure)
  { key: 'off2', name: '(telemetry off, a second platform)', diagnostic: true, optIn: true },
  // where the gap between "all on" and the sum of its parts lies: the SDK sampling nothing, with all the logs
  {
    key: 'sdk-logs',
    name: '(tracing SDK 0%, logs, Loki, scrapes)',
    ratio: 0,
    logs: true,
    loki: true,
    scrape: true,
    diagnostic: true,
    optIn: true,
  },
].filter((c) => (!ONLY && !c.optIn) || c.key === 'off' || ONLY?.includes(c.key));

interface Stats {
  traces: { requests: number; bytes: number; spans: number };
  loki: { requests: number; bytes: number };
}

interface Window {
  rest: number;
  turns: number;
  /** Turns that ended in an error (the run is then suspect: see the stack's logs). */
  failed: number;
  seconds: number;
  spans: number;
  traceBytes: number;
  lokiBytes: number;
  logBytes: number;
  scrapes: number;
  cpu: Record<string, number>;
}

/** One conversation: a WebSocket on a session of its own, renewed every TURNS_PER_SESSION turns. */
class Conversation {
  private client: FrameClient | undefined;
  private turns = 0;
  private readonly platform: Platform;

  constructor(platform: Platform) {
    this.platform = platform;
  }

  /** One turn; false when it failed (the conversation then goes on on a new session). */
  async turn(content: string): Promise<boolean> {
    try {
      if (!this.client || this.turns >= TURNS_PER_SESSION) {
        this.client?.close();
        this.client = new FrameClient(this.platform.wsUrl(`bench-${randomUUID()}`), { authorization: `Bearer ${this.platform.token}` });
        await this.client.open();
        this.turns = 0;
      }
      await timedTurn(this.client, content, 60_000);
      this.client.frames.length = 0; // the client keeps every frame otherwise
      this.turns++;
      return true;
    } catch (err) {
      this.lastError = (err as Error).message;
      this.client?.close();
      this.client = undefined;
      return false;
    }
  }

  lastError: string | undefined;

  close(): void {
    this.client?.close();
  }
}

interface Stack {
  config: Config;
  /** Where its traces and Loki pushes go (a process of its own, so each stack's telemetry is counted apart). */
  sink: Proc | undefined;
  platform: Platform;
  logDir: string;
  conversations: Conversation[];
  meter: CpuMeter;
}

const logBytes = (dir: string): number =>
  ['gateway', 'runtime', 'auth', 'llm-proxy'].reduce((n, s) => {
    try {
      return n + statSync(path.join(dir, `${s}.log`)).size;
    } catch {
      return n;
    }
  }, 0);

const NO_STATS: Stats = { traces: { requests: 0, bytes: 0, spans: 0 }, loki: { requests: 0, bytes: 0 } };
async function sinkStats(sink: Proc | undefined): Promise<Stats> {
  return sink ? ((await (await fetch(`${sink.url}/stats`)).json()) as Stats) : NO_STATS;
}

/** Runs the workload against one stack for `seconds`; what it did, and what telemetry it produced. */
async function runWindow(stack: Stack, seconds: number): Promise<Window> {
  const { platform, config, sink } = stack;
  const before = await sinkStats(sink);
  const logsBefore = logBytes(stack.logDir);
  let scrapes = 0;
  const scrapeAll = async (): Promise<void> => {
    await Promise.all(
      platform.procs.map((p) => scrape(p.url, 'application/openmetrics-text; version=1.0.0,text/plain;version=0.0.4;q=0.5')),
    );
    scrapes += platform.procs.length;
  };
  const scraper = config.scrape ? setInterval(() => void scrapeAll().catch(() => undefined), SCRAPE_SECONDS * 1000) : undefined;
  if (config.scrape) await scrapeAll();
  stack.meter.start();
  const end = performance.now() + seconds * 1000;
  let turns = 0;
  let failed = 0;
  let k = 0;
  const [rest] = await Promise.all([
    load({
      name: `${config.name}: REST`,
      url: `${platform.gateway.url}/api/v1/sessions?limit=${LIMIT}`,
      headers: { authorization: `Bearer ${platform.token}` },
      connections: REST_CONNECTIONS,
      seconds,
    }),
    ...stack.conversations.map(async (c) => {
      while (performance.now() < end) {
        if (!(await c.turn(`telemetry turn ${k++} [[mock:words ${WORDS}]]`))) {
          failed++;
          await new Promise((r) => setTimeout(r, 50));
        } else if (performance.now() <= end) turns++;
      }
    }),
  ]);
  const { cpu, wallMs } = stack.meter.stop();
  clearInterval(scraper);
  checkLoad(rest);
  await new Promise((r) => setTimeout(r, 700)); // the last span batch (scheduled every 500 ms) and log lines land
  const after = await sinkStats(sink);
  return {
    rest: rest.ok,
    turns,
    failed,
    seconds: Math.max(seconds, wallMs / 1000),
    spans: after.traces.spans - before.traces.spans,
    traceBytes: after.traces.bytes - before.traces.bytes,
    lokiBytes: after.loki.bytes - before.loki.bytes,
    logBytes: logBytes(stack.logDir) - logsBefore,
    scrapes,
    cpu,
  };
}

const stacks: Stack[] = [];
const sinks: Proc[] = [];
const db = await benchDatabase(32 * CONFIGS.length);
try {
  const started = performance.now();
  const settled = await Promise.allSettled(
    CONFIGS.map(async (config) => {
      const logDir = mkdtempSync(path.join(tmpdir(), `codelab-bench-telemetry-${config.key}-`));
      let sink: Proc | undefined;
      if (config.ratio !== undefined || config.loki) {
        const port = await freePort();
        sink = await startNode(
          `telemetry-sink (${config.key})`,
          'scripts/bench/telemetry-sink.ts',
          port,
          { PORT: String(port) },
          { readyPath: '/health' },
        );
        sinks.push(sink);
      }
      const env: Record<string, string> = {
        ...(config.ratio !== undefined
          ? {
              OTEL_EXPORTER_OTLP_ENDPOINT: sink!.url,
              OTEL_TRACES_SAMPLER: 'parentbased_traceidratio',
              OTEL_TRACES_SAMPLER_ARG: String(config.ratio),
            }
          : {}),
        ...(config.loki ? { LOKI_URL: sink!.url } : {}),
      };
      const platform = await startPlatform({
        label: config.name,
        databaseUrl: db.url,
        redisUrl: process.env.BENCH_REDIS_URL,
        logLevel: config.logs ? 'info' : 'fatal',
        env,
        logDir,
        // every platform shares the one PostgreSQL (max_connections is often 100)
        services: { runtime: { AGENT_RUNTIME__DB_POOL_SIZE: String(RUNTIME_POOL) }, auth: { AUTH_SERVICE__DB_POOL_SIZE: '2' } },
      });
      return { config, platform, logDir, sink };
    }),
  );
  const platforms = settled.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
  if (platforms.length < CONFIGS.length) {
    await Promise.all(platforms.map((p) => p.platform.stop()));
    throw (settled.find((s) => s.status === 'rejected') as PromiseRejectedResult).reason;
  }
  for (const { config, platform, logDir, sink } of platforms) {
    for (let i = 0; i < LIMIT; i++) {
      const res = await fetch(`${platform.gateway.url}/api/v1/sessions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${platform.token}`, 'content-type': 'application/json' },
        body: '{}',
      });
      if (res.status !== 201) throw new Error(`POST /api/v1/sessions: ${res.status}`);
    }
    stacks.push({
      config,
      sink,
      platform,
      logDir,
      conversations: Array.from({ length: CONVERSATIONS }, () => new Conversation(platform)),
      meter: new CpuMeter(platformCpuGroups(platform, sink ? { sink: () => [sink.pid] } : {})),
    });
  }
  console.log(
    `${CONFIGS.length} platforms up in ${f1((performance.now() - started) / 1000)} s (${CONFIGS.length * 4} service processes, ${sinks.length} sinks; database: ${db.describe}${process.env.BENCH_REDIS_URL ? ', Redis' : ''}); ${CPUS} CPUs. ` +
      `Workload per window: autocannon ${REST_CONNECTIONS} connections on GET /api/v1/sessions?limit=${LIMIT} + ${CONVERSATIONS} WebSocket conversations ` +
      `(turns back to back, ${WORDS} tokens, mock at 0 ms, a new session every ${TURNS_PER_SESSION} turns); ${ROUNDS} rounds of ${SECONDS} s per configuration after ${WARMUP_SECONDS} s of warm-up each`,
  );
  for (const s of stacks) await runWindow(s, WARMUP_SECONDS);

  const totals = new Map<string, Window>(
    CONFIGS.map((c) => [
      c.key,
      { rest: 0, turns: 0, failed: 0, seconds: 0, spans: 0, traceBytes: 0, lokiBytes: 0, logBytes: 0, scrapes: 0, cpu: {} },
    ]),
  );
  const rounds: Record<string, Window>[] = [];
  await waitForQuietMachine('bench:telemetry');
  for (let r = 0; r < ROUNDS; r++) {
    const round: Record<string, Window> = {};
    // Rounds in pairs, the second the first backwards (A B C, C B A), rotated by one every pair:
    // a configuration's mean place in a pair is the same for all, so a steady drift of the
    // machine falls on every configuration alike (a rotation alone put "off" first and last).
    const order = stacks.map((_, i) => stacks[(i + Math.floor(r / 2)) % stacks.length]!);
    if (r % 2 === 1) order.reverse();
    for (const s of order) {
      const w = await runWindow(s, SECONDS);
      round[s.config.key] = w;
      const t = totals.get(s.config.key)!;
      for (const k of ['rest', 'turns', 'failed', 'seconds', 'spans', 'traceBytes', 'lokiBytes', 'logBytes', 'scrapes'] as const)
        t[k] += w[k];
      for (const [g, ms] of Object.entries(w.cpu)) t.cpu[g] = (t.cpu[g] ?? 0) + ms;
      console.log(
        `  round ${r + 1}: ${s.config.name.padEnd(30)} REST ${(w.rest / w.seconds).toFixed(0).padStart(5)} req/s, ${(w.turns / w.seconds).toFixed(1).padStart(6)} turns/s, ${(w.spans / w.seconds).toFixed(0)} spans/s exported${w.failed ? `, ${w.failed} FAILED turns (${s.conversations.find((c) => c.lastError)?.lastError})` : ''}`,
      );
    }
    rounds.push(round);
  }

  const rate = (w: Window) => ({ rest: w.rest / w.seconds, turns: w.turns / w.seconds });
  const off = rate(totals.get('off')!);
  const cost = (key: string) => {
    const on = rate(totals.get(key)!);
    const rest = 1 - on.rest / off.rest;
    const turns = 1 - on.turns / off.turns;
    // both workloads together: the geometric mean of the two throughput ratios
    const both = 1 - Math.sqrt((on.rest / off.rest) * (on.turns / off.turns));
    const perRound = rounds.map(
      (rd) =>
        1 -
        Math.sqrt(
          ((rd[key]!.rest / rd[key]!.seconds) * (rd[key]!.turns / rd[key]!.seconds)) /
            ((rd.off!.rest / rd.off!.seconds) * (rd.off!.turns / rd.off!.seconds)),
        ),
    );
    return { rest, turns, both, perRound };
  };
  const pctS = (x: number): string => `${(x * 100).toFixed(1)}%`;
  console.log(
    `\n${'configuration'.padEnd(30)}  REST req/s  turns/s | exported per op (REST request or turn): spans, trace KiB, Loki KiB, stdout KiB | CPU ms per op, by process`,
  );
  for (const c of CONFIGS) {
    const t = totals.get(c.key)!;
    const r = rate(t);
    const ops = t.rest + t.turns;
    console.log(
      `${c.name.padEnd(30)} ${r.rest.toFixed(0).padStart(11)} ${r.turns.toFixed(1).padStart(8)} | ${f2(t.spans / ops)} spans, ${f2(t.traceBytes / 1024 / ops)}, ${f2(t.lokiBytes / 1024 / ops)}, ${f2(t.logBytes / 1024 / ops)} | ${cpuPerOp(t.cpu, ops)}`,
    );
  }
  /** Server CPU (the services, PostgreSQL, Redis, the sink: all but the load generator) per operation of a window or of the totals. */
  const serverCpuPerOp = (w: Window): number =>
    Object.entries(w.cpu)
      .filter(([g]) => g !== 'client')
      .reduce((a, [, ms]) => a + ms, 0) /
    (w.rest + w.turns);
  const cpuPer = (key: string): number => serverCpuPerOp(totals.get(key)!);
  // Each round against its own "off" window: on a shared machine the CPU an operation costs moves
  // by tens of percent between minutes (other tenants), so a ratio of windows close in time, and
  // the median over the rounds (a burst that hits one window moves one ratio), is what the
  // verdict takes; the pooled figure is printed beside it. A window that completed nothing or had
  // failed turns says nothing of the CPU an operation costs: its round is left out (NaN).
  const usable = (w: Window): boolean => w.rest + w.turns > 0 && w.failed === 0;
  const perRound = (key: string): number[] =>
    rounds.map((rd) => (usable(rd[key]!) && usable(rd.off!) ? serverCpuPerOp(rd[key]!) / serverCpuPerOp(rd.off!) - 1 : Number.NaN));
  const counted = (key: string): number[] => perRound(key).filter((x) => !Number.isNaN(x));
  const signed = (x: number): string => (Number.isNaN(x) ? 'left out' : `${x >= 0 ? '+' : ''}${pctS(x)}`);
  console.log(
    `server CPU per op vs the same round's "off" window (rounds; median): ${CONFIGS.filter((c) => c.key !== 'off')
      .map((c) => `${c.name} ${perRound(c.key).map(signed).join(', ')}; ${signed(median(counted(c.key)))}`)
      .join(' | ')}`,
  );
  if (!totals.has('on100') || !totals.has('on10')) {
    // BENCH_TELEMETRY_CONFIGS left out what the targets are measured on (a diagnostic run, e.g. for profiles)
    console.log(
      `server CPU per op: ${CONFIGS.map((c) => `${c.name} ${f2(cpuPer(c.key))} ms (${signed(cpuPer(c.key) / cpuPer('off') - 1)})`).join('; ')}; no verdict (BENCH_TELEMETRY_CONFIGS)`,
    );
  } else {
    const c100 = cost('on100');
    const c10 = cost('on10');
    console.log(
      `\nthroughput cost vs off: traces 100%: REST ${pctS(c100.rest)}, turns ${pctS(c100.turns)}, both ${pctS(c100.both)} (rounds: ${c100.perRound.map(pctS).join(', ')})` +
        `\n                        traces 10%:  REST ${pctS(c10.rest)}, turns ${pctS(c10.turns)}, both ${pctS(c10.both)} (rounds: ${c10.perRound.map(pctS).join(', ')})`,
    );
    // 'both' = 1 - geometric mean of the REST and turn throughput ratios (each workload counts alike)
    console.log(
      `server CPU per op (services, PostgreSQL, Redis, the sink): ${CONFIGS.map((c) => `${c.name} ${f2(cpuPer(c.key))} ms (${signed(cpuPer(c.key) / cpuPer('off') - 1)})`).join('; ')}`,
    );
    if (BREAKDOWN) {
      console.log(
        `where the cost comes from (throughput cost vs off, both workloads): ${CONFIGS.filter((c) => c.diagnostic)
          .map((c) => `${c.name} ${pctS(cost(c.key).both)}`)
          .join('; ')}; the rounds' spread shows the noise.`,
      );
    }
    for (const [id, key, goal] of [
      ['telemetry-10', 'on10', 0.1],
      ['telemetry-100', 'on100', 0.2],
    ] as const) {
      const kept = counted(key);
      const mid = median(kept);
      const pooled = cpuPer(key) / cpuPer('off') - 1;
      // half of the rounds at least, or no verdict
      const enough = kept.length * 2 >= ROUNDS && kept.length > 0;
      reportTarget({
        id,
        measured: `${signed(mid)} server CPU per op (median of ${kept.length} of ${ROUNDS} rounds, each against its own "off" window: ${perRound(key).map(signed).join(', ')})`,
        ratio: `pooled over the rounds ${f2(cpuPer(key))} vs ${f2(cpuPer('off'))} ms (${signed(pooled)}); throughput cost ${pctS(cost(key).both)}${enough ? '' : '; too few usable rounds for a verdict'}`,
        met: enough && mid <= goal,
      });
    }
    result(
      'telemetry',
      `off ${off.rest.toFixed(0)} REST req/s + ${off.turns.toFixed(1)} turns/s; server CPU per op vs off (median of the rounds): 10% sampling ${signed(median(counted('on10')))} (target <= +10%), ` +
        `100% ${signed(median(counted('on100')))} (target <= +20%); throughput cost 10% ${pctS(c10.both)}, 100% ${pctS(c100.both)}`,
    );
  }
} finally {
  for (const s of stacks) for (const c of s.conversations) c.close();
  await Promise.all(stacks.map((s) => s.platform.stop()));
  await Promise.all(sinks.map((s) => s.stop()));
  await db.stop();
}
