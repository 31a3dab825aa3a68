/**
 * `npm start`: the whole platform on one machine with embedded defaults. Serves the data
 * directory's embedded PostgreSQL engine (PGlite over the wire protocol, data under ./data/pg) for
 * the services that have no database URL configured, holding its lock (`data/pg.lock`: this pid and
 * the engine's URL, which is how `npm run auth` finds the running platform's database; a second
 * launcher on the same data directory is refused, naming this one). Then starts auth, llm-proxy and
 * runtime as child processes, and the gateway once auth answers (it fetches auth's keys at start;
 * mock LLM, no Redis), prints their logs prefixed and readable, waits until every /health answers,
 * and ends with one line saying where everything listens and how to get a token. Ctrl-C (SIGINT)
 * or SIGTERM stops them gracefully and removes the lock.
 *
 * Any setting can be given as usual (`GATEWAY__PORT=9000 npm start`); the launcher only fills in
 * what the services need to find each other: the peers' URLs, the JWT issuer (auth's URL, so that
 * standard OAuth clients discover it from there, RFC 8414), and the internal key shared by the
 * four, kept in `data/internal-api-key` (mode 600, generated on the first start) for operators'
 * calls to internal endpoints.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { prettyFactory } from 'pino-pretty';
import {
  EmbeddedDatabaseBusyError,
  EmbeddedEngineMissingError,
  embeddedDatabaseDir,
  openEmbeddedDatabase,
  type EmbeddedDatabase,
} from '@codelab/service-kit';

const launched = performance.now();
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const env = { ...process.env };
const tty = process.stdout.isTTY === true && !env.NO_COLOR;

interface ServiceDef {
  name: string;
  prefix: string;
  defaultPort: number;
  color: number;
}
const SERVICES: ServiceDef[] = [
  { name: 'auth', prefix: 'AUTH_SERVICE', defaultPort: 8003, color: 35 },
  { name: 'llm-proxy', prefix: 'LLM_PROXY', defaultPort: 8002, color: 33 },
  { name: 'runtime', prefix: 'AGENT_RUNTIME', defaultPort: 8001, color: 36 },
  { name: 'gateway', prefix: 'GATEWAY', defaultPort: 8000, color: 32 },
  { name: 'web', prefix: 'WEB', defaultPort: 3000, color: 34 },
];
const port = (s: ServiceDef): number => Number(env[`${s.prefix}__PORT`] || s.defaultPort);
const host = (s: ServiceDef): string => env[`${s.prefix}__HOST`] || '127.0.0.1';
const url = (name: string): string => {
  const s = SERVICES.find((x) => x.name === name)!;
  return `http://${host(s) === '0.0.0.0' ? '127.0.0.1' : host(s)}:${port(s)}`;
};

/** A path as the user would type it: relative to the working directory when under it. */
const shown = (file: string): string => {
  const relative = path.relative(process.cwd(), file);
  return relative && !relative.startsWith('..') && !path.isAbsolute(relative) ? relative : file;
};
function fail(message: string): never {
  process.stderr.write(`npm start: ${message}\n`);
  process.exit(1);
}

env.CODELAB_DATA_DIR ||= path.join(root, 'data');
const dataDir = env.CODELAB_DATA_DIR;
await mkdir(dataDir, { recursive: true }).catch((err: Error) => fail(`cannot create the data directory ${shown(dataDir)}: ${err.message}`));

// One internal key for the four services: the configured one, else the one kept in the data
// directory (generated on the first start), so that operators can call internal endpoints with it.
const internalKeyFile = path.join(dataDir, 'internal-api-key');
const configuredKey = SERVICES.map((s) => env[`${s.prefix}__INTERNAL_API_KEY`]).find(Boolean);
const internalKey = configuredKey ?? (await keptInternalKey(internalKeyFile));
for (const s of SERVICES) env[`${s.prefix}__INTERNAL_API_KEY`] ||= internalKey;

async function keptInternalKey(file: string): Promise<string> {
  const generated = randomBytes(24).toString('base64url');
  try {
    await writeFile(file, `${generated}\n`, { flag: 'wx', mode: 0o600 });
    return generated;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST')
      fail(`cannot write the internal key to ${shown(file)}: ${(err as Error).message}`);
  }
  const kept = (
    await readFile(file, 'utf8').catch((err: Error) => fail(`cannot read the internal key from ${shown(file)}: ${err.message}`))
  ).trim();
  if (kept.length < 16 || /\s/.test(kept))
    fail(
      `${shown(file)} holds no usable internal key (one line of at least 16 characters, no spaces): delete it to have a new one generated`,
    );
  await chmod(file, 0o600).catch(() => undefined);
  return kept;
}

// One embedded engine for the services without a database URL (each keeps its own tables), shared
// through its lock with the auth CLI; a second launcher on this data directory stops here.
const DB_SERVICES = [
  { prefix: 'AUTH_SERVICE', defaultPool: 5 },
  { prefix: 'AGENT_RUNTIME', defaultPool: 10 },
].filter((s) => !env[`${s.prefix}__DB_URL`]);
let embedded: EmbeddedDatabase | undefined;
if (DB_SERVICES.length > 0) {
  // Their pools, and room for the auth CLI's.
  const connections = DB_SERVICES.reduce((n, s) => n + (Number(env[`${s.prefix}__DB_POOL_SIZE`]) || s.defaultPool), 0) + 8;
  const pgDir = embeddedDatabaseDir(dataDir);
  try {
    embedded = await openEmbeddedDatabase(pgDir, { holder: 'platform', share: true, join: false, maxConnections: connections });
  } catch (err) {
    if (err instanceof EmbeddedEngineMissingError) {
      fail(
        `no database URL (${DB_SERVICES.map((s) => `${s.prefix}__DB_URL`).join(', ')}) and ${err.message}: set the URLs of a PostgreSQL server, or install the engine (\`npm ci\` without --omit=optional)`,
      );
    }
    if (!(err instanceof EmbeddedDatabaseBusyError)) throw err;
    const { pid, holder } = err.holder;
    fail(
      holder === 'platform'
        ? `the platform is already running on ${shown(dataDir)} (pid ${pid}): stop it first (Ctrl-C in its terminal, or kill ${pid}), or start this one with another CODELAB_DATA_DIR`
        : `the embedded database in ${shown(pgDir)} is in use by the ${holder} (pid ${pid}): stop it first, or start with another CODELAB_DATA_DIR`,
    );
  }
  for (const s of DB_SERVICES) env[`${s.prefix}__DB_URL`] = embedded.url;
  process.stdout.write(`embedded PostgreSQL (PGlite) serving ${embedded.url} with data in ${shown(pgDir)}\n`);
}

env.AGENT_RUNTIME__LLM_PROXY_URL ||= url('llm-proxy');
env.GATEWAY__AGENT_URL ||= url('runtime');
env.GATEWAY__AUTH_SERVICE_URL ||= url('auth');
// The issuer is where auth serves (RFC 8414: discovery from it must find the same issuer), unless configured.
const issuer = env.AUTH_SERVICE__JWT_ISSUER || env.GATEWAY__JWT_ISSUER || url('auth');
env.AUTH_SERVICE__JWT_ISSUER ||= issuer;
env.GATEWAY__JWT_ISSUER ||= issuer;
// The website (port 3000): the browser calls auth and the gateway on their own ports, which let its
// origin in (CORS); its operations view asks every service's /health and /ready from the server.
const webOrigins = [url('web'), url('web').replace('127.0.0.1', 'localhost')].join(',');
env.AUTH_SERVICE__CORS_ORIGINS ||= webOrigins;
env.GATEWAY__CORS_ORIGINS ||= webOrigins;
env.WEB__AUTH_URL ||= url('auth');
env.WEB__GATEWAY_URL ||= url('gateway');
env.WEB__OPS_TARGETS ||= ['auth', 'gateway', 'runtime', 'llm-proxy'].map((n) => `${n}=${url(n)}`).join(',');

const width = Math.max(...SERVICES.map((s) => s.name.length));
const pretty = prettyFactory({ colorize: tty, singleLine: true, ignore: 'pid,hostname,service,time,reqId', translateTime: false });
function print(s: ServiceDef, line: string, stream: NodeJS.WriteStream): void {
  const tag = `${s.name.padEnd(width)} |`;
  let text = line;
  if (line.startsWith('{')) {
    try {
      const obj = JSON.parse(line) as { time?: string };
      const time = obj.time ? obj.time.slice(11, 23) : '';
      text = `${time} ${pretty(obj).trimEnd()}`;
    } catch {
      /* not JSON: print as is */
    }
  }
  stream.write(`${tty ? `\x1b[${s.color}m${tag}\x1b[0m` : tag} ${text}\n`);
}

const children = new Map<string, ChildProcess>();
let stopping = false;

function stopAll(code: number): void {
  if (stopping) return;
  stopping = true;
  for (const child of children.values()) if (child.exitCode === null) child.kill('SIGTERM');
  const wait = setInterval(() => {
    if ([...children.values()].every((c) => c.exitCode !== null || c.signalCode !== null)) {
      clearInterval(wait);
      // The engine stops after the services, then its lock is removed.
      void (embedded?.stop() ?? Promise.resolve()).finally(() => process.exit(code));
    }
  }, 50);
}
process.on('SIGINT', () => stopAll(0));
process.on('SIGTERM', () => stopAll(0));

function startService(s: ServiceDef): void {
  const entry = path.join(root, 'services', s.name, 'src', 'main.ts');
  const child = spawn(process.execPath, [entry], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
  children.set(s.name, child);
  createInterface({ input: child.stdout! }).on('line', (l) => print(s, l, process.stdout));
  createInterface({ input: child.stderr! }).on('line', (l) => print(s, l, process.stderr));
  child.on('exit', (code, signal) => {
    if (stopping) return;
    process.stderr.write(`${s.name} exited unexpectedly (${signal ?? `code ${code}`}); stopping the platform\n`);
    stopAll(1);
  });
}

const healthy = async (name: string): Promise<boolean> => {
  try {
    return (await fetch(`${url(name)}/health`, { signal: AbortSignal.timeout(1000) })).ok;
  } catch {
    return false;
  }
};
const deadline = Date.now() + Number(env.CODELAB_START_TIMEOUT_SECONDS || 90) * 1000;
/** Polls until every named service answers /health; false when stopping (a service died, or the time is up). */
async function untilHealthy(names: string[]): Promise<boolean> {
  while (!stopping) {
    const states = await Promise.all(names.map(healthy));
    if (states.every(Boolean)) return true;
    if (Date.now() > deadline) {
      process.stderr.write(`not healthy in time: ${names.filter((_, i) => !states[i]).join(', ')}\n`);
      stopAll(1);
      break;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return false;
}

// The website's page is built (vite) when it is missing or older than its sources, alongside the
// services' start; the web server starts once it is there.
const webDef = SERVICES.find((s) => s.name === 'web')!;
const pageBuilt = buildPage();

// The gateway fetches auth's keys and revoked logins at start: it starts once auth answers, while
// llm-proxy and runtime start alongside auth.
const gatewayDef = SERVICES.find((s) => s.name === 'gateway')!;
for (const s of SERVICES) if (s !== gatewayDef && s !== webDef) startService(s);
void pageBuilt.then(() => stopping || startService(webDef));
if (await untilHealthy(['auth'])) startService(gatewayDef);
if (await untilHealthy(SERVICES.map((s) => s.name))) {
  const seconds = ((performance.now() - launched) / 1000).toFixed(1);
  const passwordFile = path.join(dataDir, 'auth', 'admin-password');
  const password = env.AUTH_SERVICE__MASTER_KEY
    ? '"$AUTH_SERVICE__MASTER_KEY"'
    : existsSync(passwordFile)
      ? `"$(cat ${shown(passwordFile)})"`
      : '<the admin password>';
  const key = configuredKey ? 'as configured' : shown(internalKeyFile);
  const gw = url('gateway');
  process.stdout.write(
    `\nCodeLab Platform is up in ${seconds}s: gateway ${gw} (WebSocket ${gw.replace('http', 'ws')}/api/v1/ws/<session_id>), ` +
      `auth ${url('auth')}, runtime ${url('runtime')}, llm-proxy ${url('llm-proxy')} (mock), website ${url('web')} | internal key (X-Internal-Auth): ${key} | get a token: ` +
      `curl -s ${url('auth')}/oauth/token -d grant_type=password -d client_id=codelab-flutter-app -d username=admin --data-urlencode password=${password}\n`,
  );
}

/** `vite build` of services/web/ui when its dist is missing or older than a source; never fails the start (the page then says it is not built). */
async function buildPage(): Promise<void> {
  const ui = path.join(root, 'services', 'web', 'ui');
  const built = path.join(ui, 'dist', 'index.html');
  const newest = (dir: string): number =>
    readdirSync(dir, { withFileTypes: true }).reduce((t, e) => {
      if (e.name === 'dist' || e.name === 'node_modules') return t;
      const p = path.join(dir, e.name);
      return Math.max(t, e.isDirectory() ? newest(p) : statSync(p).mtimeMs);
    }, 0);
  if (existsSync(built) && statSync(built).mtimeMs >= newest(ui)) return;
  const vite = path.join(root, 'node_modules', 'vite', 'bin', 'vite.js');
  if (!existsSync(vite)) {
    process.stderr.write('web: the page is not built and vite is not installed (npm ci with dev dependencies builds it)\n');
    return;
  }
  await new Promise<void>((resolve) => {
    const child = spawn(process.execPath, [vite, 'build', '--config', path.join(ui, 'vite.config.ts'), '--logLevel', 'warn'], {
      cwd: root,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    createInterface({ input: child.stdout! }).on('line', (l) => print(webDef, `build: ${l}`, process.stdout));
    createInterface({ input: child.stderr! }).on('line', (l) => print(webDef, `build: ${l}`, process.stderr));
    child.on('exit', (code) => {
      if (code !== 0) process.stderr.write(`web: vite build exited ${code}: the page is not built\n`);
      resolve();
    });
  });
}
