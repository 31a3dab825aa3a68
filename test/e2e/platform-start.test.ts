/**
 * `npm start` as a newcomer runs it: all four services on embedded defaults (PGlite, mock LLM, no
 * Redis), healthy in time, a real turn, history that survives a restart, every /metrics accepted
 * by promtool, and a clean exit on SIGTERM. Then as an operator uses it: the auth CLI on the
 * running platform's database, the documented admin token command, a standard OAuth client
 * discovering auth, the internal key from its file, one platform per data directory.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile, execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as oauth from 'oauth4webapi';
import { decodeJwt } from 'jose';
import { findProgram, freePort, missingProgram } from '@codelab/service-kit/testing';
import { FrameClient, passwordToken } from '../helpers/stack.ts';
import { REPO_ROOT, runProcess } from '../helpers/processes.ts';

const noPromtool = missingProgram('promtool', 'prometheus');

type Ports = Record<'gateway' | 'auth' | 'runtime' | 'llm' | 'web', number>;

async function platformEnv(): Promise<{ dataDir: string; ports: Ports; env: Record<string, string> }> {
  const dataDir = await mkdtemp(path.join(tmpdir(), 'codelab-start-'));
  const ports = {
    gateway: await freePort(),
    auth: await freePort(),
    runtime: await freePort(),
    llm: await freePort(),
    web: await freePort(),
  };
  const env = {
    CODELAB_DATA_DIR: dataDir,
    GATEWAY__PORT: String(ports.gateway),
    AUTH_SERVICE__PORT: String(ports.auth),
    AGENT_RUNTIME__PORT: String(ports.runtime),
    LLM_PROXY__PORT: String(ports.llm),
    WEB__PORT: String(ports.web),
    LLM_PROXY__MOCK_TTFT_MS: '0',
    LLM_PROXY__MOCK_TOKEN_DELAY_MS: '0',
  };
  return { dataDir, ports, env };
}

async function startPlatform(env: Record<string, string>) {
  const launcher = runProcess(['scripts/start.ts'], env);
  const started = Date.now();
  while (!/CodeLab Platform is up/.test(launcher.output())) {
    if (launcher.child.exitCode !== null) throw new Error(`launcher exited ${launcher.child.exitCode}:\n${launcher.output()}`);
    if (Date.now() - started > 120_000) throw new Error(`not up in 120 s:\n${launcher.output()}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  return { launcher };
}

/** The exit code of a launcher expected to stop by itself, stopped (SIGTERM: with its services) if it has not within `ms`. */
async function exitCodeWithin(run: ReturnType<typeof runProcess>, ms = 20_000): Promise<number | null> {
  const timer = setTimeout(() => run.child.kill('SIGTERM'), ms);
  try {
    return await run.exited();
  } finally {
    clearTimeout(timer);
  }
}

/** A shell command as an operator types it (curl, $(cat …)), from the repository root. */
function shell(command: string, env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      'sh',
      ['-c', command],
      { cwd: REPO_ROOT, env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', NO_COLOR: '1', ...env } },
      (err, stdout, stderr) => resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

describe('npm start (scripts/start.ts) on embedded defaults', () => {
  let dataDir: string;
  let env: Record<string, string>;
  let ports: Ports;

  beforeAll(async () => {
    ({ dataDir, env, ports } = await platformEnv());
  });
  afterAll(() => rm(dataDir, { recursive: true, force: true }));

  const start = () => startPlatform(env);
  const url = (name: keyof typeof ports) => `http://127.0.0.1:${ports[name]}`;
  const internalKeyFile = () => path.join(dataDir, 'internal-api-key');
  /** The seed's command: `curl -s -H "X-Internal-Auth: $(cat data/internal-api-key)" …/events/metrics | jq .computed`. */
  const computedMetrics = () =>
    shell(`curl -s -H "X-Internal-Auth: $(cat '${internalKeyFile()}')" ${url('runtime')}/events/metrics | jq -c .computed`);

  let sessionId: string;
  let finalContent: string;
  let token: string;
  let internalKey: string;

  it('starts all four services healthy and says where they listen and how to get a token', async () => {
    const { launcher } = await start();
    try {
      for (const name of ['gateway', 'auth', 'runtime', 'llm'] as const) {
        const res = await fetch(`${url(name)}/health`);
        expect(res.status).toBe(200);
      }
      // the launcher's line once everything is ready (a service's log line may still follow it)
      const banner = launcher
        .output()
        .split('\n')
        .find((l) => l.includes(`gateway http://127.0.0.1:${ports.gateway}`));
      expect(banner, launcher.output().slice(-2000)).toBeDefined();
      expect(banner).toContain(`/oauth/token`);
      expect(banner).toContain('admin-password');
      // every service logs readable lines prefixed with its name, and no secret
      for (const name of ['gateway', 'auth', 'runtime', 'llm-proxy']) expect(launcher.output()).toMatch(new RegExp(`^${name}\\s*\\|`, 'm'));

      const password = (await readFile(path.join(dataDir, 'auth', 'admin-password'), 'utf8')).trim();
      expect(launcher.output()).not.toContain(password);

      // The gateway starts once auth answers: it never finds auth unreachable at start. (A service
      // writes its log lines in batches of up to 25 ms, so its "listening" line may come after the
      // launcher's banner: the start-up is what came before both.)
      await expect.poll(() => launcher.output().includes('gateway listening')).toBe(true);
      const out = launcher.output();
      const startUp = out.slice(
        0,
        Math.max(out.indexOf('CodeLab Platform is up'), out.indexOf('gateway listening') + 'gateway listening'.length),
      );
      expect(startUp.indexOf('auth listening')).toBeGreaterThan(-1);
      expect(startUp.indexOf('auth listening')).toBeLessThan(startUp.indexOf('gateway listening'));
      expect(startUp).not.toMatch(/^gateway\s*\|.*(WARN|ERROR)/m);
      expect(startUp).not.toContain('auth is unreachable');

      // The internal key is kept for operators in a private file, never printed; the seed's curl works.
      internalKey = (await readFile(internalKeyFile(), 'utf8')).trim();
      expect(internalKey).toMatch(/^[A-Za-z0-9_-]{32}$/);
      expect((await stat(internalKeyFile())).mode & 0o777).toBe(0o600);
      expect(out).not.toContain(internalKey);
      expect(banner).toContain('internal key (X-Internal-Auth): ');
      expect(banner).toContain('internal-api-key');
      const computed = await computedMetrics();
      expect(computed.code).toBe(0);
      expect(JSON.parse(computed.stdout)).toEqual(expect.any(Object));
      const wrongKey = await shell(
        `curl -s -o /dev/null -w '%{http_code}' -H "X-Internal-Auth: not-the-key" ${url('runtime')}/events/metrics`,
      );
      expect(wrongKey.stdout).toBe('401');
      token = await passwordToken(url('auth'), 'admin', password);
      sessionId = `start-${randomUUID()}`;
      const client = new FrameClient(`ws://127.0.0.1:${ports.gateway}/api/v1/ws/${sessionId}`, { authorization: `Bearer ${token}` });
      await client.open();
      client.send({ type: 'user_message', content: 'hello from a fresh clone', role: 'user' });
      const frames = await client.until((f) => f.is_final === true);
      expect(frames.filter((f) => f.token).length).toBeGreaterThanOrEqual(2);
      finalContent = String(frames.at(-1)!.content);
      client.close();

      // the gateway exposes WebSocket connections and frames by type; runtime and auth their pools
      const scrape = async (name: keyof typeof ports) => (await fetch(`${url(name)}/metrics`)).text();
      const gw = await scrape('gateway');
      expect(gw).toMatch(/^gateway_ws_connections \d+$/m);
      expect(gw).toMatch(/^gateway_ws_messages_total\{direction="in",type="user_message"\} 1$/m);
      expect(gw).toMatch(/^gateway_ws_messages_total\{direction="out",type="assistant_message"\} \d+$/m);
      for (const [name, service] of [
        ['runtime', 'runtime'],
        ['auth', 'auth'],
      ] as const) {
        const text = await scrape(name);
        for (const state of ['idle', 'used'])
          expect(text).toMatch(
            new RegExp(`^db_client_connections\\{service="${service}",pool="${service}",state="${state}"\\} \\d+$`, 'm'),
          );
        expect(text).toMatch(new RegExp(`^db_client_connection_pending_requests\\{service="${service}",pool="${service}"\\} \\d+$`, 'm'));
        expect(text).toMatch(new RegExp(`^db_client_connections_max\\{service="${service}",pool="${service}"\\} [1-9]\\d*$`, 'm'));
      }

      if (!noPromtool) {
        for (const name of ['gateway', 'auth', 'runtime', 'llm'] as const) {
          const text = await (await fetch(`${url(name)}/metrics`)).text();
          const file = path.join(dataDir, `${name}.prom`);
          await writeFile(file, text);
          // promtool exits non-zero on any lint problem; execFileSync throws with its output.
          execFileSync(findProgram('promtool')!, ['check', 'metrics'], { input: text, encoding: 'utf8' });
        }
      }
    } finally {
      launcher.child.kill('SIGTERM');
      expect(await launcher.exited()).toBe(0);
    }
    // The embedded database's lock goes with the launcher.
    expect(existsSync(path.join(dataDir, 'pg.lock'))).toBe(false);
  }, 120_000);

  it('refuses to start, naming the file, when the kept internal key is unusable', async () => {
    const other = await platformEnv();
    await writeFile(path.join(other.dataDir, 'internal-api-key'), 'short\n');
    const run = runProcess(['scripts/start.ts'], other.env);
    try {
      expect(await exitCodeWithin(run)).toBe(1);
      expect(run.output()).toContain(
        `npm start: ${path.join(other.dataDir, 'internal-api-key')} holds no usable internal key (one line of at least 16 characters, no spaces): delete it to have a new one generated`,
      );
      expect(existsSync(path.join(other.dataDir, 'pg.lock'))).toBe(false);
    } finally {
      await rm(other.dataDir, { recursive: true, force: true });
    }
  });

  it('keeps the conversation across a stop and start', async () => {
    expect(sessionId).toBeDefined();
    const { launcher } = await start();
    try {
      // The same internal key, from the same file.
      expect((await readFile(internalKeyFile(), 'utf8')).trim()).toBe(internalKey);
      expect(JSON.parse((await computedMetrics()).stdout)).toEqual(expect.any(Object));

      const res = await fetch(`${url('gateway')}/api/v1/sessions/${sessionId}/history`, { headers: { authorization: `Bearer ${token}` } });
      expect(res.status).toBe(200);
      const body = (await res.json()) as { messages: { role: string; content: string }[] };
      expect(body.messages.map((m) => [m.role, m.content])).toEqual([
        ['user', 'hello from a fresh clone'],
        ['assistant', finalContent],
      ]);
    } finally {
      launcher.child.kill('SIGTERM');
      expect(await launcher.exited()).toBe(0);
    }
  }, 120_000);
});

describe('operating the platform npm start runs', () => {
  let dataDir: string;
  let env: Record<string, string>;
  let ports: Ports;
  let launcher: Awaited<ReturnType<typeof startPlatform>>['launcher'];

  beforeAll(async () => {
    ({ dataDir, env, ports } = await platformEnv());
    ({ launcher } = await startPlatform(env));
  }, 90_000);
  afterAll(async () => {
    if (launcher) {
      launcher.child.kill('SIGTERM');
      expect(await launcher.exited()).toBe(0);
      expect(existsSync(path.join(dataDir, 'pg.lock'))).toBe(false);
    }
    await rm(dataDir, { recursive: true, force: true });
  }, 60_000);

  const url = (name: keyof Ports) => `http://127.0.0.1:${ports[name]}`;
  /** `npm run auth -- …` as the operator runs it, with nothing configured but the data directory. */
  const auth = (args: string[], stdin = '') =>
    shell(`npm run --silent auth -- ${args.map((a) => `'${a}'`).join(' ')}${stdin ? ` <<'EOF'\n${stdin}\nEOF` : ''}`, {
      CODELAB_DATA_DIR: dataDir,
    });
  /** The operator's documented command for an admin token (README), for any user. */
  const tokenCommand = (username: string, password: string) =>
    shell(
      `curl -s ${url('auth')}/oauth/token -d grant_type=password -d client_id=codelab-flutter-app -d username=${username} ` +
        `--data-urlencode password="${password}" -d scope="api:read api:write api:admin"`,
    );
  const adminView = async (token: string) =>
    (await fetch(`${url('gateway')}/api/v1/events/metrics`, { headers: { authorization: `Bearer ${token}` } })).status;

  // Regression: the CLI used data/auth/pg, so its client answered invalid_client and its list had no admin.
  it("runs the auth CLI on the running platform's database, and says so", async () => {
    const clientId = `bot-${randomUUID().slice(0, 8)}`;
    const created = await auth([
      'create-client',
      '--client-id',
      clientId,
      '--name',
      'Bot',
      '--scopes',
      'api:read',
      '--grants',
      'client_credentials',
      '--confidential',
    ]);
    expect(created.code, created.stderr).toBe(0);
    expect(created.stderr).toContain(
      `auth: using the embedded database of the running platform (pid ${launcher.child.pid}, ${path.join(dataDir, 'pg')})`,
    );
    const secret = /^client_secret \(shown once\): (\S+)$/m.exec(created.stdout)![1]!;
    const res = await fetch(`${url('auth')}/oauth/token`, {
      method: 'POST',
      headers: { authorization: `Basic ${Buffer.from(`${clientId}:${secret}`).toString('base64')}` },
      body: new URLSearchParams({ grant_type: 'client_credentials' }),
    });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { scope: string }).scope).toBe('api:read');

    const users = await auth(['list-users']);
    expect(users.stdout).toMatch(/^admin\s+admin@codelab\.local\s+yes\s+yes\s+yes\s/m);
  });

  it('gives the seeded admin an admin token with the one documented command, and a plain user none', async () => {
    const admin = await tokenCommand('admin', `$(cat '${path.join(dataDir, 'auth', 'admin-password')}')`);
    const adminBody = JSON.parse(admin.stdout) as { access_token: string; scope: string };
    expect(adminBody.scope).toBe('api:admin api:read api:write');
    expect(decodeJwt(adminBody.access_token).scope).toBe('api:admin api:read api:write');
    expect(await adminView(adminBody.access_token)).toBe(200);

    const username = `ada-${randomUUID().slice(0, 8)}`;
    const password = 'a long enough password';
    expect(
      (await auth(['create-user', '--username', username, '--email', `${username}@example.test`, '--password-stdin'], password)).code,
    ).toBe(0);
    const plain = JSON.parse((await tokenCommand(username, password)).stdout) as { access_token: string; scope: string };
    expect(plain.scope).toBe('api:read api:write');
    expect(await adminView(plain.access_token)).toBe(403);

    // Production's path: the CLI against the database URL makes the user an admin; the next login has api:admin.
    const lock = JSON.parse(await readFile(path.join(dataDir, 'pg.lock'), 'utf8')) as { url: string };
    const promoted = await shell(`npm run --silent auth -- set-admin --username ${username}`, { AUTH_SERVICE__DB_URL: lock.url });
    expect(promoted.code, promoted.stderr).toBe(0);
    expect(promoted.stderr).toContain('auth: using the database of AUTH_SERVICE__DB_URL, postgres://');
    const promotedToken = JSON.parse((await tokenCommand(username, password)).stdout) as { access_token: string; scope: string };
    expect(promotedToken.scope).toBe('api:admin api:read api:write');
    expect(await adminView(promotedToken.access_token)).toBe(200);
  });

  it('is discovered by a standard OAuth client at the URL auth serves (RFC 8414), whose tokens the gateway accepts', async () => {
    const issuer = new URL(url('auth'));
    const http = { [oauth.allowInsecureRequests]: true } as const;
    const as = await oauth.processDiscoveryResponse(issuer, await oauth.discoveryRequest(issuer, { algorithm: 'oauth2', ...http }));
    expect(as).toMatchObject({ issuer: url('auth'), token_endpoint: `${url('auth')}/oauth/token` });

    const client: oauth.Client = { client_id: 'codelab-flutter-app' };
    const password = (await readFile(path.join(dataDir, 'auth', 'admin-password'), 'utf8')).trim();
    const tokens = await oauth.processGenericTokenEndpointResponse(
      as,
      client,
      await oauth.genericTokenEndpointRequest(as, client, oauth.None(), 'password', { username: 'admin', password }, http),
    );
    expect(decodeJwt(tokens.access_token).iss).toBe(url('auth'));
    const sessions = await fetch(`${url('gateway')}/api/v1/sessions`, { headers: { authorization: `Bearer ${tokens.access_token}` } });
    expect(sessions.status).toBe(200);
  });

  it('refuses a second launcher on the same data directory, naming the first', async () => {
    const other = await platformEnv();
    await rm(other.dataDir, { recursive: true, force: true });
    const second = runProcess(['scripts/start.ts'], { ...other.env, CODELAB_DATA_DIR: dataDir });
    expect(await exitCodeWithin(second)).toBe(1);
    expect(second.output()).toContain(
      `npm start: the platform is already running on ${dataDir} (pid ${launcher.child.pid}): stop it first`,
    );
    // The first is untouched, and keeps its lock.
    expect((await fetch(`${url('auth')}/health`)).status).toBe(200);
    expect(JSON.parse(await readFile(path.join(dataDir, 'pg.lock'), 'utf8'))).toMatchObject({
      pid: launcher.child.pid,
      holder: 'platform',
      state: 'serving',
    });
  });
});
