/**
 * `npm run bench:auth`: throughput and latency of POST /oauth/token for the password and the
 * refresh_token grants, sequentially and with concurrency, against the same service's GET /health
 * measured in the same run (the reference: the same process, HTTP stack and connection pool, no
 * work). The auth service runs as its own process, as in production.
 *
 *   BENCH_AUTH_CONCURRENCY=8 BENCH_AUTH_PASSWORD_REQUESTS=100 BENCH_AUTH_REFRESH_REQUESTS=1000 \
 *   BENCH_DATABASE_URL=postgres://… npm run bench:auth
 *
 * Without BENCH_DATABASE_URL an embedded PostgreSQL serves auth. The password grant is dominated
 * by scrypt (N=2^15, r=8: ~32 MiB and tens of ms of CPU per verification, on the libuv thread
 * pool); the bench measures one verification in this process and reports its share.
 */
import { randomUUID } from 'node:crypto';
import { mkdtemp } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { Pool } from 'undici';
import { startEmbeddedPostgres } from '@codelab/service-kit';
import { TEST_INTERNAL_KEY } from '@codelab/service-kit/testing';
import { hashPassword, SCRYPT_PARAMS, verifyPassword } from '@codelab/auth/passwords';
import { createUser } from '@codelab/auth/users';
import { startProcess, type RunningProcess } from '../../test/helpers/processes.ts';
import { pct } from './timing.ts';

const CONCURRENCY = Number(process.env.BENCH_AUTH_CONCURRENCY || 8);
const PASSWORD_REQUESTS = Number(process.env.BENCH_AUTH_PASSWORD_REQUESTS || 100);
const REFRESH_REQUESTS = Number(process.env.BENCH_AUTH_REFRESH_REQUESTS || 1000);
const REFERENCE_REQUESTS = Number(process.env.BENCH_AUTH_REFERENCE_REQUESTS || 3000);
const CLIENT_ID = 'codelab-flutter-app';

interface Result {
  name: string;
  requests: number;
  seconds: number;
  latenciesMs: number[];
}

const fmt = (n: number): string => (n >= 100 ? n.toFixed(0) : n >= 10 ? n.toFixed(1) : n.toFixed(2));
const rps = (r: Result): number => r.requests / r.seconds;

function print(r: Result, reference?: Result): void {
  const ratio = reference ? ` | ${fmt(rps(reference) / rps(r))}x fewer req/s than ${reference.name}` : '';
  console.log(
    `${r.name.padEnd(34)} ${fmt(rps(r)).padStart(7)} req/s  p50 ${fmt(pct(r.latenciesMs, 50)).padStart(6)} ms  p99 ${fmt(pct(r.latenciesMs, 99)).padStart(6)} ms${ratio}`,
  );
}

/** Runs `total` calls of `fn(worker)` over `concurrency` workers; each call is timed. */
async function run(name: string, total: number, concurrency: number, fn: (worker: number) => Promise<void>): Promise<Result> {
  const latenciesMs: number[] = [];
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async (_, worker) => {
      while (next < total) {
        next++;
        const t = performance.now();
        await fn(worker);
        latenciesMs.push(performance.now() - t);
      }
    }),
  );
  return { name, requests: total, seconds: (performance.now() - started) / 1000, latenciesMs };
}

const procs: RunningProcess[] = [];
let embedded: Awaited<ReturnType<typeof startEmbeddedPostgres>> | undefined;
let http: Pool | undefined;
try {
  let databaseUrl = process.env.BENCH_DATABASE_URL;
  if (!databaseUrl) {
    embedded = await startEmbeddedPostgres(undefined, 32);
    databaseUrl = embedded.url;
  }
  const dataDir = await mkdtemp(path.join(tmpdir(), 'codelab-bench-auth-'));
  const auth = await startProcess('auth', {
    CODELAB_DATA_DIR: dataDir,
    AUTH_SERVICE__LOG_LEVEL: 'warn',
    AUTH_SERVICE__INTERNAL_API_KEY: TEST_INTERNAL_KEY,
    AUTH_SERVICE__DB_URL: databaseUrl,
    AUTH_SERVICE__DB_POOL_SIZE: String(Math.max(5, CONCURRENCY)),
    AUTH_SERVICE__MASTER_KEY: 'bench-admin-password',
  });
  procs.push(auth);
  console.log(
    `auth up (database: ${embedded ? 'embedded PGlite' : 'BENCH_DATABASE_URL'}); ${availableParallelism()} CPUs, libuv pool ${process.env.UV_THREADPOOL_SIZE ?? 4}; concurrency ${CONCURRENCY}`,
  );

  const user = { username: `bench-${randomUUID()}`, password: randomUUID() };
  const db = new pg.Pool({ connectionString: databaseUrl, max: 1 });
  await createUser(db, { username: user.username, email: `${user.username}@bench.local`, password: user.password });
  await db.end();

  http = new Pool(auth.url, { connections: CONCURRENCY, pipelining: 1 });
  const pool = http;
  const health = async (): Promise<void> => {
    const res = await pool.request({ path: '/health', method: 'GET' });
    await res.body.dump();
    if (res.statusCode !== 200) throw new Error(`GET /health: ${res.statusCode}`);
  };
  const token = async (form: Record<string, string>): Promise<{ refresh_token: string }> => {
    const res = await pool.request({
      path: '/oauth/token',
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ client_id: CLIENT_ID, ...form }).toString(),
    });
    const body = (await res.body.json()) as { refresh_token: string };
    if (res.statusCode !== 200) throw new Error(`POST /oauth/token (${form.grant_type}): ${res.statusCode} ${JSON.stringify(body)}`);
    return body;
  };
  const password = () => token({ grant_type: 'password', username: user.username, password: user.password });

  // Warm-up: JIT, connections, the key and the database caches.
  await run('warm-up', 200, CONCURRENCY, health);
  await run('warm-up', 10, 2, async () => void (await password()));

  // One lineage per worker: each refresh presents the token the previous one returned.
  const chains: string[] = [];
  for (let i = 0; i < CONCURRENCY; i++) chains.push((await password()).refresh_token);
  const refresh = async (worker: number): Promise<void> => {
    chains[worker] = (await token({ grant_type: 'refresh_token', refresh_token: chains[worker]! })).refresh_token;
  };

  const referenceSeq = await run('GET /health, sequential', REFERENCE_REQUESTS, 1, health);
  const referenceConc = await run(`GET /health, ${CONCURRENCY} concurrent`, REFERENCE_REQUESTS, CONCURRENCY, health);
  const passwordSeq = await run('password grant, sequential', Math.ceil(PASSWORD_REQUESTS / 2), 1, async () => void (await password()));
  const passwordConc = await run(
    `password grant, ${CONCURRENCY} concurrent`,
    PASSWORD_REQUESTS,
    CONCURRENCY,
    async () => void (await password()),
  );
  const refreshSeq = await run('refresh grant, sequential', Math.ceil(REFRESH_REQUESTS / 2), 1, () => refresh(0));
  const refreshConc = await run(`refresh grant, ${CONCURRENCY} concurrent`, REFRESH_REQUESTS, CONCURRENCY, refresh);

  // One scrypt verification, measured here (same machine, one thread).
  const stored = await hashPassword(user.password);
  const scryptMs: number[] = [];
  for (let i = 0; i < 15; i++) {
    const t = performance.now();
    await verifyPassword(user.password, stored);
    scryptMs.push(performance.now() - t);
  }

  console.log();
  print(referenceSeq);
  print(referenceConc);
  print(passwordSeq, referenceSeq);
  print(passwordConc, referenceConc);
  print(refreshSeq, referenceSeq);
  print(refreshConc, referenceConc);
  const scryptP50 = pct(scryptMs, 50);
  const passwordP50 = pct(passwordSeq.latenciesMs, 50);
  console.log(
    `\nscrypt (N=2^${Math.log2(SCRYPT_PARAMS.N)}, r=${SCRYPT_PARAMS.r}, p=${SCRYPT_PARAMS.p}) verification: p50 ${fmt(scryptP50)} ms = ` +
      `${((scryptP50 / passwordP50) * 100).toFixed(0)}% of the sequential password grant's p50 (${fmt(passwordP50)} ms); ` +
      `the refresh grant (no scrypt) p50 is ${fmt(pct(refreshSeq.latenciesMs, 50))} ms. ` +
      `Concurrent password throughput is bounded by ~min(CPUs, libuv pool) / scrypt time = ${fmt((Math.min(availableParallelism(), Number(process.env.UV_THREADPOOL_SIZE ?? 4)) * 1000) / scryptP50)} req/s.`,
  );
} finally {
  await http?.close();
  for (const p of procs) await p.stop();
  await embedded?.stop();
}
