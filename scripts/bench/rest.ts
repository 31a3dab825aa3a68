/**
 * `npm run bench:rest`: an authenticated REST read through the gateway (`GET /api/v1/sessions?limit=20`
 * with a JWT: token verification, the runtime call, PostgreSQL) against two references on the same
 * machine in the same run: one fastify process with a pg pool running the same statements for the
 * same user's sessions in the same database, without auth (scripts/bench/fastify-pg.ts), and a bare
 * fastify hello-world (scripts/bench/hello-fastify.ts). All are driven by autocannon with the same
 * connections and duration, alternating in rounds; every service and each reference is its own
 * process. Targets (issue 16): the gateway serves at least 50% of fastify + pg's requests/s
 * (rest-vs-fastify-pg) and at least 10% of the bare hello-world's (rest-vs-hello).
 *
 * To show what holds the gateway back it also measures, in the same rounds, the two halves of the
 * path alone (GET /api/v1/health on the gateway: the kit with no JWT and no runtime call; GET
 * /sessions?limit=20 on the runtime directly: PostgreSQL without the gateway), and the CPU time every
 * process (gateway, runtime, PostgreSQL when local, the load generator) spent per request.
 *
 *   BENCH_CONNECTIONS=16 BENCH_SECONDS=5 BENCH_ROUNDS=2 BENCH_REST_BREAKDOWN=1 \
 *   BENCH_DATABASE_URL=postgres://… BENCH_REDIS_URL=redis://… npm run bench:rest
 */
import { freePort } from '@codelab/service-kit/testing';
import { checkLoad, f1, f2, load, startHelloFastify, type LoadResult } from './load.ts';
import {
  benchDatabase,
  CpuMeter,
  cpuPerOp,
  CPUS,
  histMeanMs,
  metricSum,
  platformCpuGroups,
  procDetailPerOp,
  addDetail,
  type ProcSample,
  result,
  scrape,
  startNode,
  startPlatform,
  TEST_INTERNAL_KEY,
  type Platform,
  type Proc,
} from './platform.ts';
import { reportTarget } from './targets.ts';
import { median } from './timing.ts';

const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS || 16);
const SECONDS = Number(process.env.BENCH_SECONDS || 5);
const ROUNDS = Number(process.env.BENCH_ROUNDS || 2);
const BREAKDOWN = process.env.BENCH_REST_BREAKDOWN !== '0';
const LIMIT = 20;
/** Issue 16's goals: the gateway's requests/s against fastify + pg doing the query, and against hello-world. */
const TARGET_FASTIFY_PG = 0.5;
const TARGET_HELLO = 0.1;

interface Target {
  key: string;
  name: string;
  url: string;
  headers?: Record<string, string>;
}

interface Totals {
  ok: number;
  seconds: number;
  p50: number[];
  p99: number[];
  cpu: Record<string, number>;
  /** Per process: kernel share, run-queue wait, read and write system calls (CpuMeter's detail). */
  detail: Record<string, ProcSample>;
  /** The runtime's database queries during the runs, and their mean duration in each run. */
  queries: number;
  queryMs: number[];
}

let platform: Platform | undefined;
let hello: Proc | undefined;
let fastifyPg: Proc | undefined;
const db = await benchDatabase(48);
try {
  platform = await startPlatform({
    databaseUrl: db.url,
    redisUrl: process.env.BENCH_REDIS_URL,
    logLevel: process.env.BENCH_LOG_LEVEL || 'warn',
  });
  hello = await startHelloFastify();
  const pgPort = await freePort();
  fastifyPg = await startNode('fastify-pg', 'scripts/bench/fastify-pg.ts', pgPort, { PORT: String(pgPort), DATABASE_URL: db.url });
  const auth = { authorization: `Bearer ${platform.token}` };
  // The user's sessions: a full page to list.
  for (let i = 0; i < LIMIT; i++) {
    const res = await fetch(`${platform.gateway.url}/api/v1/sessions`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      body: '{}',
    });
    if (res.status !== 201) throw new Error(`POST /api/v1/sessions: ${res.status} ${await res.text()}`);
  }
  const targets: Target[] = [
    { key: 'fastify', name: 'bare fastify hello-world (reference)', url: `${hello.url}/` },
    {
      key: 'fastify-pg',
      name: `fastify + pg /sessions?limit=${LIMIT} (reference)`,
      url: `${fastifyPg.url}/sessions?user=${encodeURIComponent(platform.user.id)}&limit=${LIMIT}`,
    },
    {
      key: 'gateway',
      name: `gateway GET /api/v1/sessions?limit=${LIMIT} + JWT`,
      url: `${platform.gateway.url}/api/v1/sessions?limit=${LIMIT}`,
      headers: auth,
    },
  ];
  if (BREAKDOWN) {
    targets.push(
      { key: 'gw-health', name: 'gateway GET /api/v1/health (kit only)', url: `${platform.gateway.url}/api/v1/health` },
      {
        key: 'runtime',
        name: `runtime GET /sessions?limit=${LIMIT} (direct)`,
        url: `${platform.runtime.url}/sessions?limit=${LIMIT}`,
        headers: { 'x-internal-auth': TEST_INTERNAL_KEY, 'x-codelab-user': platform.user.id },
      },
    );
  }
  const listedBy = async (t: Target): Promise<string[]> => {
    const res = await fetch(t.url, { headers: t.headers });
    if (res.status !== 200) throw new Error(`GET ${t.url}: ${res.status} ${await res.text()}`);
    const page = (await res.json()) as { sessions?: { id: string }[] };
    return (page.sessions ?? []).map((s) => s.id);
  };
  const byKey = (key: string): Target => targets.find((t) => t.key === key)!;
  const listed = await listedBy(byKey('gateway'));
  // the reference must read the same rows, or the comparison says nothing
  const direct = await listedBy(byKey('fastify-pg'));
  if (listed.length !== LIMIT || direct.join() !== listed.join())
    throw new Error(`the gateway listed ${listed.length} sessions, fastify + pg ${direct.length}; both should list the same ${LIMIT}`);

  const references: Record<string, () => number[]> = { 'hello-fastify': () => [hello!.pid], 'fastify-pg': () => [fastifyPg!.pid] };
  const meter = new CpuMeter(platformCpuGroups(platform, references));
  console.log(
    `${CPUS} CPUs; database: ${db.describe}${process.env.BENCH_REDIS_URL ? ', Redis' : ''}; autocannon ${CONNECTIONS} connections, ${SECONDS} s per run, ${ROUNDS} rounds ` +
      `(order rotated each round), after a 2 s warm-up of each; the listed page holds ${listed.length} sessions (the same for fastify + pg); services log at ${process.env.BENCH_LOG_LEVEL || 'warn'}`,
  );
  for (const t of targets) checkLoad(await load({ name: t.name, url: t.url, headers: t.headers, connections: CONNECTIONS, seconds: 2 }));

  const totals = new Map<string, Totals>(
    targets.map((t) => [t.key, { ok: 0, seconds: 0, p50: [], p99: [], cpu: {}, detail: {}, queries: 0, queryMs: [] }]),
  );
  const perRound: Record<string, number>[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const order = targets.map((_, i) => targets[(i + r) % targets.length]!);
    const rates: Record<string, number> = {};
    for (const t of order) {
      const metricsBefore = await scrape(platform.runtime.url);
      meter.start();
      const res: LoadResult = checkLoad(
        await load({ name: t.name, url: t.url, headers: t.headers, connections: CONNECTIONS, seconds: SECONDS }),
      );
      const { cpu, detail } = meter.stop();
      const metricsAfter = await scrape(platform.runtime.url);
      const acc = totals.get(t.key)!;
      acc.queries +=
        metricSum(metricsAfter, 'db_client_operation_duration_seconds_count') -
        metricSum(metricsBefore, 'db_client_operation_duration_seconds_count');
      acc.queryMs.push(histMeanMs(metricsBefore, metricsAfter, 'db_client_operation_duration_seconds'));
      acc.ok += res.ok;
      acc.seconds += res.seconds;
      acc.p50.push(res.p50);
      acc.p99.push(res.p99);
      for (const [k, ms] of Object.entries(cpu)) acc.cpu[k] = (acc.cpu[k] ?? 0) + ms;
      addDetail(acc.detail, detail);
      rates[t.key] = res.rps;
      console.log(
        `  round ${r + 1}: ${t.name.padEnd(46)} ${res.rps.toFixed(0).padStart(6)} req/s  p50 ${f2(res.p50)} ms  p99 ${f2(res.p99)} ms`,
      );
    }
    perRound.push(rates);
  }

  const rps = (key: string): number => totals.get(key)!.ok / totals.get(key)!.seconds;
  console.log(`\n${'target'.padEnd(46)}   req/s   p50 ms   p99 ms (median over rounds) | CPU ms per request, by process`);
  // each reference's own process (and PostgreSQL for fastify + pg), the platform's processes for the rest
  const shownFor =
    (t: Target) =>
    (k: string): boolean =>
      t.key === 'fastify'
        ? k === 'hello-fastify' || k === 'client'
        : t.key === 'fastify-pg'
          ? k === 'fastify-pg' || k === 'postgres' || k === 'client'
          : !(k in references);
  for (const t of targets) {
    const acc = totals.get(t.key)!;
    const cpu = Object.fromEntries(Object.entries(acc.cpu).filter(([k]) => shownFor(t)(k)));
    console.log(
      `${t.name.padEnd(46)} ${rps(t.key).toFixed(0).padStart(7)} ${f2(median(acc.p50)).padStart(8)} ${f2(median(acc.p99)).padStart(8)} | ${cpuPerOp(cpu, acc.ok)}`,
    );
  }
  // What a request costs the kernel: a loopback write wakes the reader and carries the data
  // across, so each hop's system calls weigh as much as its JavaScript.
  console.log(
    "\nper request and process: the kernel's share of its CPU, its wait for a CPU, and its read and write system calls " +
      '(/proc/<pid>/io; PostgreSQL reads with recv(), which is not counted there)',
  );
  for (const t of targets) {
    const acc = totals.get(t.key)!;
    const shown = shownFor(t);
    // (a process that did next to nothing for this target, e.g. the idle auth service, is left out)
    const detail = Object.fromEntries(Object.entries(acc.detail).filter(([k]) => shown(k) && (acc.cpu[k] ?? 0) / acc.ok >= 0.002));
    console.log(`  ${t.name}: ${procDetailPerOp(detail, acc.ok)}`);
  }
  const pct = (x: number): string => `${(x * 100).toFixed(1)}%`;
  const ratioPg = rps('gateway') / rps('fastify-pg');
  const ratioHello = rps('gateway') / rps('fastify');
  const verdict = (ratio: number, target: number): string => `target >= ${target * 100}%: ${ratio >= target ? 'met' : 'MISSED'}`;
  console.log(
    `\ngateway / fastify + pg: ${pct(ratioPg)} of the requests/s (rounds: ${perRound.map((r) => pct(r.gateway! / r['fastify-pg']!)).join(', ')}); ` +
      verdict(ratioPg, TARGET_FASTIFY_PG),
  );
  console.log(
    `gateway / bare fastify: ${pct(ratioHello)} of the requests/s (rounds: ${perRound.map((r) => pct(r.gateway! / r.fastify!)).join(', ')}); ` +
      verdict(ratioHello, TARGET_HELLO),
  );
  if (BREAKDOWN) {
    const gw = totals.get('gateway')!;
    const per = (k: string): number => (gw.cpu[k] ?? 0) / gw.ok;
    const serverMs =
      Object.entries(gw.cpu)
        .filter(([k]) => k !== 'client' && !(k in references))
        .reduce((a, [, ms]) => a + ms, 0) / gw.ok;
    console.log(
      `where a gateway read goes (CPU per request): gateway ${f2(per('gateway'))} ms, runtime ${f2(per('runtime'))} ms` +
        `${gw.cpu.postgres !== undefined ? `, PostgreSQL ${f2(per('postgres'))} ms` : ''}${gw.cpu.redis !== undefined ? `, Redis ${f2(per('redis'))} ms` : ''}, load generator ${f2(per('client'))} ms; ` +
        `the servers' ${f2(serverMs)} ms on ${CPUS} CPUs cap it near ${f1((CPUS * 1000) / (serverMs + per('client')))} req/s with the load generator on the same cores. ` +
        `The runtime ran ${f1(gw.queries / gw.ok)} database queries per request (mean ${f2(median(gw.queryMs))} ms each, as the runtime's pool sees it). ` +
        `Halves alone: gateway kit only ${rps('gw-health').toFixed(0)} req/s (${((rps('gw-health') / rps('fastify')) * 100).toFixed(0)}% of bare fastify), ` +
        `runtime + PostgreSQL direct ${rps('runtime').toFixed(0)} req/s (${((rps('runtime') / rps('fastify')) * 100).toFixed(0)}%).`,
    );
  }
  const latency = (key: string): string => `p50 ${f2(median(totals.get(key)!.p50))} ms, p99 ${f2(median(totals.get(key)!.p99))} ms`;
  result(
    'rest',
    `gateway ${rps('gateway').toFixed(0)} req/s (${latency('gateway')}) vs fastify + pg ${rps('fastify-pg').toFixed(0)} req/s (${latency('fastify-pg')}) ` +
      `= ${pct(ratioPg)}, ${verdict(ratioPg, TARGET_FASTIFY_PG)}; vs bare fastify ${rps('fastify').toFixed(0)} req/s (${latency('fastify')}) ` +
      `= ${pct(ratioHello)}, ${verdict(ratioHello, TARGET_HELLO)}`,
  );
  const measured = `${rps('gateway').toFixed(0)} req/s`;
  reportTarget({
    id: 'rest-vs-fastify-pg',
    measured,
    ratio: `${pct(ratioPg)} of fastify + pg direct (${rps('fastify-pg').toFixed(0)} req/s)`,
    met: ratioPg >= TARGET_FASTIFY_PG,
  });
  reportTarget({
    id: 'rest-vs-hello',
    measured,
    ratio: `${pct(ratioHello)} of bare fastify hello-world (${rps('fastify').toFixed(0)} req/s)`,
    met: ratioHello >= TARGET_HELLO,
  });
} finally {
  await fastifyPg?.stop();
  await hello?.stop();
  await platform?.stop();
  await db.stop();
}
