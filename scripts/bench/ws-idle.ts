/**
 * `npm run bench:ws-idle`: the memory one gateway process spends per idle WebSocket. Opens N
 * (default 20,000) authenticated WebSockets to one gateway process and keeps them idle; the
 * gateway is the real one, in front of a real runtime (it checks session access at every connect:
 * each socket names a new session of the bench's user) with PostgreSQL, and verifies the bearer
 * token of every handshake. The gateway's resident memory (/proc/<pid>/status) and V8 heap
 * (/metrics: nodejs_heap_size_used_bytes, nodejs_external_memory_bytes) are read before and after,
 * once as they are and once after a full garbage collection (asked through the inspector: the
 * gateway runs with --inspect on a random loopback port); the difference over N is the cost of one
 * connection. Target (issue 16): 20,000 idle connections at <= 10 KiB each (RSS after GC).
 *
 * Heartbeats run faster than by default (GATEWAY__WS_HEARTBEAT_INTERVAL=5 s, BENCH_WS_HEARTBEAT)
 * and the connections are held BENCH_WS_HOLD seconds before the second reading, so every socket
 * has been pinged and has answered at least once: what is measured is the steady idle state.
 *
 * Limits: the gateway needs one descriptor per connection; it is started with `ulimit -n N+2048`
 * (raising the hard limit needs root; the bench says so when it cannot). The clients are spread
 * over worker processes (BENCH_WS_WORKERS, default one per 2,500 connections), each binding its
 * own loopback source address 127.0.0.(2+i) so ephemeral ports never run out.
 *
 *   BENCH_WS_CONNECTIONS=10000 BENCH_WS_WORKERS=4 BENCH_WS_HOLD=12 \
 *   BENCH_DATABASE_URL=postgres://… npm run bench:ws-idle
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import WebSocket from 'ws';
import { REPO_ROOT } from '../../test/helpers/processes.ts';
import { f1 } from './load.ts';
import { benchDatabase, CPUS, metricSum, result, rssBytes, scrape, startPlatform, type Platform } from './platform.ts';
import { reportTarget } from './targets.ts';

/** The hard open-files limit of this process (what the gateway's limit can be raised to without privileges). */
function hardNofile(): number {
  const m = /Max open files\s+\d+\s+(\d+|unlimited)/.exec(readFileSync('/proc/self/limits', 'utf8'));
  return !m || m[1] === 'unlimited' ? Infinity : Number(m[1]);
}
/** Descriptors the gateway keeps for itself (stdio, epoll, its listener, pools, the inspector). */
const GATEWAY_OWN_FDS = 256;
/**
 * 20,000 idle connections is the target, and on this machine kind also its open-files limit: where
 * the limit cannot be raised past it, the target is the limit less the gateway's own descriptors.
 */
const TARGET_CONNECTIONS = Math.min(20_000, hardNofile() - GATEWAY_OWN_FDS);
const N = Number(process.env.BENCH_WS_CONNECTIONS || TARGET_CONNECTIONS);
const WORKERS = Number(process.env.BENCH_WS_WORKERS || Math.max(1, Math.ceil(N / 2500)));
const PARALLEL = Number(process.env.BENCH_WS_PARALLEL || 32);
const HOLD = Number(process.env.BENCH_WS_HOLD || 12);
const HEARTBEAT = Number(process.env.BENCH_WS_HEARTBEAT || 5);
const TARGET_KIB = 10;
const KiB = 1024;

interface Reading {
  rss: number;
  heapUsed: number;
  external: number;
  fds: number;
}

async function read(platform: Platform): Promise<Reading> {
  const text = await scrape(platform.gateway.url);
  let fds = NaN;
  try {
    fds = readdirSync(`/proc/${platform.gateway.pid}/fd`).length;
  } catch {
    // not Linux
  }
  return {
    rss: rssBytes(platform.gateway.pid),
    heapUsed: metricSum(text, 'nodejs_heap_size_used_bytes'),
    external: metricSum(text, 'nodejs_external_memory_bytes'),
    fds,
  };
}

/** A full GC in the gateway, through its inspector (Chrome DevTools protocol). */
async function collectGarbage(inspectorUrl: string): Promise<void> {
  const ws = new WebSocket(inspectorUrl);
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  let id = 0;
  const call = (method: string): Promise<void> =>
    new Promise((resolve) => {
      const my = ++id;
      const onMessage = (data: WebSocket.RawData): void => {
        if ((JSON.parse(String(data)) as { id?: number }).id === my) {
          ws.off('message', onMessage);
          resolve();
        }
      };
      ws.on('message', onMessage);
      ws.send(JSON.stringify({ id: my, method }));
    });
  await call('HeapProfiler.enable');
  await call('HeapProfiler.collectGarbage');
  await call('HeapProfiler.collectGarbage');
  await call('HeapProfiler.disable');
  ws.close();
  await sleep(500);
}

/** This process's soft open-files limit. */
function softNofile(): number {
  try {
    const m = /Max open files\s+(\d+)/.exec(readFileSync('/proc/self/limits', 'utf8'));
    return m ? Number(m[1]) : NaN;
  } catch {
    return NaN;
  }
}

interface Worker {
  child: ChildProcess;
  count: number;
  opened: number;
  failed: number;
  error?: string;
  done: Promise<void>;
  request<T>(type: string): Promise<T>;
}

function startWorker(i: number, count: number, base: string, token: string): Worker {
  const nofile = count + 1024;
  const child = spawn(
    '/bin/sh',
    [
      '-c',
      `ulimit -n ${nofile} 2>/dev/null || echo "bench: cannot raise the open-files limit of a client worker to ${nofile} (soft $(ulimit -Sn), hard $(ulimit -Hn)); use more BENCH_WS_WORKERS" >&2; exec "$0" "$@"`,
      process.execPath,
      'scripts/bench/ws-idle-client.ts',
    ],
    {
      cwd: REPO_ROOT,
      env: {
        PATH: process.env.PATH ?? '',
        HOME: process.env.HOME ?? '/tmp',
        WS_BASE: base,
        TOKEN: token,
        COUNT: String(count),
        PARALLEL: String(PARALLEL),
        LOCAL_ADDRESS: `127.0.0.${2 + (i % 250)}`,
        WORKER: String(i),
      },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    },
  );
  const w: Worker = {
    child,
    count,
    opened: 0,
    failed: 0,
    done: undefined as unknown as Promise<void>,
    request: <T>(type: string) =>
      new Promise<T>((resolve) => {
        const on = (m: { type: string }): void => {
          if (m.type === type) {
            child.off('message', on);
            resolve(m as T);
          }
        };
        child.on('message', on);
        child.send({ type });
      }),
  };
  w.done = new Promise((resolve, reject) => {
    child.on('message', (m: { type: string; opened: number; failed: number; error?: string }) => {
      if (m.type !== 'progress' && m.type !== 'opened') return;
      Object.assign(w, { opened: m.opened, failed: m.failed, error: m.error });
      if (m.type === 'opened') resolve();
    });
    child.once('exit', (code) => reject(new Error(`client worker ${i} exited with ${code} before opening its connections`)));
  });
  w.done.catch(() => undefined);
  return w;
}

let platform: Platform | undefined;
const workers: Worker[] = [];
const db = await benchDatabase(24);
try {
  const gatewayNofile = Math.min(N + 2048, hardNofile());
  platform = await startPlatform({
    databaseUrl: db.url,
    redisUrl: process.env.BENCH_REDIS_URL,
    services: { gateway: { GATEWAY__WS_HEARTBEAT_INTERVAL: String(HEARTBEAT) } },
    procs: { gateway: { nofile: gatewayNofile, nodeArgs: ['--inspect=127.0.0.1:0'] } },
  });
  const p = platform;
  const inspector = /Debugger listening on (ws:\/\/\S+)/.exec(p.gateway.output())?.[1];
  if (!inspector) throw new Error(`the gateway printed no inspector URL:\n${p.gateway.output()}`);
  const limits = readFileSync(`/proc/${p.gateway.pid}/limits`, 'utf8');
  const gwNofile = Number(/Max open files\s+(\d+)/.exec(limits)?.[1]);
  if (gwNofile < N + GATEWAY_OWN_FDS) {
    throw new Error(
      `the gateway may open ${gwNofile} files, fewer than the ${N} connections asked for: ${p.gateway.output().match(/bench: .*/)?.[0] ?? ''} ` +
        `(raise the hard limit, e.g. run as root or set nofile in /etc/security/limits.conf, or lower BENCH_WS_CONNECTIONS)`,
    );
  }
  const perWorker = Math.ceil(N / WORKERS);
  console.log(
    `${N} idle WebSockets to one gateway (real runtime and ${db.describe}; heartbeat every ${HEARTBEAT} s) from ${WORKERS} client processes of up to ${perWorker}, ` +
      `${PARALLEL} handshakes in flight each, source addresses 127.0.0.2–127.0.0.${1 + Math.min(WORKERS, 250)}; gateway open-files limit ${gwNofile} (this shell's: ${softNofile()}); ${CPUS} CPUs`,
  );

  // Warm-up: the handshake path (JIT, pools, the verified-token cache), then a quiet start.
  const base = p.wsUrl('');
  const warm = await Promise.all(
    Array.from({ length: 200 }, () => {
      const ws = new WebSocket(`${base}warmup-${Math.random().toString(36).slice(2)}`, {
        headers: { authorization: `Bearer ${p.token}` },
        perMessageDeflate: false,
      });
      return new Promise<WebSocket>((resolve, reject) => {
        ws.once('open', () => resolve(ws));
        ws.once('error', reject);
      });
    }),
  );
  await Promise.all(
    warm.map(
      (ws) =>
        new Promise((resolve) => {
          ws.once('close', resolve);
          ws.close();
        }),
    ),
  );
  await sleep(1000);
  const rawBefore = await read(p);
  await collectGarbage(inspector);
  const before = await read(p);

  const started = performance.now();
  for (let i = 0; i < WORKERS; i++) workers.push(startWorker(i, Math.min(perWorker, N - i * perWorker), base, p.token));
  const ticker = setInterval(() => {
    const opened = workers.reduce((n, w) => n + w.opened, 0);
    process.stdout.write(`  ${opened} open after ${f1((performance.now() - started) / 1000)} s\n`);
  }, 5000);
  await Promise.all(workers.map((w) => w.done)).finally(() => clearInterval(ticker));
  const openSeconds = (performance.now() - started) / 1000;
  const opened = workers.reduce((n, w) => n + w.opened, 0);
  const failed = workers.reduce((n, w) => n + w.failed, 0);
  console.log(
    `opened ${opened} of ${N} in ${f1(openSeconds)} s (${(opened / openSeconds).toFixed(0)} handshakes/s, JWT + session access check each)${failed ? `; ${failed} FAILED: ${workers.find((w) => w.error)?.error}` : ''}`,
  );
  if (opened === 0) throw new Error('no connection opened');

  await sleep(HOLD * 1000);
  const rawAfter = await read(p);
  await collectGarbage(inspector);
  const after = await read(p);
  const gauge = metricSum(await scrape(p.gateway.url), 'gateway_ws_connections');
  const stats = await Promise.all(
    workers.map((w) => w.request<{ open: number; closedEarly: number; codes: Record<string, number>; rss: number }>('stats')),
  );
  const stillOpen = stats.reduce((n, s) => n + s.open, 0);
  const closedEarly = stats.reduce((n, s) => n + s.closedEarly, 0);
  const clientRss = stats.reduce((n, s) => n + s.rss, 0);

  const per = (a: number, b: number): string => `${f1((b - a) / KiB / opened)} KiB`;
  const mib = (n: number): string => `${f1(n / KiB / KiB)} MiB`;
  console.log(
    `held ${HOLD} s: ${stillOpen} still open at the clients, gateway_ws_connections ${gauge}, gateway descriptors ${before.fds} → ${after.fds}` +
      `${closedEarly ? `; ${closedEarly} closed by the gateway (codes ${JSON.stringify(stats.map((s) => s.codes))})` : ''}`,
  );
  console.log(`gateway memory             before        after     per connection`);
  console.log(
    `  RSS, after a full GC     ${mib(before.rss).padStart(10)} ${mib(after.rss).padStart(12)}     ${per(before.rss, after.rss)}`,
  );
  console.log(
    `  RSS, as it was           ${mib(rawBefore.rss).padStart(10)} ${mib(rawAfter.rss).padStart(12)}     ${per(rawBefore.rss, rawAfter.rss)}`,
  );
  console.log(
    `  V8 heap used (after GC)  ${mib(before.heapUsed).padStart(10)} ${mib(after.heapUsed).padStart(12)}     ${per(before.heapUsed, after.heapUsed)}`,
  );
  console.log(
    `  external (after GC)      ${mib(before.external).padStart(10)} ${mib(after.external).padStart(12)}     ${per(before.external, after.external)}`,
  );
  console.log(
    `client side: ${WORKERS} processes, ${mib(clientRss)} RSS together (${f1(clientRss / KiB / opened)} KiB per connection, process baseline included)`,
  );
  const perKiB = (after.rss - before.rss) / KiB / opened;
  const met = opened >= TARGET_CONNECTIONS && perKiB <= TARGET_KIB;
  const verdict = met ? 'met' : 'MISSED';
  reportTarget({
    id: 'ws-idle',
    measured: `${opened} open at ${f1(perKiB)} KiB RSS each after GC (V8 heap ${per(before.heapUsed, after.heapUsed)})`,
    ratio: `${TARGET_CONNECTIONS < 20_000 ? `the open-files limit (${hardNofile()}) less the gateway's own ${GATEWAY_OWN_FDS} allows ${TARGET_CONNECTIONS} of the 20,000; ` : ''}gateway RSS ${mib(before.rss)} before, ${mib(after.rss)} with them`,
    met,
  });
  result(
    'ws-idle',
    `${opened} idle WebSockets on one gateway: ${f1(perKiB)} KiB RSS per connection after GC (${per(rawBefore.rss, rawAfter.rss)} without; V8 heap ${per(before.heapUsed, after.heapUsed)}); ` +
      `target ${N >= TARGET_CONNECTIONS ? '' : `(asked ${N}, target is for ${TARGET_CONNECTIONS}) `}<= ${TARGET_KIB} KiB: ${verdict}`,
  );
} finally {
  await Promise.all(
    workers.map(
      (w) =>
        new Promise<void>((resolve) => {
          if (w.child.exitCode !== null) return resolve();
          w.child.once('exit', () => resolve());
          w.child.send({ type: 'close' });
          setTimeout(() => w.child.kill('SIGKILL'), 15_000).unref();
        }),
    ),
  );
  await platform?.stop();
  await db.stop();
}
