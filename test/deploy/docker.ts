/**
 * Docker Engine for the deployment tests (test/deploy/README.md): whether a daemon is usable, the
 * stand-in images (this machine cannot pull), and small wrappers around `/usr/bin/docker` and
 * `docker-compose` that publish ports on 127.0.0.1 only.
 *
 * The rule of packages/service-kit/src/testing.ts applies: without Docker a suite skips, naming what
 * to install and how to start the daemon; under CI=true it fails instead.
 *
 *   describe.skipIf(dockerMissing())('…', () => {
 *     beforeAll(() => ensureStandIns(), 20 * 60_000);
 *     …
 *   });
 */
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { findProgram } from '@codelab/service-kit/testing';
import { REPO_ROOT } from '../helpers/processes.ts';

/** Docker 20.10 from Debian; a /usr/local/bin/docker 28.x client without buildx can come first on PATH. */
export const DOCKER = '/usr/bin/docker';
const BUILD_SH = path.join(REPO_ROOT, 'test/deploy/stand-ins/build.sh');
const COMPOSE_FILE = path.join(REPO_ROOT, 'docker-compose.yml');
/** The socket of `test/deploy/dockerd.sh start` (its default directory, or CODELAB_DOCKER_DIR). */
const HARNESS_SOCKET = path.join(process.env.CODELAB_DOCKER_DIR ?? '/var/tmp/codelab-docker', 'run/docker.sock');

const INSTALL = 'apt-get install -y docker.io docker-compose debootstrap';
const START = 'eval "$(test/deploy/dockerd.sh start)" (as root; `test/deploy/dockerd.sh stop` stops it)';

/** Stand-in tags, as build.sh makes them (the official names the Compose file and Dockerfile use). */
export const IMAGES = {
  node: 'node:26-bookworm-slim',
  postgres: 'postgres:16',
  redis: 'redis:7',
  nginx: 'nginx:1.27',
  prometheus: 'prom/prometheus:v3.5.0',
  alertmanager: 'prom/alertmanager:v0.28.1',
} as const;

/**
 * DOCKER_HOST for every docker call: the environment's, else the harness daemon's socket when it
 * exists, else Docker's default (/var/run/docker.sock).
 */
export function dockerHost(): string | undefined {
  if (process.env.DOCKER_HOST) return process.env.DOCKER_HOST;
  if (existsSync(HARNESS_SOCKET)) return `unix://${HARNESS_SOCKET}`;
  return undefined;
}

/**
 * The environment for docker and docker-compose: DOCKER_HOST resolved, /usr/bin first on PATH (so
 * that docker-compose's `docker build` is Debian's 20.10 with its built-in BuildKit), BuildKit on.
 */
export function dockerEnv(extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const host = dockerHost();
  return {
    ...process.env,
    PATH: `/usr/bin:${process.env.PATH ?? '/usr/local/bin:/bin'}`,
    DOCKER_BUILDKIT: '1',
    COMPOSE_DOCKER_CLI_BUILD: '1',
    ...(host ? { DOCKER_HOST: host } : {}),
    ...extra,
  };
}

let missingReason: string | undefined | null = null;

/**
 * Why Docker cannot be used here (for `describe.skipIf`), or undefined when it can: Docker Engine
 * and docker-compose installed and a daemon answering `docker info` at DOCKER_HOST. Under CI=true
 * a missing Docker throws instead (CI always proves the real thing). `compose: false` for suites
 * that need the engine only.
 */
export function dockerMissing(options: { compose?: boolean } = {}): string | undefined {
  if (missingReason === null) {
    if (!existsSync(DOCKER)) missingReason = `Docker is not installed (${DOCKER}): ${INSTALL}`;
    else {
      try {
        execFileSync(DOCKER, ['info'], { env: dockerEnv(), stdio: ['ignore', 'pipe', 'pipe'], timeout: 15_000 });
        missingReason = undefined;
      } catch (err) {
        const e = err as { stdout?: Buffer; stderr?: Buffer; message: string };
        const lines = `${e.stderr?.toString() ?? ''}\n${e.stdout?.toString() ?? ''}\n${e.message}`
          .split('\n')
          .map((l) => l.replace(/^ERROR: /, '').trim());
        const detail =
          lines.find((l) => /cannot connect|permission denied|error during connect|timed out|ETIMEDOUT/i.test(l)) ??
          lines.find((l) => l) ??
          '';
        missingReason = `no Docker daemon answers at ${dockerHost() ?? 'the default socket'} (${detail}): start one with ${START}`;
      }
    }
  }
  let reason = missingReason;
  if (!reason && options.compose !== false && !findProgram('docker-compose')) reason = `docker-compose is not installed: ${INSTALL}`;
  if (!reason) return undefined;
  if (process.env.CI === 'true') throw new Error(`CI=true and ${reason}`);
  process.stderr.write(`skipping tests that need Docker: ${reason}\n`);
  return reason;
}

export interface Result {
  stdout: string;
  stderr: string;
  code: number | null;
}

export interface CommandOptions {
  env?: Record<string, string | undefined>;
  input?: string;
  /** Milliseconds; the process is killed (SIGKILL) after it. Default 120 s. */
  timeoutMs?: number;
  cwd?: string;
}

export function runCommand(file: string, args: string[], options: CommandOptions = {}): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { cwd: options.cwd ?? REPO_ROOT, env: dockerEnv(options.env), stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      stderr += `\n[killed after ${options.timeoutMs ?? 120_000} ms]`;
      child.kill('SIGKILL');
    }, options.timeoutMs ?? 120_000);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ stdout, stderr, code });
    });
    child.stdin.on('error', () => undefined); // EPIPE: the command exited without reading its input
    child.stdin.end(options.input ?? '');
  });
}

const BOOLEAN_FLAGS = new Set([
  '-d',
  '--detach',
  '--rm',
  '-i',
  '--interactive',
  '-t',
  '--tty',
  '-it',
  '-ti',
  '--init',
  '--privileged',
  '--read-only',
  '--no-healthcheck',
  '-q',
  '--quiet',
  '--oom-kill-disable',
  '--sig-proxy',
]);

/**
 * Refuses a published port on anything but 127.0.0.1 (this workplace's traffic rule): the options
 * of `docker run|create` up to the image (the command after it is not docker's).
 */
function checkPublished(args: string[]): void {
  const sub = args.findIndex((a) => a === 'run' || a === 'create');
  if (sub < 0 || args.slice(0, sub).some((a) => !a.startsWith('-'))) return;
  for (let i = sub + 1; i < args.length; i++) {
    const arg = args[i]!;
    if (!arg.startsWith('-')) return; // the image
    if (arg === '-P' || arg === '--publish-all') throw new Error('publish on 127.0.0.1 only (-P publishes on every address)');
    const inline = /^(?:-p|--publish=)(.+)$/.exec(arg)?.[1];
    const value = arg === '-p' || arg === '--publish' ? args[i + 1] : inline;
    if (value !== undefined && !value.startsWith('127.0.0.1:')) throw new Error(`publish on 127.0.0.1 only, not ${value}`);
    if (!arg.includes('=') && !BOOLEAN_FLAGS.has(arg) && inline === undefined) i++; // skip the flag's value
  }
}

/** `docker ARGS` with the harness's DOCKER_HOST; resolves whatever the exit code. */
export function docker(args: string[], options: CommandOptions = {}): Promise<Result> {
  checkPublished(args);
  return runCommand(DOCKER, args, options);
}

/** `docker ARGS`, throwing with its output unless it exits 0; resolves with stdout, trimmed. */
export async function dockerOk(args: string[], options: CommandOptions = {}): Promise<string> {
  const r = await docker(args, options);
  if (r.code !== 0) throw new Error(`docker ${args.join(' ')} exited ${r.code}:\n${r.stderr || r.stdout}`);
  return r.stdout.trim();
}

export interface RunOptions extends CommandOptions {
  name?: string;
  network?: string;
  /** Container environment (not the docker client's: that is `env`). */
  containerEnv?: Record<string, string>;
  /** `volume-or-host-path:/container/path[:ro]` */
  volumes?: string[];
  user?: string;
  entrypoint?: string;
  /** Container ports to publish on 127.0.0.1 (a random host port unless given as `HOST:CONTAINER`). */
  publish?: (number | string)[];
  detach?: boolean;
  /** Keep the container after it exits (default: --rm unless detached). */
  keep?: boolean;
  labels?: Record<string, string>;
  extraArgs?: string[];
}

function runArgs(image: string, command: string[], o: RunOptions): string[] {
  const args = ['run'];
  if (o.detach) args.push('-d');
  else if (!o.keep) args.push('--rm');
  if (o.name) args.push('--name', o.name);
  if (o.network) args.push('--network', o.network);
  if (o.user) args.push('--user', o.user);
  if (o.entrypoint !== undefined) args.push('--entrypoint', o.entrypoint);
  for (const [k, v] of Object.entries(o.containerEnv ?? {})) args.push('-e', `${k}=${v}`);
  for (const v of o.volumes ?? []) args.push('-v', v);
  for (const p of o.publish ?? []) args.push('-p', `127.0.0.1:${String(p).includes(':') ? p : `:${p}`}`);
  for (const [k, v] of Object.entries(o.labels ?? {})) args.push('--label', `${k}=${v}`);
  args.push(...(o.extraArgs ?? []), image, ...command);
  return args;
}

/** `docker run [--rm|-d] … IMAGE COMMAND…`: stdout, stderr and exit code (for -d, stdout is the id). */
export function run(image: string, command: string[] = [], options: RunOptions = {}): Promise<Result> {
  return docker(runArgs(image, command, options), options);
}

/** `docker exec [-u USER] [-e K=V] CONTAINER COMMAND…`: stdout, stderr and exit code. */
export function exec(
  container: string,
  command: string[],
  options: CommandOptions & { user?: string; containerEnv?: Record<string, string> } = {},
): Promise<Result> {
  const args = ['exec', '-i'];
  if (options.user) args.push('--user', options.user);
  for (const [k, v] of Object.entries(options.containerEnv ?? {})) args.push('-e', `${k}=${v}`);
  return docker([...args, container, ...command], options);
}

/** The 127.0.0.1 address a container's port is published on, e.g. `127.0.0.1:49153`. */
export async function publishedAddress(container: string, port: number | string): Promise<string> {
  const out = await dockerOk(['port', container, String(port)]);
  const line = out.split('\n').find((l) => l.startsWith('127.0.0.1:'));
  if (!line) throw new Error(`${container}:${port} is not published on 127.0.0.1 (${out})`);
  return line.trim();
}

export interface ComposeOptions extends CommandOptions {
  /** Default: the repository's docker-compose.yml (more files: pass several). */
  files?: string[];
}

/**
 * `docker-compose -p PROJECT -f FILE… ARGS` (Compose 1.29). Variables the Compose file reads go
 * in `env`; NGINX_BIND_ADDRESS defaults to 127.0.0.1 and must stay there (the only published port
 * is nginx's). Resolves whatever the exit code.
 */
export function compose(
  projectName: string,
  args: string[],
  env: Record<string, string | undefined> = {},
  options: ComposeOptions = {},
): Promise<Result> {
  if (!/^[a-z0-9][a-z0-9_-]*$/.test(projectName))
    throw new Error(`compose project names are lowercase letters, digits, - and _: ${projectName}`);
  const merged = { NGINX_BIND_ADDRESS: '127.0.0.1', ...env };
  if (merged.NGINX_BIND_ADDRESS !== '127.0.0.1')
    throw new Error(`publish on 127.0.0.1 only, not NGINX_BIND_ADDRESS=${merged.NGINX_BIND_ADDRESS}`);
  const files = (options.files ?? [COMPOSE_FILE]).flatMap((f) => ['-f', f]);
  return runCommand(findProgram('docker-compose') ?? 'docker-compose', ['-p', projectName, ...files, ...args], {
    timeoutMs: 10 * 60_000,
    ...options,
    env: { ...options.env, ...merged },
  });
}

/**
 * `docker build` with BuildKit (Docker 20.10's built-in; no `# syntax=` frontend can be pulled
 * here), handing the npm CA of a TLS-intercepting proxy in as the secret `extra_ca` when
 * NODE_EXTRA_CA_CERTS names one (`RUN --mount=type=secret,id=extra_ca,required=false …`).
 */
export function dockerBuild(options: {
  context?: string;
  file?: string;
  target?: string;
  tags: string[];
  buildArgs?: Record<string, string>;
  timeoutMs?: number;
}): Promise<Result> {
  const args = ['build', '--progress=plain'];
  if (options.file) args.push('-f', options.file);
  if (options.target) args.push('--target', options.target);
  for (const t of options.tags) args.push('-t', t);
  for (const [k, v] of Object.entries(options.buildArgs ?? {})) args.push('--build-arg', `${k}=${v}`);
  const ca = process.env.NODE_EXTRA_CA_CERTS;
  if (ca && existsSync(ca)) args.push('--secret', `id=extra_ca,src=${ca}`);
  args.push(options.context ?? REPO_ROOT);
  return docker(args, { timeoutMs: options.timeoutMs ?? 20 * 60_000 });
}

const standIns = new Map<string, Promise<void>>();

/**
 * Builds (or finds up to date) the stand-ins for node:26-bookworm-slim, postgres:16, redis:7,
 * nginx:1.27, prom/prometheus and prom/alertmanager with test/deploy/stand-ins/build.sh: minutes the first time (debootstrap), seconds
 * after. Once per test process; build.sh itself serialises parallel callers.
 */
export function ensureStandIns(names: (keyof typeof IMAGES)[] = []): Promise<void> {
  const key = names.join(' ');
  let build = standIns.get(key);
  if (!build) {
    build = runCommand(BUILD_SH, names, { timeoutMs: 30 * 60_000 }).then((r) => {
      if (r.code !== 0) throw new Error(`${BUILD_SH} exited ${r.code}:\n${r.stderr}\n${r.stdout}`);
      process.stderr.write(r.stdout);
    });
    standIns.set(key, build);
  }
  return build;
}

/** A name no other run uses: lowercase, valid for containers, networks, volumes and Compose projects. */
export function uniqueName(prefix: string): string {
  return `${prefix}-${process.pid}-${randomBytes(3).toString('hex')}`.toLowerCase();
}

/** Removes containers (forced, with their anonymous volumes), then networks and volumes; ignores what is already gone. */
export async function removeAll(what: { containers?: string[]; networks?: string[]; volumes?: string[] }): Promise<void> {
  if (what.containers?.length) await docker(['rm', '-f', '-v', ...what.containers]);
  if (what.networks?.length) await docker(['network', 'rm', ...what.networks]);
  if (what.volumes?.length) await docker(['volume', 'rm', '-f', ...what.volumes]);
}

/** Polls `check` until it resolves true, or throws naming `what` after `timeoutMs`. */
export async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 60_000, intervalMs = 250): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  throw new Error(`${what}: not within ${timeoutMs} ms`);
}

/** Which of `needles` occur in the byte stream of `docker save` of the images (layers are plain tars). */
export async function foundInImages(images: string[], needles: string[]): Promise<string[]> {
  const found = new Set<string>();
  const longest = Math.max(...needles.map((n) => n.length));
  await new Promise<void>((resolve, reject) => {
    const child = spawn(DOCKER, ['save', ...images], { env: dockerEnv(), stdio: ['ignore', 'pipe', 'inherit'] });
    let tail = Buffer.alloc(0);
    child.stdout.on('data', (chunk: Buffer) => {
      const buf = Buffer.concat([tail, chunk]);
      for (const n of needles) if (!found.has(n) && buf.includes(n)) found.add(n);
      tail = buf.subarray(Math.max(0, buf.length - longest));
    });
    child.once('error', reject);
    child.once('close', (code) => (code === 0 ? resolve() : reject(new Error(`docker save exited ${code}`))));
  });
  return [...found];
}
