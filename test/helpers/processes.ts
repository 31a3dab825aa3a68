/**
 * Services as real processes (`node services/<name>/src/main.ts`), for tests of what
 * only a process shows: tracing across processes, signals and exit codes, the launcher.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, TEST_INTERNAL_KEY, waitForHttp } from '@codelab/service-kit/testing';
import { startTcpProxy } from './tcp-proxy.ts';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

export const PREFIX = { auth: 'AUTH_SERVICE', gateway: 'GATEWAY', runtime: 'AGENT_RUNTIME', 'llm-proxy': 'LLM_PROXY' } as const;
export type ServiceName = keyof typeof PREFIX;

export interface RunningProcess {
  name: string;
  url: string;
  child: ChildProcess;
  output(): string;
  /** Sends a signal and resolves with the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  exited(): Promise<number | null>;
}

export function runProcess(
  args: string[],
  env: Record<string, string>,
): { child: ChildProcess; output: () => string; exited: () => Promise<number | null> } {
  const child = spawn(process.execPath, args, {
    cwd: REPO_ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', NO_COLOR: '1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, output: () => out, exited: () => exit };
}

export async function startProcess(name: ServiceName, env: Record<string, string>): Promise<RunningProcess> {
  const port = await freePort();
  const p = runProcess([`services/${name}/src/main.ts`], { [`${PREFIX[name]}__PORT`]: String(port), ...env });
  const url = `http://127.0.0.1:${port}`;
  try {
    await Promise.race([
      waitForHttp(`${url}/health`, 60_000),
      p.exited().then((code) => Promise.reject(new Error(`${name} exited with ${code}:\n${p.output()}`))),
    ]);
  } catch (err) {
    p.child.kill('SIGKILL');
    throw err;
  }
  return {
    name,
    url,
    child: p.child,
    output: p.output,
    exited: p.exited,
    stop: async (signal = 'SIGTERM') => {
      if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill(signal);
      return p.exited();
    },
  };
}

/** The four services as processes, wired to each other: what a scraper or a load driver sees of `npm start`. */
export interface PlatformProcesses {
  llm: RunningProcess;
  auth: RunningProcess;
  runtime: RunningProcess;
  gateway: RunningProcess;
  /** Their data directory (the auth service's keys, the runtime's files). */
  dataDir: string;
  /** Base URL by scrape job (deploy/prometheus/prometheus.yml names them after the services). */
  urls: Record<ServiceName, string>;
  /** SIGTERM to each, the gateway first, and their exits. */
  stop(): Promise<void>;
}

export interface PlatformOptions {
  databaseUrl: string;
  /** Extra settings per service (full variable names). */
  env?: Partial<Record<ServiceName, Record<string, string>>>;
  /** A network between the gateway and the runtime: each request waits this many milliseconds (a new draw each). */
  runtimeLatencyMs?: () => number;
}

export async function startPlatformProcesses(opts: PlatformOptions): Promise<PlatformProcesses> {
  const dataDir = await mkdtemp(path.join(tmpdir(), 'codelab-platform-'));
  const common = { CODELAB_DATA_DIR: dataDir };
  const started: RunningProcess[] = [];
  const closers: (() => Promise<unknown>)[] = [];
  const stop = async (): Promise<void> => {
    for (const p of started.reverse()) await p.stop();
    for (const c of closers) await c();
  };
  const start = async (name: ServiceName, env: Record<string, string>): Promise<RunningProcess> => {
    const p = await startProcess(name, { ...common, ...env, ...opts.env?.[name] });
    started.push(p);
    return p;
  };
  try {
    const llm = await start('llm-proxy', {
      LLM_PROXY__INTERNAL_API_KEY: TEST_INTERNAL_KEY,
      LLM_PROXY__MOCK_TTFT_MS: '0',
      LLM_PROXY__MOCK_TOKEN_DELAY_MS: '0',
    });
    const auth = await start('auth', {
      AUTH_SERVICE__INTERNAL_API_KEY: TEST_INTERNAL_KEY,
      AUTH_SERVICE__DB_URL: opts.databaseUrl,
      AUTH_SERVICE__ENABLE_RATE_LIMITING: 'false',
    });
    const runtime = await start('runtime', {
      AGENT_RUNTIME__INTERNAL_API_KEY: TEST_INTERNAL_KEY,
      AGENT_RUNTIME__DB_URL: opts.databaseUrl,
      AGENT_RUNTIME__LLM_PROXY_URL: llm.url,
    });
    let agentUrl = runtime.url;
    if (opts.runtimeLatencyMs) {
      const network = await startTcpProxy([runtime.url], { delayMs: opts.runtimeLatencyMs });
      closers.push(network.close);
      agentUrl = network.url;
    }
    const gateway = await start('gateway', {
      GATEWAY__INTERNAL_API_KEY: TEST_INTERNAL_KEY,
      GATEWAY__AGENT_URL: agentUrl,
      GATEWAY__AUTH_SERVICE_URL: auth.url,
    });
    return {
      llm,
      auth,
      runtime,
      gateway,
      dataDir,
      urls: { gateway: gateway.url, runtime: runtime.url, 'llm-proxy': llm.url, auth: auth.url },
      stop,
    };
  } catch (err) {
    await stop().catch(() => undefined);
    throw err;
  }
}
