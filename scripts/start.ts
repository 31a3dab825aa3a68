/**
 * `npm start`: the whole platform on one machine with embedded defaults. Starts one embedded
 * PostgreSQL engine (PGlite over the wire protocol, data under ./data/pg) for the services that
 * have no database URL configured, then auth, llm-proxy, runtime and gateway as child processes
 * (mock LLM, no Redis), prints their logs prefixed and readable,
 * waits until every /health answers, and ends with one line saying where everything listens and
 * how to get a token. Ctrl-C (SIGINT) or SIGTERM stops them gracefully.
 *
 * Any setting can be given as usual (`GATEWAY__PORT=9000 npm start`); the launcher only fills in
 * what the services need to find each other and a random internal key shared by the four.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { prettyFactory } from 'pino-pretty';
import { startEmbeddedPostgres } from '../packages/service-kit/src/db.ts';

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
];
const port = (s: ServiceDef): number => Number(env[`${s.prefix}__PORT`] || s.defaultPort);
const host = (s: ServiceDef): string => env[`${s.prefix}__HOST`] || '127.0.0.1';
const url = (name: string): string => {
  const s = SERVICES.find((x) => x.name === name)!;
  return `http://${host(s) === '0.0.0.0' ? '127.0.0.1' : host(s)}:${port(s)}`;
};

// One internal key for the four services (random per start unless one is configured).
const internalKey = SERVICES.map((s) => env[`${s.prefix}__INTERNAL_API_KEY`]).find(Boolean) || randomBytes(24).toString('base64url');
for (const s of SERVICES) env[`${s.prefix}__INTERNAL_API_KEY`] ||= internalKey;
env.AGENT_RUNTIME__LLM_PROXY_URL ||= url('llm-proxy');
env.GATEWAY__AGENT_URL ||= url('runtime');
env.GATEWAY__AUTH_SERVICE_URL ||= url('auth');
env.CODELAB_DATA_DIR ||= path.join(root, 'data');

// One embedded engine for the services without a database URL (each keeps its own tables).
const DB_SERVICES = [
  { prefix: 'AUTH_SERVICE', defaultPool: 5 },
  { prefix: 'AGENT_RUNTIME', defaultPool: 10 },
].filter((s) => !env[`${s.prefix}__DB_URL`]);
let embedded: { url: string; stop(): Promise<void> } | undefined;
if (DB_SERVICES.length > 0) {
  const connections = DB_SERVICES.reduce((n, s) => n + (Number(env[`${s.prefix}__DB_POOL_SIZE`]) || s.defaultPool), 0) + 4;
  embedded = await startEmbeddedPostgres(path.join(env.CODELAB_DATA_DIR, 'pg'), connections);
  for (const s of DB_SERVICES) env[`${s.prefix}__DB_URL`] = embedded.url;
  process.stdout.write(`embedded PostgreSQL (PGlite) serving ${embedded.url} with data in ${path.join(env.CODELAB_DATA_DIR, 'pg')}\n`);
}

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
      void (embedded?.stop() ?? Promise.resolve()).finally(() => process.exit(code));
    }
  }, 50);
}

for (const s of SERVICES) {
  const entry = path.join(root, 'services', s.name, 'src', 'main.ts');
  const child = spawn(process.execPath, ['--import', 'tsx', entry], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
  children.set(s.name, child);
  createInterface({ input: child.stdout! }).on('line', (l) => print(s, l, process.stdout));
  createInterface({ input: child.stderr! }).on('line', (l) => print(s, l, process.stderr));
  child.on('exit', (code, signal) => {
    if (stopping) return;
    process.stderr.write(`${s.name} exited unexpectedly (${signal ?? `code ${code}`}); stopping the platform\n`);
    stopAll(1);
  });
}
process.on('SIGINT', () => stopAll(0));
process.on('SIGTERM', () => stopAll(0));

const healthy = async (name: string): Promise<boolean> => {
  try {
    return (await fetch(`${url(name)}/health`, { signal: AbortSignal.timeout(1000) })).ok;
  } catch {
    return false;
  }
};
const deadline = Date.now() + Number(env.CODELAB_START_TIMEOUT_SECONDS || 90) * 1000;
while (!stopping) {
  const states = await Promise.all(SERVICES.map((s) => healthy(s.name)));
  if (states.every(Boolean)) break;
  if (Date.now() > deadline) {
    process.stderr.write(`not healthy in time: ${SERVICES.filter((_, i) => !states[i]).map((s) => s.name).join(', ')}\n`);
    stopAll(1);
    break;
  }
  await new Promise((r) => setTimeout(r, 250));
}
if (!stopping) {
  const seconds = ((performance.now() - launched) / 1000).toFixed(1);
  const passwordFile = path.join(env.CODELAB_DATA_DIR, 'auth', 'admin-password');
  const password = env.AUTH_SERVICE__MASTER_KEY
    ? '"$AUTH_SERVICE__MASTER_KEY"'
    : existsSync(passwordFile)
      ? `"$(cat ${path.relative(process.cwd(), passwordFile) || passwordFile})"`
      : '<the admin password>';
  const gw = url('gateway');
  process.stdout.write(
    `\nCodeLab Platform is up in ${seconds}s: gateway ${gw} (WebSocket ${gw.replace('http', 'ws')}/api/v1/ws/<session_id>), ` +
      `auth ${url('auth')}, runtime ${url('runtime')}, llm-proxy ${url('llm-proxy')} (mock) | get a token: ` +
      `curl -s ${url('auth')}/oauth/token -d grant_type=password -d client_id=codelab-flutter-app -d username=admin --data-urlencode password=${password}\n`,
  );
}
