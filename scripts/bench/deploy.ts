/**
 * `npm run bench:deploy`: the container deployment (./Dockerfile, ./docker-compose.yml) measured on
 * the harness's Docker daemon (test/deploy/README.md), each figure next to a reference measured in
 * the same run (the machine is shared and noisy):
 *
 * 1. Image sizes of the four service images (codelab-deploy-test/<service>:test, built with
 *    `buildImages()` when missing or with BENCH_BUILD=1, and then the build time; the deploy suite
 *    builds the same tags, so without BENCH_BUILD=1 they may be another run's): uncompressed
 *    (`docker image inspect`) and compressed (`docker save | gzip -c | wc -c`, about what a
 *    registry stores and a node pulls); reference: the base image node:26-bookworm-slim.
 *    Target: <= 150 MB per service image.
 * 2. Cold start of each service container: `docker create` with the compose service's exact
 *    environment (its running container's Config.Env, less what the image sets itself) and its named
 *    volumes read-only, on the stack's network, its port published on 127.0.0.1; timed from just
 *    before `docker start` to the first 200 on /health, the host starting a GET every 10 ms (see
 *    firstOk() for why not one at a time). Reference:
 *    a node:26-bookworm-slim container running a bare `http.createServer`. Interleaved rounds
 *    (BENCH_COLD_REPEATS, default 5); median and max. The compose CPU/memory limits are not applied
 *    (neither to the reference). Target: <= 1 s.
 * 3. Idle memory of each container of the stack once it is up and idle (`docker stats`), the bare
 *    node container as the reference; and the time from `up` to all healthy, next to the time
 *    `npm start` takes to a ready gateway on this machine.
 * 4. TTFT and turn time p50/p99 of BENCH_CONVERSATIONS (30) concurrent conversations through nginx
 *    with 3 gateways and 2 runtimes (after 5 warm-up conversations), then the same against the
 *    platform of `npm start` on this machine (embedded PGlite, no Redis): the ratio. Each
 *    conversation has BENCH_TURNS (2) turns, the 30 turns of a round sent at once: the first turn
 *    of a new session costs more (the session is created) than the next ones.
 *
 * Prints a table, a `RESULT deploy: …` line (for `npm run bench`) and one JSON line. Everything it
 * made (the Compose project, containers, the launcher, its data directory) is removed at the end,
 * also on failure or Ctrl-C.
 *
 *   export DOCKER_HOST=unix:///var/tmp/codelab-docker/run/docker.sock   # test/deploy/dockerd.sh start
 *   BENCH_CONVERSATIONS=30 BENCH_TURNS=2 BENCH_COLD_REPEATS=5 BENCH_IDLE_SECONDS=15 npm run bench:deploy
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort } from '@codelab/service-kit/testing';
import {
  ComposeStack,
  buildImages,
  imageTag,
  SERVICE_IMAGES,
  SERVICE_PORTS,
  turn,
  type ServiceImage,
} from '../../test/deploy/compose-stack.ts';
import { DOCKER, docker, dockerEnv, dockerHost, dockerMissing, dockerOk, IMAGES, uniqueName } from '../../test/deploy/docker.ts';
import { REPO_ROOT } from '../../test/helpers/processes.ts';
import { FrameClient, passwordToken } from '../../test/helpers/stack.ts';
import { CPUS, result } from './platform.ts';
import { median, pct } from './timing.ts';

const CONVERSATIONS = Number(process.env.BENCH_CONVERSATIONS || 30);
const WARMUP = Number(process.env.BENCH_WARMUP || 5);
const TURNS = Math.max(1, Number(process.env.BENCH_TURNS || 2));
const REPEATS = Number(process.env.BENCH_COLD_REPEATS || 5);
const IDLE_SECONDS = Number(process.env.BENCH_IDLE_SECONDS || 15);
const MESSAGE = process.env.BENCH_MESSAGE || 'bench [[mock:words 50]]';
const SIZE_TARGET_MB = 150;
const COLD_TARGET_MS = 1000;
const POLL_MS = 10;
const LOCAL_PORTS = [8000, 8001, 8002, 8003];
const REFERENCE = 'reference';
const REFERENCE_SCRIPT = "require('http').createServer((q,s)=>s.end('ok')).listen(8000)";

const mb = (bytes: number): string => (bytes / 1e6).toFixed(1);
const ms0 = (n: number): string => (Number.isFinite(n) ? n.toFixed(0) : '-');
const f1 = (n: number): string => (Number.isFinite(n) ? n.toFixed(1) : '-');
const x2 = (n: number): string => (Number.isFinite(n) ? `x${n.toFixed(2)}` : '-');
const verdict = (ok: boolean): string => (ok ? 'met' : 'MISSED');
const log = (line: string): void => void process.stderr.write(`bench:deploy: ${line}\n`);

// ---------------------------------------------------------------------------------------------
// What this run made, removed by cleanup() whatever happens.

let stack: ComposeStack | undefined;
const containers = new Set<string>();
let launcher: ChildProcess | undefined;
let launcherExited: Promise<unknown> | undefined;
let dataDir: string | undefined;
let cleaning: Promise<void> | undefined;

function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    if (launcher && launcher.exitCode === null && launcher.signalCode === null) {
      launcher.kill('SIGTERM');
      const timer = setTimeout(() => launcher?.kill('SIGKILL'), 30_000);
      await launcherExited;
      clearTimeout(timer);
    }
    if (containers.size) await docker(['rm', '-f', '-v', ...containers]).catch(() => undefined);
    containers.clear();
    if (stack) await stack.destroy().catch((err: Error) => log(`docker-compose -p ${stack?.project} down failed: ${err.message}`));
    stack = undefined;
    if (dataDir) await rm(dataDir, { recursive: true, force: true }).catch(() => undefined);
  })();
  return cleaning;
}
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    log(`${signal}: cleaning up`);
    void cleanup().finally(() => process.exit(130));
  });
}

// ---------------------------------------------------------------------------------------------
// 1. Images

interface ImageSize {
  image: string;
  id: string;
  bytes: number;
  gzipBytes: number;
}

async function imageExists(image: string): Promise<boolean> {
  return (await docker(['image', 'inspect', '-f', '{{.Id}}', image])).code === 0;
}

/** `docker save IMAGE | gzip -c | wc -c`: what a registry stores and a node pulls, about. */
function gzippedSize(image: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn('/bin/bash', ['-o', 'pipefail', '-c', `"${DOCKER}" save "$1" | gzip -c | wc -c`, 'bash', image], {
      env: dockerEnv(),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.once('error', reject);
    child.once('close', (code) =>
      code === 0 ? resolve(Number(out.trim())) : reject(new Error(`docker save ${image} | gzip exited ${code}: ${err}`)),
    );
  });
}

async function imageSize(image: string): Promise<ImageSize> {
  const [id, size] = (await dockerOk(['image', 'inspect', '-f', '{{.Id}} {{.Size}}', image])).split(' ');
  return { image, id: id!.replace(/^sha256:/, '').slice(0, 12), bytes: Number(size), gzipBytes: await gzippedSize(image) };
}

// ---------------------------------------------------------------------------------------------
// 2. Cold start

interface ColdTarget {
  name: string;
  image: string;
  port: number;
  /** Container environment, handed to `docker create -e NAME` through the client's environment (no secret on a command line). */
  env: Record<string, string>;
  volumes: string[];
  command: string[];
}

interface ColdStart {
  /** `docker start` returned (the container runs). */
  startMs: number;
  /** First 200 on /health through the published port. */
  healthyMs: number;
}

/**
 * Starts a GET of `url` (a fresh connection each) every POLL_MS without waiting for the ones in
 * flight; resolves with the ms from `t0` to the first 200, NaN after `timeoutMs` or once `stop()`.
 * Not one probe at a time: while `docker start` sets the container's network up, docker-proxy
 * already accepts on the published port but its connection to the container is lost (its SYN
 * is retransmitted a second later), so a sequential poller waits ~1 s on a probe sent then while
 * the server already listens (measured: a bare node listening 530 ms after `docker start`, first
 * 200 of a sequential poller at 1160 ms).
 */
function firstOk(url: string, t0: number, timeoutMs: number, stop: () => boolean): Promise<number> {
  return new Promise((resolve) => {
    const inFlight = new Set<http.ClientRequest>();
    let done = false;
    let timer: NodeJS.Timeout | undefined;
    const finish = (ms: number): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      for (const req of inFlight) req.destroy();
      resolve(ms);
    };
    const tick = (): void => {
      if (done) return;
      if (stop() || performance.now() - t0 > timeoutMs) return finish(NaN);
      const req = http.get(url, { agent: false, timeout: 5000 }, (res) => {
        res.resume();
        res.once('end', () => {
          inFlight.delete(req);
          if (res.statusCode === 200) finish(performance.now() - t0);
        });
      });
      inFlight.add(req);
      req.once('timeout', () => req.destroy());
      req.once('error', () => inFlight.delete(req));
      req.once('close', () => inFlight.delete(req));
      timer = setTimeout(tick, POLL_MS);
    };
    tick();
  });
}

/** GET url with a fresh connection: the status, or 0 on any error. */
function probe(url: string, timeoutMs: number): Promise<number> {
  return new Promise((resolve) => {
    const req = http.get(url, { agent: false, timeout: timeoutMs }, (res) => {
      res.resume();
      res.once('end', () => resolve(res.statusCode ?? 0));
      res.once('error', () => resolve(0));
    });
    req.once('timeout', () => req.destroy(new Error('timeout')));
    req.once('error', () => resolve(0));
  });
}

async function coldStart(t: ColdTarget, network: string): Promise<ColdStart> {
  const hostPort = await freePort();
  const name = uniqueName(`cl-bench-cold-${t.name}`);
  const args = [
    'create',
    '--name',
    name,
    '--network',
    network,
    '-p',
    `127.0.0.1:${hostPort}:${t.port}`,
    '--label',
    'org.codelab.bench=deploy',
  ];
  for (const k of Object.keys(t.env)) args.push('-e', k);
  for (const v of t.volumes) args.push('-v', v);
  args.push(t.image, ...t.command);
  containers.add(name);
  try {
    await dockerOk(args, { env: t.env });
    const url = `http://127.0.0.1:${hostPort}/health`;
    const t0 = performance.now();
    let startMs = NaN;
    let failed: Error | undefined;
    const started = dockerOk(['start', name]).then(
      () => (startMs = performance.now() - t0),
      (err: Error) => (failed = err),
    );
    const healthyMs = await firstOk(url, t0, 60_000, () => failed !== undefined);
    await started;
    if (failed) throw failed;
    if (!Number.isFinite(healthyMs)) {
      const logs = await docker(['logs', '--tail', '30', name]);
      throw new Error(`${t.name}: no 200 on /health within 60 s:\n${logs.stdout}${logs.stderr}`);
    }
    return { startMs, healthyMs };
  } finally {
    await docker(['rm', '-f', '-v', name]);
    containers.delete(name);
  }
}

/** A compose service's container as `docker create` needs it: the env Compose gave it, its named volumes (read-only). */
async function serviceTarget(s: ComposeStack, service: ServiceImage): Promise<ColdTarget> {
  const [id] = await s.ids(service);
  if (!id) throw new Error(`no container of ${service} in ${s.project}`);
  const container = JSON.parse(await dockerOk(['inspect', '-f', '{{json .Config.Env}}', id])) as string[];
  const image = new Set(JSON.parse(await dockerOk(['image', 'inspect', '-f', '{{json .Config.Env}}', imageTag(service)])) as string[]);
  const env: Record<string, string> = {};
  for (const kv of container) {
    if (image.has(kv)) continue; // the image sets it itself
    const i = kv.indexOf('=');
    env[kv.slice(0, i)] = kv.slice(i + 1);
  }
  const mounts = JSON.parse(await dockerOk(['inspect', '-f', '{{json .Mounts}}', id])) as {
    Type: string;
    Name?: string;
    Destination: string;
  }[];
  const volumes = mounts.filter((m) => m.Type === 'volume' && m.Name).map((m) => `${m.Name}:${m.Destination}:ro`);
  return { name: service, image: imageTag(service), port: SERVICE_PORTS[service], env, volumes, command: [] };
}

// ---------------------------------------------------------------------------------------------
// 3. Memory

const UNITS: Record<string, number> = { B: 1, KiB: 1024, MiB: 1024 ** 2, GiB: 1024 ** 3, kB: 1e3, MB: 1e6, GB: 1e9 };
const parseBytes = (s: string): number => {
  const m = /^([\d.]+)\s*([A-Za-z]+)$/.exec(s.trim());
  return m ? Number(m[1]) * (UNITS[m[2]!] ?? NaN) : NaN;
};

/** `docker stats --no-stream` of the containers: name → used and limit (bytes). */
async function memory(ids: string[]): Promise<{ name: string; used: number; limit: number }[]> {
  const out = await dockerOk(['stats', '--no-stream', '--format', '{{.Name}}|{{.MemUsage}}', ...ids]);
  return out
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [name, usage] = line.split('|');
      const [used, limit] = usage!.split('/');
      return { name: name!, used: parseBytes(used!), limit: parseBytes(limit!) };
    });
}

// ---------------------------------------------------------------------------------------------
// 4. Conversations

interface Conversations {
  ttft: number[];
  turn: number[];
  failures: string[];
}

/**
 * `n` conversations opened, then TURNS turns of MESSAGE on each, the `n` turns of a round at once:
 * one result per round (the first is a new session's first turn).
 */
async function conversations(
  n: number,
  connect: (sessionId: string) => Promise<FrameClient>,
  label: string,
  turns = TURNS,
): Promise<Conversations[]> {
  const clients = await Promise.all(Array.from({ length: n }, (_, i) => connect(`bench-deploy-${label}-${i}-${randomUUID()}`)));
  const rounds: Conversations[] = [];
  try {
    for (let k = 0; k < turns; k++) {
      const res: Conversations = { ttft: [], turn: [], failures: [] };
      rounds.push(res);
      await Promise.all(
        clients.map(async (c) => {
          const sent = performance.now();
          try {
            const t = await turn(c, MESSAGE);
            const took = performance.now() - sent;
            if (t.final.type !== 'assistant_message' || !Number.isFinite(t.ttftMs))
              res.failures.push(JSON.stringify(t.final).slice(0, 300));
            else {
              res.ttft.push(t.ttftMs);
              res.turn.push(took);
            }
          } catch (err) {
            res.failures.push((err as Error).message.slice(0, 300));
          }
        }),
      );
    }
  } finally {
    for (const c of clients) c.close();
  }
  return rounds;
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen({ port, host: '127.0.0.1', exclusive: true }, () => server.close(() => resolve(true)));
  });
}

async function busyPorts(): Promise<number[]> {
  const states = await Promise.all(LOCAL_PORTS.map(portFree));
  return LOCAL_PORTS.filter((_, i) => !states[i]);
}

/** `node scripts/start.ts` on a data directory of its own; resolves once the gateway's /ready answers 200. */
async function startLauncher(): Promise<{ seconds: number; output: () => string }> {
  dataDir = await mkdtemp(path.join(tmpdir(), 'codelab-bench-deploy-'));
  let out = '';
  const t0 = performance.now();
  const child = spawn(process.execPath, ['scripts/start.ts'], {
    cwd: REPO_ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', NO_COLOR: '1', CODELAB_DATA_DIR: dataDir },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  launcher = child;
  launcherExited = new Promise((resolve) => child.once('exit', resolve));
  const keep = (d: Buffer): void => {
    out += d.toString();
    if (out.length > 256 * 1024) out = out.slice(-128 * 1024);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const deadline = Date.now() + 120_000;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null)
      throw new Error(`npm start exited (${child.signalCode ?? child.exitCode}):\n${out.slice(-4000)}`);
    if ((await probe('http://127.0.0.1:8000/ready', 1000)) === 200) break;
    if (Date.now() > deadline) throw new Error(`npm start: the gateway's /ready did not answer 200 within 120 s:\n${out.slice(-4000)}`);
    await sleep(50);
  }
  return { seconds: (performance.now() - t0) / 1000, output: () => out };
}

async function stopLauncher(): Promise<number | null> {
  const child = launcher;
  if (!child) return null;
  if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  await launcherExited;
  clearTimeout(timer);
  launcher = undefined;
  return child.exitCode;
}

// ---------------------------------------------------------------------------------------------

const report: Record<string, unknown> = { bench: 'deploy', cpus: CPUS, dockerHost: dockerHost() ?? 'default' };

async function main(): Promise<void> {
  const missing = dockerMissing();
  if (missing) throw new Error(missing);
  for (const image of [IMAGES.node, IMAGES.postgres, IMAGES.redis, IMAGES.nginx]) {
    if (!(await imageExists(image)))
      throw new Error(`${image} is not on the daemon: build the stand-ins first (test/deploy/stand-ins/build.sh)`);
  }
  const busy = await busyPorts();
  if (busy.length) throw new Error(`ports ${busy.join(', ')} on 127.0.0.1 are taken: the npm start phase needs 8000-8003 free`);

  // 1. images
  const missingImages: string[] = [];
  for (const s of SERVICE_IMAGES) if (!(await imageExists(imageTag(s)))) missingImages.push(imageTag(s));
  let buildSeconds: number | undefined;
  if (missingImages.length || process.env.BENCH_BUILD === '1') {
    log(`building the service images (${missingImages.length ? `missing: ${missingImages.join(', ')}` : 'BENCH_BUILD=1'})…`);
    buildSeconds = await buildImages();
  }
  log('measuring the image sizes (docker save | gzip)…');
  const base = await imageSize(IMAGES.node);
  const sizes: Record<string, ImageSize> = {};
  for (const s of SERVICE_IMAGES) sizes[s] = await imageSize(imageTag(s));
  report.images = { build_seconds: buildSeconds ?? null, base, services: sizes, target_mb: SIZE_TARGET_MB };

  // 3. up, idle memory (before anything else touches the stack)
  stack = await ComposeStack.create();
  log(`docker-compose -p ${stack.project} up…`);
  const upSeconds = await stack.up();
  const network = stack.env.CODELAB_NETWORK!;
  const reference: ColdTarget = {
    name: REFERENCE,
    image: IMAGES.node,
    port: 8000,
    env: {},
    volumes: [],
    command: ['node', '-e', REFERENCE_SCRIPT],
  };
  // the reference's idle memory: one bare node container on the same network, idle as long
  const idleRef = uniqueName('cl-bench-idle-ref');
  containers.add(idleRef);
  await dockerOk([
    'run',
    '-d',
    '--name',
    idleRef,
    '--network',
    network,
    '--label',
    'org.codelab.bench=deploy',
    IMAGES.node,
    'node',
    '-e',
    REFERENCE_SCRIPT,
  ]);
  log(`up and healthy in ${upSeconds.toFixed(1)} s; idle for ${IDLE_SECONDS} s…`);
  await sleep(IDLE_SECONDS * 1000);
  const states = await stack.states();
  const mem = await memory([...states.map((s) => s.id), idleRef]);
  await docker(['rm', '-f', '-v', idleRef]);
  containers.delete(idleRef);
  const serviceOf = new Map(states.map((s) => [s.name, s.service]));
  const memRows = mem.map((m) => ({ ...m, service: serviceOf.get(m.name) ?? REFERENCE }));
  const refMem = memRows.find((m) => m.service === REFERENCE)?.used ?? NaN;

  // 2. cold starts, interleaved rounds
  const targets = [reference, ...(await Promise.all(SERVICE_IMAGES.map((s) => serviceTarget(stack!, s))))];
  const cold: Record<string, ColdStart[]> = Object.fromEntries(targets.map((t) => [t.name, []]));
  for (let r = 0; r < REPEATS; r++) {
    const line: string[] = [];
    for (const t of targets) {
      const c = await coldStart(t, network);
      cold[t.name]!.push(c);
      line.push(`${t.name} ${ms0(c.healthyMs)}`);
    }
    log(`cold start round ${r + 1}/${REPEATS} (ms to first 200): ${line.join(', ')}`);
  }

  // 4. conversations through nginx, 3 gateways, 2 runtimes
  log('scaling to 3 gateways and 2 runtimes…');
  const scaleSeconds = await stack.up(['--scale', 'gateway=3', '--scale', 'runtime=2']);
  const token = await stack.adminToken();
  const s = stack;
  const viaNginx = (id: string): Promise<FrameClient> => s.connect(token, id);
  log(`${WARMUP} warm-up conversations, then ${CONVERSATIONS} at once through nginx…`);
  const dockerWarm = await conversations(WARMUP, viaNginx, 'warm', 1);
  const dockerRounds = await conversations(CONVERSATIONS, viaNginx, 'nginx');
  log('docker-compose down -v…');
  await stack.destroy();
  stack = undefined;

  // the same against npm start on this machine
  for (let waited = 0; (await busyPorts()).length; waited++) {
    if (waited >= 60) throw new Error(`ports ${(await busyPorts()).join(', ')} still taken after 60 s`);
    await sleep(1000);
  }
  log('npm start (node scripts/start.ts)…');
  const local = await startLauncher();
  const password = (await readFile(path.join(dataDir!, 'auth', 'admin-password'), 'utf8')).trim();
  const localToken = await passwordToken('http://127.0.0.1:8003', 'admin', password);
  const direct = async (id: string): Promise<FrameClient> => {
    const c = new FrameClient(`ws://127.0.0.1:8000/api/v1/ws/${id}`, { authorization: `Bearer ${localToken}` }, { timeoutMs: 60_000 });
    await c.open();
    return c;
  };
  log(`${WARMUP} warm-up conversations, then ${CONVERSATIONS} at once against npm start…`);
  const localWarm = await conversations(WARMUP, direct, 'warm', 1);
  const localRounds = await conversations(CONVERSATIONS, direct, 'local');
  const launcherCode = await stopLauncher();
  if (launcherCode !== 0) log(`npm start exited ${launcherCode} on SIGTERM:\n${local.output().slice(-2000)}`);

  // ---------------------------------------------------------------------------------------------
  // the table
  const out: string[] = [];
  out.push(
    `\nbench:deploy on ${CPUS} CPUs, Docker at ${dockerHost() ?? 'the default socket'} (shared daemon and machine: figures are noisy, compare the ratios)`,
  );
  out.push(
    `\nimages${buildSeconds === undefined ? ' (present, not built by this run)' : ` (built by this run in ${buildSeconds.toFixed(1)} s)`}; MB = 10^6 bytes; target <= ${SIZE_TARGET_MB} MB per service image`,
  );
  out.push(
    `  ${'image'.padEnd(40)} ${'size MB'.padStart(8)} ${'gzip MB'.padStart(8)} ${'+base MB'.padStart(9)} ${'+gz MB'.padStart(7)} ${'x base'.padStart(7)}  target (size / gzip)`,
  );
  out.push(
    `  ${`${IMAGES.node} (reference)`.padEnd(40)} ${mb(base.bytes).padStart(8)} ${mb(base.gzipBytes).padStart(8)} ${''.padStart(9)} ${''.padStart(7)} ${''.padStart(7)}`,
  );
  for (const sv of SERVICE_IMAGES) {
    const i = sizes[sv]!;
    out.push(
      `  ${i.image.padEnd(40)} ${mb(i.bytes).padStart(8)} ${mb(i.gzipBytes).padStart(8)} ${mb(i.bytes - base.bytes).padStart(9)} ${mb(i.gzipBytes - base.gzipBytes).padStart(7)} ${x2(i.bytes / base.bytes).padStart(7)}  ` +
        `${verdict(i.bytes <= SIZE_TARGET_MB * 1e6)} / ${verdict(i.gzipBytes <= SIZE_TARGET_MB * 1e6)}`,
    );
  }

  const refMedian = median(cold[REFERENCE]!.map((c) => c.healthyMs));
  out.push(
    `\ncold start, docker start -> first 200 on /health (the host starts a GET on the published 127.0.0.1 port every ${POLL_MS} ms), ${REPEATS} runs each; target <= ${COLD_TARGET_MS} ms`,
  );
  out.push(
    `  ${'container'.padEnd(12)} ${'start p50'.padStart(10)} ${'200 p50'.padStart(8)} ${'200 max'.padStart(8)} ${'/ ref p50'.padStart(10)}  target (max)`,
  );
  const coldReport: Record<string, unknown> = {};
  for (const t of targets) {
    const runs = cold[t.name]!;
    const h = runs.map((c) => c.healthyMs);
    const st = runs.map((c) => c.startMs);
    coldReport[t.name] = {
      start_ms_p50: median(st),
      healthy_ms: h,
      healthy_ms_p50: median(h),
      healthy_ms_max: Math.max(...h),
      ratio_p50: median(h) / refMedian,
    };
    out.push(
      `  ${(t.name === REFERENCE ? 'bare node' : t.name).padEnd(12)} ${ms0(median(st)).padStart(7)} ms ${ms0(median(h)).padStart(5)} ms ${ms0(Math.max(...h)).padStart(5)} ms ${(t.name === REFERENCE ? '' : x2(median(h) / refMedian)).padStart(10)}  ` +
        (t.name === REFERENCE ? '(reference)' : verdict(Math.max(...h) <= COLD_TARGET_MS)),
    );
  }
  report.cold_start = { repeats: REPEATS, poll_ms: POLL_MS, target_ms: COLD_TARGET_MS, containers: coldReport };

  out.push(
    `\nstack up (nothing running -> every container healthy and nginx answering): ${upSeconds.toFixed(1)} s; npm start -> gateway /ready: ${local.seconds.toFixed(1)} s (x${(upSeconds / local.seconds).toFixed(2)}); scale to 3 gateways + 2 runtimes: ${scaleSeconds.toFixed(1)} s`,
  );
  out.push(`idle memory after ${IDLE_SECONDS} s idle (docker stats), MiB; reference: a bare node container ${f1(refMem / 1024 ** 2)} MiB`);
  const memReport: Record<string, unknown> = {};
  let total = 0;
  for (const m of memRows.sort((a, b) => a.service.localeCompare(b.service))) {
    if (m.service === REFERENCE) continue;
    total += m.used;
    memReport[m.service] = { used_bytes: m.used, limit_bytes: m.limit };
    out.push(
      `  ${m.service.padEnd(12)} ${f1(m.used / 1024 ** 2).padStart(7)} MiB of ${f1(m.limit / 1024 ** 2).padStart(6)}  ${['auth', 'gateway', 'runtime', 'llm-proxy'].includes(m.service) ? `${x2(m.used / refMem)} ref` : ''}`,
    );
  }
  out.push(`  ${'total'.padEnd(12)} ${f1(total / 1024 ** 2).padStart(7)} MiB`);
  report.stack = {
    up_seconds: upSeconds,
    npm_start_ready_seconds: local.seconds,
    scale_seconds: scaleSeconds,
    idle_seconds: IDLE_SECONDS,
    memory: memReport,
    reference_memory_bytes: refMem,
    total_memory_bytes: total,
  };

  const row = (name: string, c: Conversations): string =>
    `  ${name.padEnd(48)} ${f1(pct(c.ttft, 50)).padStart(8)} ${f1(pct(c.ttft, 99)).padStart(7)} ${f1(pct(c.turn, 50)).padStart(8)} ${f1(pct(c.turn, 99)).padStart(7)}  ${c.ttft.length}/${c.ttft.length + c.failures.length}`;
  const ratio = (k: number, p: number, key: 'ttft' | 'turn'): number => pct(dockerRounds[k]![key], p) / pct(localRounds[k]![key], p);
  out.push(
    `\n${CONVERSATIONS} concurrent conversations, ${TURNS} turn${TURNS > 1 ? 's' : ''} each of '${MESSAGE}' (mock LLM, its default delays), the ${CONVERSATIONS} turns of a round at once, ` +
      `after ${WARMUP} warm-up conversations; ms (turn = sent -> final frame)`,
  );
  out.push(`  ${''.padEnd(48)} ${'TTFT p50'.padStart(8)} ${'p99'.padStart(7)} ${'turn p50'.padStart(8)} ${'p99'.padStart(7)}  ok`);
  for (let k = 0; k < TURNS; k++) {
    const which = k === 0 ? 'turn 1 (new session)' : `turn ${k + 1}`;
    out.push(row(`${which}: docker (nginx, 3 gw, 2 rt)`, dockerRounds[k]!));
    out.push(row(`${which}: npm start (reference)`, localRounds[k]!));
    out.push(
      `  ${`${which}: docker / npm start`.padEnd(48)} ${x2(ratio(k, 50, 'ttft')).padStart(8)} ${x2(ratio(k, 99, 'ttft')).padStart(7)} ${x2(ratio(k, 50, 'turn')).padStart(8)} ${x2(ratio(k, 99, 'turn')).padStart(7)}`,
    );
  }
  const named: [string, Conversations][] = [
    ['docker warm-up', dockerWarm[0]!],
    ...dockerRounds.map((c, k): [string, Conversations] => [`docker turn ${k + 1}`, c]),
    ['npm start warm-up', localWarm[0]!],
    ...localRounds.map((c, k): [string, Conversations] => [`npm start turn ${k + 1}`, c]),
  ];
  for (const [name, c] of named) if (c.failures.length) out.push(`  ${name}: ${c.failures.length} failed, e.g. ${c.failures[0]}`);
  const conv = (c: Conversations) => ({
    ttft_ms_p50: pct(c.ttft, 50),
    ttft_ms_p99: pct(c.ttft, 99),
    turn_ms_p50: pct(c.turn, 50),
    turn_ms_p99: pct(c.turn, 99),
    ok: c.ttft.length,
    failed: c.failures.length,
  });
  report.conversations = {
    n: CONVERSATIONS,
    turns: TURNS,
    warmup: WARMUP,
    message: MESSAGE,
    docker: dockerRounds.map(conv),
    npm_start: localRounds.map(conv),
    ratio: dockerRounds.map((_, k) => ({
      ttft_p50: ratio(k, 50, 'ttft'),
      ttft_p99: ratio(k, 99, 'ttft'),
      turn_p50: ratio(k, 50, 'turn'),
      turn_p99: ratio(k, 99, 'turn'),
    })),
  };
  console.log(out.join('\n'));

  const largest = Math.max(...SERVICE_IMAGES.map((sv) => sizes[sv]!.bytes));
  const largestGz = Math.max(...SERVICE_IMAGES.map((sv) => sizes[sv]!.gzipBytes));
  const slowest = Math.max(...SERVICE_IMAGES.map((sv) => Math.max(...cold[sv]!.map((c) => c.healthyMs))));
  console.log('');
  result(
    'deploy',
    `images <= ${mb(largest)} MB (${mb(largestGz)} MB gzip; base ${mb(base.bytes)} / ${mb(base.gzipBytes)} MB), target ${SIZE_TARGET_MB} MB: ${verdict(largest <= SIZE_TARGET_MB * 1e6)}; ` +
      `cold start max ${ms0(slowest)} ms (bare node p50 ${ms0(refMedian)} ms), target ${COLD_TARGET_MS} ms: ${verdict(slowest <= COLD_TARGET_MS)}; up ${upSeconds.toFixed(1)} s; ` +
      `${CONVERSATIONS} conversations, TTFT p99 of a new session's first turn: docker ${f1(pct(dockerRounds[0]!.ttft, 99))} ms vs npm start ${f1(pct(localRounds[0]!.ttft, 99))} ms (${x2(ratio(0, 99, 'ttft'))})` +
      (TURNS > 1
        ? `, of turn ${TURNS}: ${f1(pct(dockerRounds[TURNS - 1]!.ttft, 99))} vs ${f1(pct(localRounds[TURNS - 1]!.ttft, 99))} ms (${x2(ratio(TURNS - 1, 99, 'ttft'))})`
        : ''),
  );
  console.log(JSON.stringify(report));
  if (named.some(([, c]) => c.failures.length)) process.exitCode = 1;
}

try {
  await main();
} catch (err) {
  process.exitCode = 1;
  log(`failed: ${(err as Error).stack ?? String(err)}`);
  if (stack) {
    const logs = await stack.logs().catch(() => '');
    if (logs) log(`logs of ${stack.project} (tail):\n${logs.slice(-6000)}`);
  }
} finally {
  await cleanup();
}
