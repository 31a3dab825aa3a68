/**
 * What the platform benchmarks (rest, telemetry, ttft, ws-idle, conversations) share:
 *
 * - the services as their own processes (`node services/<name>/src/main.ts`, as in
 *   production), with their stdout in a log file or kept in a bounded buffer, an optional higher
 *   open-files limit and extra node flags;
 * - the whole platform started at once (llm-proxy mock, auth, runtime, gateway) with a user of its
 *   own and a token;
 * - the database: BENCH_DATABASE_URL, or an embedded PGlite when it is not set;
 * - readers of /metrics and of the CPU time each process used (/proc/<pid>/stat).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { closeSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { freePort, waitForHttp, TEST_INTERNAL_KEY } from '@codelab/service-kit/testing';
import { startEmbeddedPostgres } from '@codelab/service-kit';
import { createUser } from '@codelab/auth/users';
import { passwordToken } from '../../test/helpers/stack.ts';
import { PREFIX, REPO_ROOT, type ServiceName } from '../../test/helpers/processes.ts';

export { TEST_INTERNAL_KEY };

export interface Proc {
  name: string;
  url: string;
  pid: number;
  child: ChildProcess;
  /** The last 64 KiB of what it printed (stderr always; stdout unless it goes to a log file). */
  output(): string;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export interface ProcOptions {
  /** stdout goes to this file (appended) instead of a bounded buffer. */
  logFile?: string;
  /** Raise the open-files limit (soft and hard) of the process to this before it starts. */
  nofile?: number;
  /** Extra node flags (e.g. `--inspect=127.0.0.1:0`). */
  nodeArgs?: string[];
  /** Path answered with 200 once it is up (default /health). */
  readyPath?: string;
  /** The name its CPU profiles' folder and its log file go under (default the service's: two of one service need two). */
  as?: string;
}

const KEEP = 64 * 1024;

/**
 * The processes the bench started and that still run. A bench stopped by SIGTERM or SIGHUP (not by
 * Ctrl-C, which reaches the whole process group) stops them too, instead of leaving a platform
 * running: they get SIGTERM (SIGKILL after 5 s) and the bench exits with 128 + the signal's number.
 */
const running = new Set<ChildProcess>();
let stopOnSignal = false;
function stopChildrenOnSignal(): void {
  if (stopOnSignal) return;
  stopOnSignal = true;
  for (const [signal, code] of [
    ['SIGTERM', 143],
    ['SIGHUP', 129],
  ] as const) {
    process.once(signal, () => {
      console.error(`bench: ${signal}: stopping the ${running.size} processes it started`);
      const all = [...running].map((child) => {
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGTERM');
        return exited;
      });
      setTimeout(() => {
        for (const child of running) child.kill('SIGKILL');
        process.exit(code);
      }, 5_000).unref();
      void Promise.all(all).then(() => process.exit(code));
    });
  }
}

/** A process that exited while starting; `portTaken` when its output says its port was in use. */
class StartFailedError extends Error {
  readonly port: number;
  readonly portTaken: boolean;
  constructor(name: string, port: number, code: number | null, output: string) {
    super(`${name} exited with ${code} while starting on port ${port}:\n${output}`);
    this.port = port;
    this.portTaken = /EADDRINUSE/.test(output);
  }
}

/** Whether process `pid` has a socket listening on TCP `port` (/proc/net/tcp and tcp6, and its fds). */
export function listensOn(pid: number, port: number): boolean {
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  const inodes = new Set<string>();
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text = '';
    try {
      text = readFileSync(table, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      // local_address is f[1] (ADDR:PORT in hex), st is f[3] (0A: LISTEN), inode is f[9]
      if (f[3] === '0A' && f[1]?.endsWith(`:${hexPort}`) && f[9]) inodes.add(f[9]);
    }
  }
  if (inodes.size === 0) return false;
  let fds: string[];
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return false;
  }
  for (const fd of fds) {
    try {
      const link = readlinkSync(`/proc/${pid}/fd/${fd}`);
      if (link.startsWith('socket:[') && inodes.has(link.slice(8, -1))) return true;
    } catch {
      // the fd closed meanwhile
    }
  }
  return false;
}

/**
 * Runs `node <script>` with only `env` (plus PATH/HOME), and waits until it answers on `port` and
 * the socket listening there is its own.
 */
export async function startNode(
  name: string,
  script: string,
  port: number,
  env: Record<string, string>,
  opts: ProcOptions = {},
): Promise<Proc> {
  const args = [...(opts.nodeArgs ?? []), script];
  const logFd = opts.logFile ? openSync(opts.logFile, 'a') : undefined;
  const stdio: ['ignore', 'pipe' | number, 'pipe'] = ['ignore', logFd ?? 'pipe', 'pipe'];
  const childEnv = { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', NO_COLOR: '1', ...env };
  const child = opts.nofile
    ? // `exec` keeps the pid: the limit is the node process's own.
      spawn(
        '/bin/sh',
        [
          '-c',
          `ulimit -n ${opts.nofile} 2>/dev/null || echo "bench: cannot raise the open-files limit of ${name} to ${opts.nofile} (soft $(ulimit -Sn), hard $(ulimit -Hn)): run as root or raise the hard limit (ulimit -Hn / limits.conf)" >&2; exec "$0" "$@"`,
          process.execPath,
          ...args,
        ],
        { cwd: REPO_ROOT, env: childEnv, stdio },
      )
    : spawn(process.execPath, args, { cwd: REPO_ROOT, env: childEnv, stdio });
  if (logFd !== undefined) closeSync(logFd);
  running.add(child);
  child.once('exit', () => running.delete(child));
  stopChildrenOnSignal();
  let out = '';
  const keep = (d: Buffer): void => {
    out += d.toString();
    if (out.length > 2 * KEEP) out = out.slice(-KEEP);
  };
  child.stdout?.on('data', keep);
  child.stderr!.on('data', keep);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const url = `http://127.0.0.1:${port}`;
  try {
    await Promise.race([
      (async () => {
        await waitForHttp(`${url}${opts.readyPath ?? '/health'}`, 90_000);
        // The answer may have come from another process on the same port (two processes started
        // side by side were given the same free port: this one then fails to listen, and a bench
        // measured the other platform's service in its place). Ready only when the socket
        // listening on the port is this process's own.
        while (!listensOn(child.pid!, port)) {
          if (child.exitCode !== null || child.signalCode !== null) return;
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
      })(),
      exited.then((code) => Promise.reject(new StartFailedError(name, port, code, out))),
    ]);
    if (child.exitCode !== null || child.signalCode !== null) throw new StartFailedError(name, port, child.exitCode, out);
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }
  return {
    name,
    url,
    pid: child.pid!,
    child,
    output: () => out.slice(-KEEP),
    stop: async (signal = 'SIGTERM') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}

/**
 * A service as its own process. With BENCH_CPU_PROF=<dir>, each service writes a V8 CPU profile
 * into <dir>/<name>/ when it stops (`node scripts/bench/profile-top.ts <dir>` prints where the time went).
 * BENCH_NODE_ARGS adds Node/V8 flags to every service (e.g. `--trace-gc`), and
 * BENCH_SERVICE_LOGS=<dir> appends each service's output to <dir>/<name>.log (where the bench
 * gives no log file of its own), so that what such a flag prints can be read after the run.
 */
export async function startService(name: ServiceName, env: Record<string, string>, opts: ProcOptions = {}): Promise<Proc> {
  // A port another process took first (see startNode): again on a new one, twice at most.
  for (let attempt = 1; ; attempt++) {
    try {
      return await startServiceOn(await freePort(), name, env, opts);
    } catch (err) {
      if (!(err instanceof StartFailedError) || !err.portTaken || attempt === 3) throw err;
      console.error(`bench: ${name}: port ${err.port} was taken by another process; starting it on another port`);
    }
  }
}

async function startServiceOn(port: number, name: ServiceName, env: Record<string, string>, opts: ProcOptions): Promise<Proc> {
  const profileDir = process.env.BENCH_CPU_PROF;
  const extraArgs = process.env.BENCH_NODE_ARGS?.split(/\s+/).filter(Boolean) ?? [];
  const nodeArgs = [
    ...(opts.nodeArgs ?? []),
    ...extraArgs,
    ...(profileDir ? ['--cpu-prof', `--cpu-prof-dir=${path.resolve(profileDir, opts.as ?? name)}`] : []),
  ];
  const logsDir = process.env.BENCH_SERVICE_LOGS;
  if (logsDir) mkdirSync(logsDir, { recursive: true });
  const logFile = opts.logFile ?? (logsDir ? path.join(path.resolve(logsDir), `${opts.as ?? name}.log`) : undefined);
  return startNode(
    name,
    `services/${name}/src/main.ts`,
    port,
    { [`${PREFIX[name]}__PORT`]: String(port), ...env },
    { ...opts, nodeArgs, ...(logFile ? { logFile } : {}) },
  );
}

/**
 * Clears the dead rows earlier runs left (VACUUM, with ANALYZE), as pgbench does before it measures,
 * so that every run starts from the same state: a turn updates its session row twice, and on a
 * server without autovacuum (this machine's: autovacuum = off) the dead versions of earlier runs
 * pile up in the table and its indexes and make later runs dearer. Says what it did, and when the
 * server does not vacuum by itself (dead rows then pile up during the run too).
 */
export async function vacuumFirst(url: string): Promise<string> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const started = performance.now();
    await client.query('VACUUM (ANALYZE)');
    const { rows } = await client.query<{ autovacuum: string }>('SHOW autovacuum');
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    return `vacuumed first in ${seconds} s${rows[0]?.autovacuum === 'off' ? '; the server runs without autovacuum' : ''}`;
  } finally {
    await client.end();
  }
}

/** The run's PostgreSQL: BENCH_DATABASE_URL (vacuumed first), else an embedded engine (PGlite over the wire protocol). */
export async function benchDatabase(
  maxConnections = 32,
): Promise<{ url: string; embedded: boolean; describe: string; stop(): Promise<void> }> {
  if (process.env.BENCH_DATABASE_URL) {
    const vacuum = await vacuumFirst(process.env.BENCH_DATABASE_URL);
    return {
      url: process.env.BENCH_DATABASE_URL,
      embedded: false,
      describe: `PostgreSQL (BENCH_DATABASE_URL, ${vacuum})`,
      stop: async () => undefined,
    };
  }
  const e = await startEmbeddedPostgres(undefined, maxConnections);
  return { url: e.url, embedded: true, describe: 'embedded PGlite (set BENCH_DATABASE_URL for a real PostgreSQL)', stop: () => e.stop() };
}

export interface PlatformOptions {
  databaseUrl: string;
  /** Shared by the runtimes for the frame log and cancels (AGENT_RUNTIME__REDIS_URL). */
  redisUrl?: string | undefined;
  /** Log level of every service (default warn). */
  logLevel?: string;
  /** Variables given to every service (OTEL_*, LOKI_URL). */
  env?: Record<string, string>;
  /** Variables for one service (full names). */
  services?: Partial<Record<ServiceName, Record<string, string>>>;
  /** Each service's stdout goes to `<logDir>/<name>.log` (otherwise a bounded buffer). */
  logDir?: string;
  /** Process options per service (open-files limit, node flags). */
  procs?: Partial<Record<ServiceName, ProcOptions>>;
  /** The mock LLM's fixed delays (ms). */
  mock?: { ttftMs: number; tokenDelayMs: number };
  /**
   * Label in error messages when several platforms run at once; with BENCH_CPU_PROF or
   * BENCH_SERVICE_LOGS, each service's profiles and output go under `<service>@<label as a slug>`.
   */
  label?: string;
}

export interface Platform {
  llm: Proc;
  auth: Proc;
  runtime: Proc;
  gateway: Proc;
  procs: Proc[];
  user: { username: string; password: string; id: string };
  /** An access token (api:read api:write) of the platform's user. */
  token: string;
  wsUrl(sessionId: string): string;
  stop(): Promise<void>;
}

/**
 * A service's own settings from the bench's environment (its prefixed variables, e.g.
 * `AGENT_RUNTIME__TOKEN_FRAME_INTERVAL=0.1 npm run bench:ttft`), but its port: they go over what
 * the bench sets, so that one setting can be compared between runs.
 */
function settingsFromEnv(name: ServiceName): Record<string, string> {
  const prefix = `${PREFIX[name]}__`;
  return Object.fromEntries(
    Object.entries(process.env).filter(
      (e): e is [string, string] => e[0].startsWith(prefix) && e[0] !== `${prefix}PORT` && e[1] !== undefined,
    ),
  );
}

/** The four services as processes, one user, one token. */
export async function startPlatform(opts: PlatformOptions): Promise<Platform> {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'codelab-bench-'));
  const level = opts.logLevel ?? 'warn';
  const envFor = (name: ServiceName): Record<string, string> => ({
    CODELAB_DATA_DIR: dataDir,
    [`${PREFIX[name]}__LOG_LEVEL`]: level,
    [`${PREFIX[name]}__INTERNAL_API_KEY`]: TEST_INTERNAL_KEY,
    ...opts.env,
    ...opts.services?.[name],
    ...settingsFromEnv(name),
  });
  // several platforms at once (bench:telemetry): each one's profiles and logs apart (`runtime@telemetry-off`)
  const slug = opts.label
    ?.toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-|-$/g, '');
  const procOpts = (name: ServiceName): ProcOptions => ({
    ...(slug ? { as: `${name}@${slug}` } : {}),
    ...(opts.logDir ? { logFile: path.join(opts.logDir, `${name}.log`) } : {}),
    ...opts.procs?.[name],
  });
  const started: Proc[] = [];
  const up = async (name: ServiceName, env: Record<string, string>): Promise<Proc> => {
    // (envFor ends with the caller's and the environment's settings: they win over the defaults in `env`)
    const p = await startService(name, { ...env, ...envFor(name) }, procOpts(name));
    started.push(p);
    return p;
  };
  try {
    const [llm, auth] = await Promise.all([
      up('llm-proxy', {
        LLM_PROXY__MOCK_TTFT_MS: String(opts.mock?.ttftMs ?? 0),
        LLM_PROXY__MOCK_TOKEN_DELAY_MS: String(opts.mock?.tokenDelayMs ?? 0),
        LLM_PROXY__MAX_CONCURRENT_REQUESTS: '4096',
      }),
      up('auth', {
        AUTH_SERVICE__DB_URL: opts.databaseUrl,
        AUTH_SERVICE__MASTER_KEY: 'bench-admin-password',
        AUTH_SERVICE__ENABLE_RATE_LIMITING: 'false',
      }),
    ]);
    const runtime = await up('runtime', {
      AGENT_RUNTIME__DB_URL: opts.databaseUrl,
      AGENT_RUNTIME__LLM_PROXY_URL: llm.url,
      ...(opts.redisUrl ? { AGENT_RUNTIME__REDIS_URL: opts.redisUrl } : {}),
    });
    const gateway = await up('gateway', { GATEWAY__AGENT_URL: runtime.url, GATEWAY__AUTH_SERVICE_URL: auth.url });

    const username = `bench-${randomUUID()}`;
    const password = randomUUID();
    const db = new pg.Pool({ connectionString: opts.databaseUrl, max: 1 });
    try {
      await createUser(db, { username, email: `${username}@bench.local`, password });
    } finally {
      await db.end();
    }
    const token = await passwordToken(auth.url, username, password);
    const id = String((JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as { sub: string }).sub);
    const ws = gateway.url.replace(/^http/, 'ws');
    const procs = [gateway, runtime, auth, llm];
    return {
      llm,
      auth,
      runtime,
      gateway,
      procs,
      user: { username, password, id },
      token,
      wsUrl: (sessionId) => `${ws}/api/v1/ws/${encodeURIComponent(sessionId)}`,
      stop: async () => {
        await Promise.all(procs.map((p) => p.stop()));
      },
    };
  } catch (err) {
    await Promise.all(started.map((p) => p.stop('SIGKILL')));
    throw new Error(`${opts.label ? `${opts.label}: ` : ''}${(err as Error).message}`);
  }
}

// ---------------------------------------------------------------------------------------------
// /metrics

export async function scrape(url: string, accept?: string): Promise<string> {
  const res = await fetch(`${url}/metrics`, accept ? { headers: { accept } } : {});
  return res.text();
}

/** Sum of the samples of `name` (exactly that name, any labels) whose line contains `match`. */
export function metricSum(text: string, name: string, match = ''): number {
  let sum = 0;
  let found = false;
  for (const line of text.split('\n')) {
    if (!(line.startsWith(`${name}{`) || line.startsWith(`${name} `))) continue;
    if (match && !line.includes(match)) continue;
    const n = Number(line.slice(line.lastIndexOf(' ') + 1));
    if (Number.isFinite(n)) {
      sum += n;
      found = true;
    }
  }
  return found ? sum : NaN;
}

/** Cumulative bucket counts of a histogram (by upper bound, summed over the label sets matching `match`). */
export function buckets(text: string, name: string, match = ''): Map<number, number> {
  const out = new Map<number, number>();
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}_bucket{`) || (match && !line.includes(match))) continue;
    const le = /le="([^"]+)"/.exec(line)?.[1];
    if (!le) continue;
    const bound = le === '+Inf' ? Infinity : Number(le);
    out.set(bound, (out.get(bound) ?? 0) + Number(line.slice(line.lastIndexOf(' ') + 1)));
  }
  return out;
}

/** How much a counter (its series matching `match`, summed) grew between two scrapes; a series a scrape lacks counts 0. */
export function metricDelta(before: string, after: string, name: string, match = ''): number {
  return (metricSum(after, name, match) || 0) - (metricSum(before, name, match) || 0);
}

/** Mean (ms) of a histogram between two scrapes. */
export function histMeanMs(before: string, after: string, name: string, match = ''): number {
  return histMean(before, after, name, match) * 1000;
}

/** Mean of a histogram's observations between two scrapes (in its own unit); NaN when there were none. */
export function histMean(before: string, after: string, name: string, match = ''): number {
  const count = metricDelta(before, after, `${name}_count`, match);
  return count > 0 ? metricDelta(before, after, `${name}_sum`, match) / count : NaN;
}

/** Upper bound (ms) of the bucket holding percentile p of the observations between two scrapes. */
export function histPctMs(before: string, after: string, name: string, p: number, match = ''): number {
  const a = buckets(after, name, match);
  const b = buckets(before, name, match);
  const total = (a.get(Infinity) ?? 0) - (b.get(Infinity) ?? 0);
  if (total <= 0) return NaN;
  for (const le of [...a.keys()].sort((x, y) => x - y)) if ((a.get(le) ?? 0) - (b.get(le) ?? 0) >= (p / 100) * total) return le * 1000;
  return NaN;
}

// ---------------------------------------------------------------------------------------------
// CPU time per process, from /proc (Linux)

let clockTicks: number | undefined;
function ticksPerSecond(): number {
  if (clockTicks === undefined) {
    try {
      clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

/**
 * What a process has used so far (NaN where /proc cannot tell): CPU ms (user + system, all its
 * threads) and of it the kernel's (system) ms; the ms its main thread (a Node service's event
 * loop) waited on a run queue for a CPU while runnable (/proc/<pid>/schedstat); its read and write
 * system calls (/proc/<pid>/io: read/recv and write/send alike, all threads).
 */
export interface ProcSample {
  cpu: number;
  sys: number;
  waitMs: number;
  reads: number;
  writes: number;
}

function readProc(pid: number, file: string): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/${file}`, 'utf8');
  } catch {
    return undefined;
  }
}

export function procSample(pid: number): ProcSample {
  const stat = readProc(pid, 'stat');
  // after the command name: field 3 (state) first, so utime (field 14) and stime (field 15) are at 11 and 12
  const fields = stat?.slice(stat.lastIndexOf(')') + 2).split(' ');
  const tick = 1000 / ticksPerSecond();
  const sys = fields ? Number(fields[12]) * tick : NaN;
  const schedstat = readProc(pid, 'schedstat')?.split(' ');
  const io = readProc(pid, 'io');
  const count = (name: string): number => Number(io?.match(new RegExp(`^${name}: (\\d+)$`, 'm'))?.[1] ?? NaN);
  return {
    cpu: fields ? Number(fields[11]) * tick + sys : NaN,
    sys,
    waitMs: schedstat ? Number(schedstat[1]) / 1e6 : NaN,
    reads: count('syscr'),
    writes: count('syscw'),
  };
}

/** The difference of two samples (what was used between them); a process started meanwhile counts from zero. */
function sampleDiff(after: ProcSample, before: ProcSample | undefined): ProcSample {
  const d = (k: keyof ProcSample): number => after[k] - (before?.[k] ?? 0);
  return { cpu: d('cpu'), sys: d('sys'), waitMs: d('waitMs'), reads: d('reads'), writes: d('writes') };
}

/**
 * A server's processes, cheap to ask for again: its root processes (named `prefix`, with a parent
 * of another name: PostgreSQL's postmaster, redis-server) are found by a scan of /proc once, and
 * their children (PostgreSQL's backends, which a pool opens and closes) are read from /proc at
 * every call; a scan again only when a root is gone. Without /proc/<pid>/task/<pid>/children (a
 * kernel built without it), every call scans.
 */
export function processFamily(prefix: string): () => number[] {
  let roots: number[] = [];
  const named = (pid: number): boolean => readProc(pid, 'comm')?.startsWith(prefix) === true;
  const parentOf = (pid: number): number =>
    Number(
      readProc(pid, 'stat')
        ?.slice(readProc(pid, 'stat')!.lastIndexOf(')') + 2)
        .split(' ')[1],
    );
  return () => {
    if (!roots.length || roots.some((pid) => !named(pid))) roots = pidsByName(prefix).filter((pid) => !named(parentOf(pid)));
    const out: number[] = [];
    for (const root of roots) {
      const children = readProc(root, `task/${root}/children`);
      if (children === undefined) return pidsByName(prefix);
      out.push(root, ...children.trim().split(/\s+/).filter(Boolean).map(Number));
    }
    return out;
  };
}

/** Pids whose command name (/proc/<pid>/comm) starts with `prefix` (e.g. the PostgreSQL server's). */
export function pidsByName(prefix: string): number[] {
  const out: number[] = [];
  try {
    for (const d of readdirSync('/proc')) {
      if (!/^\d+$/.test(d)) continue;
      try {
        if (readFileSync(`/proc/${d}/comm`, 'utf8').startsWith(prefix)) out.push(Number(d));
      } catch {
        // gone
      }
    }
  } catch {
    // no /proc
  }
  return out;
}

/** Resident set size (bytes) of a process from /proc/<pid>/status. */
export function rssBytes(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : NaN;
  } catch {
    return NaN;
  }
}

/**
 * CPU time used by groups of processes between `start()` and `stop()`: each group is a function
 * returning its pids (evaluated at both ends, so the PostgreSQL backends opened meanwhile count
 * from their start). `self` is this process (the load generator).
 */
export class CpuMeter {
  private before = new Map<number, ProcSample>();
  private wall = 0;
  private selfBefore = 0;
  private readonly groups: Record<string, () => number[]>;

  constructor(groups: Record<string, () => number[]>) {
    this.groups = groups;
  }

  start(): void {
    this.before.clear();
    for (const pids of Object.values(this.groups)) for (const pid of pids()) this.before.set(pid, procSample(pid));
    this.before.set(process.pid, procSample(process.pid));
    const u = process.cpuUsage();
    this.selfBefore = (u.user + u.system) / 1000;
    this.wall = performance.now();
  }

  /**
   * CPU ms per group (and `client`: this process), the wall time (ms), and per group what
   * `procSample` tells beside the CPU (kernel share, run-queue wait, system calls), summed over its pids.
   */
  stop(): { cpu: Record<string, number>; wallMs: number; detail: Record<string, ProcSample> } {
    const cpu: Record<string, number> = {};
    const detail: Record<string, ProcSample> = {};
    const add = (group: string, pid: number): void => {
      const now = procSample(pid);
      if (Number.isFinite(now.cpu)) addDetail(detail, { [group]: sampleDiff(now, this.before.get(pid)) });
    };
    for (const [group, pids] of Object.entries(this.groups)) {
      for (const pid of pids()) add(group, pid);
      cpu[group] = detail[group]?.cpu ?? 0;
    }
    add('client', process.pid);
    const u = process.cpuUsage();
    cpu.client = (u.user + u.system) / 1000 - this.selfBefore;
    return { cpu, wallMs: performance.now() - this.wall, detail };
  }
}

/** Details of CpuMeter.stop added up over several windows. */
export function addDetail(into: Record<string, ProcSample>, more: Record<string, ProcSample>): void {
  for (const [group, d] of Object.entries(more)) {
    const acc = (into[group] ??= { cpu: 0, sys: 0, waitMs: 0, reads: 0, writes: 0 });
    for (const k of Object.keys(d) as (keyof ProcSample)[]) acc[k] += d[k];
  }
}

/**
 * Per operation and process, busiest first: the kernel's share of its CPU, the ms its main thread
 * waited for a CPU while runnable, and its read and write system calls ("runtime kernel 41%,
 * waited 1.20 ms, 21 reads + 30 writes; …").
 */
export function procDetailPerOp(detail: Record<string, ProcSample>, ops: number): string {
  return Object.entries(detail)
    .filter(([, d]) => d.cpu > 0)
    .sort((a, b) => b[1].cpu - a[1].cpu)
    .map(
      ([g, d]) =>
        `${g} kernel ${((d.sys / d.cpu) * 100).toFixed(0)}%, waited ${(d.waitMs / ops).toFixed(2)} ms, ${(d.reads / ops).toFixed(1)} reads + ${(d.writes / ops).toFixed(1)} writes`,
    )
    .join('; ');
}

/** The machine's busy and total CPU time so far (/proc/stat's first line, in ticks); undefined off Linux. */
function machineTicks(): { busy: number; total: number; processes: number } | undefined {
  try {
    const fields = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!.trim().split(/\s+/).slice(1).map(Number);
    const total = fields.slice(0, 8).reduce((a, b) => a + b, 0); // user … steal (guest time is in user)
    const idle = fields[3]! + (fields[4] ?? 0); // idle + iowait
    // what processes were charged (user, nice, system); irq, softirq and steal are no process's
    return { busy: total - idle, total, processes: fields[0]! + fields[1]! + fields[2]! };
  } catch {
    return undefined;
  }
}

/** A process's CPU ticks so far (utime + stime, in /proc/stat's unit) and when it started (to tell a reused pid); undefined once it is gone. */
function procTicks(pid: number): { ticks: number; started: string } | undefined {
  const stat = readProc(pid, 'stat');
  const fields = stat?.slice(stat.lastIndexOf(')') + 2).split(' ');
  return fields ? { ticks: Number(fields[11]) + Number(fields[12]), started: fields[19]! } : undefined;
}

/**
 * The machine's CPU busy time, sampled every `everyMs` from `start()` to `stop()` (/proc/stat:
 * ticks of 10 ms over all CPUs, so a window shorter than a few ticks reads coarse). `busy(from, to)`
 * is the share of all CPUs busy between two `performance.now()` times inside the sampled span
 * (NaN outside it, or off Linux): what the machine was doing while one turn waited for its first token.
 *
 * With `measured` (the pids of the processes under test: services, PostgreSQL, Redis, the load
 * generator; asked for again at each reading, so it should be cheap: `processFamily`), every fifth
 * sample also reads their CPU time, and `outside(from, to)` is the share of all CPUs that other
 * processes of the machine were charged in that span: a job of the machine's own (seen here:
 * RabbitMQ starting an Erlang VM every 60 s, over one CPU for 0.3 s) takes the CPUs from the
 * platform, and the turns that wait through it are no fault of its own. Interrupts and steal are
 * no process's and are left out of it. A process that appears between two readings counts from
 * its start; one that exits loses what it used since the last reading (at most five samples).
 */
export class BusyTimeline {
  private readonly samples: { at: number; busy: number; total: number; processes: number; measured?: number }[] = [];
  private timer: NodeJS.Timeout | undefined;
  private readonly everyMs: number;
  private readonly measured: (() => number[]) | undefined;
  /** The measured processes' CPU ticks at their last reading (and start time), and what they used since `start()`. */
  private readonly last = new Map<number, { ticks: number; started: string }>();
  private used = 0;

  constructor(everyMs = 20, measured?: () => number[]) {
    this.everyMs = everyMs;
    this.measured = measured;
  }

  start(): void {
    this.samples.length = 0;
    this.last.clear();
    this.used = 0;
    for (const pid of this.measured?.() ?? []) {
      const now = procTicks(pid);
      if (now) this.last.set(pid, now);
    }
    let n = 0;
    const sample = (): void => {
      const t = machineTicks();
      if (!t) return;
      const at = performance.now();
      this.samples.push(n++ % 5 === 0 && this.measured ? { at, ...t, measured: this.measuredTicks() } : { at, ...t });
    };
    sample();
    this.timer = setInterval(sample, this.everyMs);
  }

  stop(): void {
    clearInterval(this.timer);
    const t = machineTicks();
    if (t) this.samples.push({ at: performance.now(), ...t, ...(this.measured ? { measured: this.measuredTicks() } : {}) });
  }

  busy(from: number, to: number): number {
    const s = this.samples;
    // the last sample at or before `from`, the first at or after `to`
    let i = -1;
    while (i + 1 < s.length && s[i + 1]!.at <= from) i++;
    let j = s.findIndex((x) => x.at >= to);
    if (i < 0 || j < 0) return Number.NaN;
    while (j < s.length - 1 && s[j]!.total === s[i]!.total) j++; // no tick counted yet
    const total = s[j]!.total - s[i]!.total;
    return total > 0 ? (s[j]!.busy - s[i]!.busy) / total : Number.NaN;
  }

  /**
   * The share of all CPUs charged to processes other than the measured ones between two times (NaN
   * without `measured`). Not clipped at 0: the two sources' ticks are read a little apart, and a
   * mean over many windows should keep both signs of that noise.
   */
  outside(from: number, to: number): number {
    const w = this.measuredWindow(from, to);
    return w && w.total > 0 ? (w.processes - w.measured) / w.total : Number.NaN;
  }

  /** CPU ms the measured processes used between two times (widened to the measured samples around them; NaN without). */
  measuredMs(from: number, to: number): number {
    const w = this.measuredWindow(from, to);
    return w ? (w.measured * 1000) / ticksPerSecond() : Number.NaN;
  }

  /** CPU ms all processes of the machine were charged in the same window as `measuredMs`. */
  processesMs(from: number, to: number): number {
    const w = this.measuredWindow(from, to);
    return w ? (w.processes * 1000) / ticksPerSecond() : Number.NaN;
  }

  /** Machine ticks and the measured processes' ticks from the last measured sample at or before `from` to the first at or after `to`. */
  private measuredWindow(from: number, to: number): { processes: number; total: number; measured: number } | undefined {
    const s = this.samples.filter((x) => x.measured !== undefined);
    let i = -1;
    while (i + 1 < s.length && s[i + 1]!.at <= from) i++;
    const j = s.findIndex((x) => x.at >= to);
    if (i < 0 || j < 0) return undefined;
    return { processes: s[j]!.processes - s[i]!.processes, total: s[j]!.total - s[i]!.total, measured: s[j]!.measured! - s[i]!.measured! };
  }

  /** What the measured processes used since `start()`: each counted from its last reading, a new (or reused) pid from its start. */
  private measuredTicks(): number {
    const seen = new Set<number>();
    for (const pid of this.measured?.() ?? []) {
      seen.add(pid);
      const now = procTicks(pid);
      if (!now) continue;
      const before = this.last.get(pid);
      this.used += now.ticks - (before && before.started === now.started ? before.ticks : 0);
      this.last.set(pid, now);
    }
    for (const pid of this.last.keys()) if (!seen.has(pid)) this.last.delete(pid);
    return this.used;
  }
}

/**
 * Waits until the whole machine is quiet (under `maxBusy` of its CPUs busy over one second), at
 * most `maxSeconds`, and says what it saw. Work left over from what ran before (PostgreSQL's
 * autovacuum after a bench that wrote, services still compiling after their start) otherwise
 * lands on the first windows measured: in one `npm run bench`, bench:telemetry's throughput rose
 * from 233 to 366 REST req/s over its last six windows, and "info logs to stdout" came out 20%
 * dearer than all off.
 */
export async function waitForQuietMachine(label: string, maxBusy = 0.15, maxSeconds = 60): Promise<void> {
  const started = performance.now();
  let last = Number.NaN;
  while (performance.now() - started < maxSeconds * 1000) {
    const a = machineTicks();
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const b = machineTicks();
    if (!a || !b || b.total === a.total) return;
    last = (b.busy - a.busy) / (b.total - a.total);
    if (last < maxBusy) {
      console.log(
        `${label}: machine quiet (${(last * 100).toFixed(0)}% busy) after ${((performance.now() - started) / 1000).toFixed(0)} s`,
      );
      return;
    }
  }
  console.log(
    `${label}: the machine stayed busy (${(last * 100).toFixed(0)}% of its CPUs over the last second) for ${maxSeconds} s: measuring anyway, expect noise`,
  );
}

/** The CPU meter groups of a platform: each service, the PostgreSQL and Redis servers when local. */
export function platformCpuGroups(p: Platform, extra: Record<string, () => number[]> = {}): Record<string, () => number[]> {
  const groups: Record<string, () => number[]> = {
    gateway: () => [p.gateway.pid],
    runtime: () => [p.runtime.pid],
    'llm-proxy': () => [p.llm.pid],
    auth: () => [p.auth.pid],
    ...extra,
  };
  if (process.env.BENCH_DATABASE_URL && /@(127\.0\.0\.1|localhost)[:/]/.test(process.env.BENCH_DATABASE_URL))
    groups.postgres = processFamily('postgres');
  if (process.env.BENCH_REDIS_URL && /\/\/(127\.0\.0\.1|localhost)[:/]/.test(process.env.BENCH_REDIS_URL))
    groups.redis = processFamily('redis-server');
  return groups;
}

/** "gateway 0.21, runtime 0.18, …" CPU ms per operation, and the total. */
export function cpuPerOp(cpu: Record<string, number>, ops: number): string {
  const total = Object.values(cpu).reduce((a, b) => a + b, 0);
  const parts = Object.entries(cpu)
    .filter(([, ms]) => ms > 0)
    .sort((a, b) => b[1] - a[1])
    .map(([k, ms]) => `${k} ${(ms / ops).toFixed(3)}`);
  return `${parts.join(', ')} = ${(total / ops).toFixed(3)} CPU ms per op`;
}

export const CPUS = availableParallelism();

/** Whether this module is the script node was started with. */
export function isMain(metaUrl: string): boolean {
  return Boolean(process.argv[1]) && path.resolve(process.argv[1]!) === new URL(metaUrl).pathname;
}

/** Prints the line `npm run bench` collects for its summary. */
export function result(name: string, text: string): void {
  console.log(`RESULT ${name}: ${text}`);
}

// ---------------------------------------------------------------------------------------------
// Commits in the database

/**
 * Write transactions committed (or rolled back) on the bench's PostgreSQL server: each one that
 * changes data is given a transaction id, read-only ones are not, so the next id to be given out
 * (`pg_snapshot_xmax(pg_current_snapshot())`, which gives none itself) counts them — at once, with
 * no statistics collector in between. Server-wide: the bench must be alone on that server.
 * Undefined for an embedded database.
 */
export async function writeTransactionCounter(
  databaseUrl: string,
  embedded: boolean,
): Promise<{ read(): Promise<number>; close(): Promise<void> } | undefined> {
  if (embedded) return undefined;
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  return {
    read: async () => Number((await client.query<{ n: string }>('SELECT pg_snapshot_xmax(pg_current_snapshot())::text AS n')).rows[0]!.n),
    close: () => client.end(),
  };
}
