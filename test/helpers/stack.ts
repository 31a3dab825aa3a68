/**
 * The four services in this test process, on loopback ports, against the run's database (real
 * PostgreSQL in CI, the embedded engine otherwise): what end-to-end tests drive over real HTTP
 * and WebSockets. Each stack gets its own user so suites never depend on each other's data.
 */
import { randomUUID } from 'node:crypto';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import type { Logger } from 'pino';
import WebSocket from 'ws';
import { listen, type Service } from '@codelab/service-kit';
import { freePort, silentLogger, TEST_INTERNAL_KEY, waitForHttp } from '@codelab/service-kit/testing';
import { buildApp as buildAuth } from '@codelab/auth/app';
import { readAuthConfig } from '@codelab/auth/config';
import { createUser } from '@codelab/auth/users';
import { buildApp as buildGateway } from '@codelab/gateway/app';
import { readGatewayConfig } from '@codelab/gateway/config';
import { buildApp as buildLlmProxy } from '@codelab/llm-proxy/app';
import { readLlmProxyConfig } from '@codelab/llm-proxy/config';
import { buildApp as buildRuntime } from '@codelab/runtime/app';
import { readRuntimeConfig } from '@codelab/runtime/config';
import { runProcess } from './processes.ts';
import { startTcpProxy } from './tcp-proxy.ts';

export interface StackOptions {
  databaseUrl: string;
  /** Extra settings per service (full variable names). */
  env?: { auth?: Record<string, string>; llm?: Record<string, string>; runtime?: Record<string, string>; gateway?: Record<string, string> };
  logger?: Logger;
  /** More than one instance of each (gateway i talks to runtime i mod runtimes): set Redis in `env.runtime` to share them. */
  runtimes?: number;
  gateways?: number;
}

export interface Stack {
  auth: Service;
  llm: Service;
  runtime: Service;
  gateway: Service;
  url: { auth: string; llm: string; runtime: string; gateway: string; ws: string; runtimes: string[]; gateways: string[]; wss: string[] };
  runtimes: Service[];
  gateways: Service[];
  user: { username: string; password: string };
  /** Where the stack keeps its files (the auth service's keys are under auth/keys). */
  dataDir: string;
  /** Stops the auth service and starts it again on the same port with extra settings (key rotation). */
  restartAuth(env: Record<string, string>): Promise<void>;
  /** A fresh access token for the stack's user (optionally with a narrower scope). */
  token(scope?: string): Promise<string>;
  close(): Promise<void>;
}

export async function startStack(opts: StackOptions): Promise<Stack> {
  const logger = opts.logger ?? silentLogger();
  const dataDir = await mkdtemp(path.join(tmpdir(), 'codelab-stack-'));
  const common = { CODELAB_DATA_DIR: dataDir };
  const started: Service[] = [];
  const up = async (s: Service): Promise<string> => {
    started.push(s);
    return listen(s, { host: '127.0.0.1', port: 0 });
  };
  try {
    const llm = await buildLlmProxy(
      readLlmProxyConfig({
        ...common,
        LLM_PROXY__INTERNAL_API_KEY: TEST_INTERNAL_KEY,
        LLM_PROXY__MOCK_TTFT_MS: '0',
        LLM_PROXY__MOCK_TOKEN_DELAY_MS: '0',
        ...opts.env?.llm,
      }),
      { logger },
    );
    const llmUrl = await up(llm);
    const authEnv = {
      ...common,
      AUTH_SERVICE__INTERNAL_API_KEY: TEST_INTERNAL_KEY,
      AUTH_SERVICE__DB_URL: opts.databaseUrl,
      AUTH_SERVICE__DB_POOL_SIZE: '2',
      AUTH_SERVICE__MASTER_KEY: 'stack-admin-password',
      // end-to-end suites ask for many tokens from 127.0.0.1; the defences have their own tests
      AUTH_SERVICE__ENABLE_RATE_LIMITING: 'false',
      ...opts.env?.auth,
    };
    let auth = await buildAuth(readAuthConfig(authEnv), { logger });
    const authUrl = await up(auth);
    const authPort = Number(new URL(authUrl).port);
    const runtimes: Service[] = [];
    const runtimeUrls: string[] = [];
    for (let i = 0; i < (opts.runtimes ?? 1); i++) {
      const runtime = await buildRuntime(
        readRuntimeConfig({
          ...common,
          AGENT_RUNTIME__INTERNAL_API_KEY: TEST_INTERNAL_KEY,
          AGENT_RUNTIME__DB_URL: opts.databaseUrl,
          AGENT_RUNTIME__DB_POOL_SIZE: '3',
          AGENT_RUNTIME__LLM_PROXY_URL: llmUrl,
          ...opts.env?.runtime,
        }),
        { logger },
      );
      runtimes.push(runtime);
      runtimeUrls.push(await up(runtime));
    }
    const gateways: Service[] = [];
    const gatewayUrls: string[] = [];
    for (let i = 0; i < (opts.gateways ?? 1); i++) {
      const gateway = await buildGateway(
        readGatewayConfig({
          ...common,
          GATEWAY__INTERNAL_API_KEY: TEST_INTERNAL_KEY,
          GATEWAY__AGENT_URL: runtimeUrls[i % runtimeUrls.length]!,
          GATEWAY__AUTH_SERVICE_URL: authUrl,
          ...opts.env?.gateway,
        }),
        { logger },
      );
      gateways.push(gateway);
      gatewayUrls.push(await up(gateway));
    }
    const [runtime, gateway] = [runtimes[0]!, gateways[0]!];
    const [runtimeUrl, gatewayUrl] = [runtimeUrls[0]!, gatewayUrls[0]!];

    const user = await createStackUser(opts.databaseUrl);
    const stack: Stack = {
      auth,
      llm,
      runtime,
      gateway,
      url: {
        auth: authUrl,
        llm: llmUrl,
        runtime: runtimeUrl,
        gateway: gatewayUrl,
        ws: gatewayUrl.replace(/^http/, 'ws'),
        runtimes: runtimeUrls,
        gateways: gatewayUrls,
        wss: gatewayUrls.map((u) => u.replace(/^http/, 'ws')),
      },
      runtimes,
      gateways,
      user,
      dataDir,
      token: (scope?: string) => passwordToken(authUrl, user.username, user.password, scope),
      restartAuth: async (env) => {
        await auth.app.close();
        auth = await buildAuth(readAuthConfig({ ...authEnv, ...env }), { logger });
        started.push(auth);
        await listen(auth, { host: '127.0.0.1', port: authPort });
        stack.auth = auth;
      },
      close: async () => {
        for (const s of started.reverse()) await s.app.close();
      },
    };
    return stack;
  } catch (err) {
    for (const s of started.reverse()) await s.app.close().catch(() => undefined);
    throw err;
  }
}

/** A runtime as a child process (`node services/runtime/src/main.ts`): what a test can kill and start again. */
interface RuntimeProcess {
  url: string;
  /** Stops it (SIGKILL: as a crash) and resolves once it exited. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Starts it again on the same port with the same settings. */
  restart(): Promise<void>;
  output(): string;
}

async function startRuntimeProcess(env: Record<string, string>): Promise<RuntimeProcess> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  let out = '';
  let proc: ReturnType<typeof runProcess> | undefined;
  const start = async (): Promise<void> => {
    const p = runProcess(['services/runtime/src/main.ts'], { AGENT_RUNTIME__PORT: String(port), ...env });
    proc = p;
    try {
      await Promise.race([
        waitForHttp(`${url}/health`, 60_000),
        p.exited().then((code) => Promise.reject(new Error(`runtime exited with ${code}:\n${p.output()}`))),
      ]);
    } catch (err) {
      p.child.kill('SIGKILL');
      throw err;
    }
  };
  const kill = async (signal: NodeJS.Signals = 'SIGKILL'): Promise<void> => {
    const p = proc;
    if (!p) return;
    out += p.output();
    proc = undefined;
    if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill(signal);
    await p.exited();
  };
  await start();
  return { url, kill, restart: start, output: () => out + (proc?.output() ?? '') };
}

export interface ProcessStackOptions {
  databaseUrl: string;
  runtimes: number;
  gateways: number;
  /** Extra settings per service (full variable names). */
  env?: { llm?: Record<string, string>; runtime?: Record<string, string>; gateway?: Record<string, string> };
  /** Gateway i reaches runtime i first, then the next ones (a load balancer's failover); false: runtime i mod runtimes only. */
  failover?: boolean;
}

/** The platform with its runtimes as child processes (to kill and restart) and the rest in this process. */
export interface ProcessStack {
  url: { auth: string; llm: string; runtimes: string[]; gateways: string[]; wss: string[] };
  runtimes: RuntimeProcess[];
  gateways: Service[];
  user: { username: string; password: string };
  token(scope?: string): Promise<string>;
  close(): Promise<void>;
}

export async function startProcessStack(opts: ProcessStackOptions): Promise<ProcessStack> {
  const logger = silentLogger();
  const dataDir = await mkdtemp(path.join(tmpdir(), 'codelab-pstack-'));
  const common = { CODELAB_DATA_DIR: dataDir };
  const closers: (() => Promise<void>)[] = [];
  const up = async (s: Service): Promise<string> => {
    closers.push(() => s.app.close());
    return listen(s, { host: '127.0.0.1', port: 0 });
  };
  try {
    const llm = await buildLlmProxy(
      readLlmProxyConfig({
        ...common,
        LLM_PROXY__INTERNAL_API_KEY: TEST_INTERNAL_KEY,
        LLM_PROXY__MOCK_TTFT_MS: '0',
        LLM_PROXY__MOCK_TOKEN_DELAY_MS: '0',
        ...opts.env?.llm,
      }),
      { logger },
    );
    const llmUrl = await up(llm);
    const auth = await buildAuth(
      readAuthConfig({
        ...common,
        AUTH_SERVICE__INTERNAL_API_KEY: TEST_INTERNAL_KEY,
        AUTH_SERVICE__DB_URL: opts.databaseUrl,
        AUTH_SERVICE__DB_POOL_SIZE: '2',
        AUTH_SERVICE__MASTER_KEY: 'stack-admin-password',
        AUTH_SERVICE__ENABLE_RATE_LIMITING: 'false',
      }),
      { logger },
    );
    const authUrl = await up(auth);
    const runtimes = await Promise.all(
      Array.from({ length: opts.runtimes }, () =>
        startRuntimeProcess({
          ...common,
          AGENT_RUNTIME__INTERNAL_API_KEY: TEST_INTERNAL_KEY,
          AGENT_RUNTIME__DB_URL: opts.databaseUrl,
          AGENT_RUNTIME__DB_POOL_SIZE: '3',
          AGENT_RUNTIME__LLM_PROXY_URL: llmUrl,
          AGENT_RUNTIME__LOG_LEVEL: 'warn',
          ...opts.env?.runtime,
        }),
      ),
    );
    closers.push(async () => {
      for (const r of runtimes) await r.kill('SIGTERM');
    });
    const gateways: Service[] = [];
    const gatewayUrls: string[] = [];
    for (let i = 0; i < opts.gateways; i++) {
      let agentUrl = runtimes[i % runtimes.length]!.url;
      if (opts.failover) {
        const order = runtimes.map((_, k) => runtimes[(i + k) % runtimes.length]!.url);
        const proxy = await startTcpProxy(order);
        closers.push(() => proxy.close());
        agentUrl = proxy.url;
      }
      const gateway = await buildGateway(
        readGatewayConfig({
          ...common,
          GATEWAY__INTERNAL_API_KEY: TEST_INTERNAL_KEY,
          GATEWAY__AGENT_URL: agentUrl,
          GATEWAY__AUTH_SERVICE_URL: authUrl,
          ...opts.env?.gateway,
        }),
        { logger },
      );
      gateways.push(gateway);
      gatewayUrls.push(await up(gateway));
    }
    const user = await createStackUser(opts.databaseUrl);
    return {
      url: {
        auth: authUrl,
        llm: llmUrl,
        runtimes: runtimes.map((r) => r.url),
        gateways: gatewayUrls,
        wss: gatewayUrls.map((u) => u.replace(/^http/, 'ws')),
      },
      runtimes,
      gateways,
      user,
      token: (scope?: string) => passwordToken(authUrl, user.username, user.password, scope),
      close: async () => {
        for (const c of closers.reverse()) await c().catch(() => undefined);
      },
    };
  } catch (err) {
    for (const c of closers.reverse()) await c().catch(() => undefined);
    throw err;
  }
}

/** A new user with its own name and password, so that suites never share data. */
export async function createStackUser(databaseUrl: string, prefix = 'user'): Promise<{ username: string; password: string }> {
  const user = { username: `${prefix}-${randomUUID()}`, password: `pw-${randomUUID()}` };
  const pool = new pg.Pool({ connectionString: databaseUrl, max: 1 });
  try {
    await createUser(pool, { username: user.username, email: `${user.username}@test.local`, password: user.password });
  } finally {
    await pool.end();
  }
  return user;
}

export async function passwordToken(authUrl: string, username: string, password: string, scope?: string): Promise<string> {
  return (await passwordTokens(authUrl, username, password, scope)).access_token;
}

export async function passwordTokens(
  authUrl: string,
  username: string,
  password: string,
  scope?: string,
): Promise<{ access_token: string; refresh_token: string }> {
  const res = await fetch(`${authUrl}/oauth/token`, {
    method: 'POST',
    body: new URLSearchParams({
      grant_type: 'password',
      client_id: 'codelab-flutter-app',
      username,
      password,
      ...(scope ? { scope } : {}),
    }),
  });
  const body = (await res.json()) as { access_token?: string; refresh_token?: string };
  if (res.status !== 200 || !body.access_token || !body.refresh_token)
    throw new Error(`token request failed: ${res.status} ${JSON.stringify(body)}`);
  return { access_token: body.access_token, refresh_token: body.refresh_token };
}

/** A WebSocket client that records every frame and lets a test await the ones it expects. */
export class FrameClient {
  readonly frames: Record<string, unknown>[] = [];
  readonly ws: WebSocket;
  closeCode: number | undefined;
  private waiters: (() => void)[] = [];
  private readonly opened: Promise<void>;
  private readonly closedP: Promise<number>;
  private readonly opts: { autoPong?: boolean; timeoutMs?: number };

  constructor(url: string, headers: Record<string, string> = {}, opts: { autoPong?: boolean; timeoutMs?: number } = {}) {
    this.opts = opts;
    this.ws = new WebSocket(url, { headers, autoPong: opts.autoPong ?? true });
    this.opened = new Promise((resolve, reject) => {
      this.ws.once('open', () => resolve());
      this.ws.once('unexpected-response', (_req, res) =>
        reject(Object.assign(new Error(`handshake refused: ${res.statusCode}`), { statusCode: res.statusCode })),
      );
      this.ws.once('error', reject);
    });
    this.opened.catch(() => undefined);
    this.closedP = new Promise((resolve) => this.ws.once('close', (code) => resolve((this.closeCode = code))));
    this.ws.on('message', (data) => {
      this.frames.push(JSON.parse(String(data)) as Record<string, unknown>);
      for (const w of this.waiters.splice(0)) w();
    });
  }

  open(): Promise<void> {
    return this.opened;
  }

  send(frame: unknown): void {
    this.ws.send(typeof frame === 'string' ? frame : JSON.stringify(frame));
  }

  /** Resolves with the frames up to and including the first one (from `from`) matching `pred`. */
  async until(
    pred: (f: Record<string, unknown>) => boolean,
    from = 0,
    timeoutMs = this.opts.timeoutMs ?? 15_000,
  ): Promise<Record<string, unknown>[]> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = this.frames.findIndex((f, idx) => idx >= from && pred(f));
      if (i >= 0) return this.frames.slice(from, i + 1);
      if (Date.now() > deadline)
        throw new Error(`no matching frame within ${timeoutMs} ms; got ${JSON.stringify(this.frames.slice(from))}`);
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
        setTimeout(resolve, 100);
      });
    }
  }

  closed(): Promise<number> {
    return this.closedP;
  }

  close(): void {
    this.ws.close();
  }
}
