/**
 * `node scripts/bench/history-read.ts`: the CPU a turn's lease statement costs, the runtime's and
 * PostgreSQL's, with the session's history kept between turns (history-cache.ts) and without
 * (every turn reads the whole history), on sessions of BENCH_HISTORY messages at first (default
 * 150, a long conversation's history inside the default token budget), each take adding a
 * question and an answer (the CPU figures include those two writes and the release: the same on
 * both sides), alternating in rounds. The reference: `SELECT 1` on the same connection in the same run.
 *
 *   BENCH_DATABASE_URL=postgres://… BENCH_HISTORY=150 BENCH_TAKES=300 BENCH_ROUNDS=4 node scripts/bench/history-read.ts
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { openDatabase, runMigrations, ServiceMetrics } from '@codelab/service-kit';
import { silentLogger } from '@codelab/service-kit/testing';
import { createRuntimeMetrics } from '@codelab/runtime/metrics';
import { SessionStore } from '@codelab/runtime/sessions';
import { HistoryCache } from '@codelab/runtime/history-cache';
import { SessionLeases } from '@codelab/runtime/session-lease';
import { f1 } from './load.ts';
import { benchDatabase } from './platform.ts';

const HISTORY = Number(process.env.BENCH_HISTORY || 150);
const TAKES = Number(process.env.BENCH_TAKES || 300);
const ROUNDS = Number(process.env.BENCH_ROUNDS || 4);

const bench = await benchDatabase(2);
if (bench.embedded) throw new Error('history-read measures a PostgreSQL server: set BENCH_DATABASE_URL');
const migrations = fileURLToPath(new URL('../../services/runtime/src/migrations', import.meta.url));
if (
  (await runMigrations({ service: 'runtime', url: bench.url, urlSetting: 'BENCH_DATABASE_URL', dir: migrations, logLevel: 'warn' })) !== 0
)
  throw new Error('the runtime migrations failed');
const db = await openDatabase({
  service: 'bench',
  url: bench.url,
  poolMax: 1,
  logger: silentLogger(),
  metrics: new ServiceMetrics('bench'),
});
const store = new SessionStore(db);
const pid = (await db.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
/** CPU ms of the server process serving our one connection (utime + stime, clock ticks of 10 ms). */
const serverCpuMs = (): number => {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
};
const ownCpuMs = (): number => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

async function session(): Promise<string> {
  const id = `hr-${crypto.randomUUID()}`;
  await db.query('INSERT INTO sessions (id) VALUES ($1)', [id]);
  for (let i = 0; i < HISTORY; i++) await store.append(id, { role: i % 2 ? 'assistant' : 'user', content: `message ${i} `.repeat(20) });
  return id;
}

/** TAKES turns' leases on one session (each stores its user message and one answer): CPU ms per take, here and in the server. */
async function takes(leases: SessionLeases, sessionId: string): Promise<{ own: number; server: number }> {
  const [own0, server0] = [ownCpuMs(), serverCpuMs()];
  for (let i = 0; i < TAKES; i++) {
    const lease = await leases.tryAcquire(sessionId, undefined, { turn: true, userMessage: `question ${i}` });
    if (!lease?.session.history) throw new Error('no history read with the lease');
    await store.append(sessionId, { role: 'assistant', content: `answer ${i} `.repeat(20) });
    await lease.release();
  }
  return { own: (ownCpuMs() - own0) / TAKES, server: (serverCpuMs() - server0) / TAKES };
}

async function reference(): Promise<{ own: number; server: number }> {
  const [own0, server0] = [ownCpuMs(), serverCpuMs()];
  for (let i = 0; i < TAKES * 3; i++) await db.query('SELECT 1');
  return { own: (ownCpuMs() - own0) / (TAKES * 3), server: (serverCpuMs() - server0) / (TAKES * 3) };
}

const metrics = createRuntimeMetrics(new ServiceMetrics('bench-history'));
const sum = { kept: { own: 0, server: 0 }, whole: { own: 0, server: 0 }, ref: { own: 0, server: 0 } };
console.log(
  `turn leases with the history read, on sessions of ${HISTORY} to ${HISTORY + 2 * TAKES} messages (each take adds a question and an answer, the lease released after): ${TAKES} takes per round, ${ROUNDS} rounds; reference: SELECT 1 on the same connection`,
);
for (let r = 0; r < ROUNDS; r++) {
  for (const kind of ['whole', 'kept'] as const) {
    const leases = new SessionLeases(db, {
      ttlMs: 60_000,
      metrics,
      ...(kind === 'kept' ? { historyCache: new HistoryCache(64 << 20) } : {}),
    });
    const m = await takes(leases, await session());
    sum[kind].own += m.own / ROUNDS;
    sum[kind].server += m.server / ROUNDS;
    console.log(`  round ${r + 1} ${kind.padEnd(5)}: runtime ${m.own.toFixed(3)} ms, PostgreSQL ${m.server.toFixed(3)} ms per take`);
  }
  const ref = await reference();
  sum.ref.own += ref.own / ROUNDS;
  sum.ref.server += ref.server / ROUNDS;
}
const per = (x: { own: number; server: number }) =>
  `runtime ${x.own.toFixed(3)} ms (${f1(x.own / sum.ref.own)} SELECT 1), PostgreSQL ${x.server.toFixed(3)} ms (${f1(x.server / sum.ref.server)} SELECT 1)`;
console.log(`whole history read: ${per(sum.whole)}`);
console.log(`after kept messages: ${per(sum.kept)}`);
console.log(
  `RESULT history-read: kept/whole CPU per take: runtime x${(sum.kept.own / sum.whole.own).toFixed(2)}, PostgreSQL x${(sum.kept.server / sum.whole.server).toFixed(2)}`,
);
await db.close();
await bench.stop();
